"""Behind the spool: every committed message is unwrapped, scanned, recorded and (in enforce mode)
delivered, quarantined, bounced or dropped.

Scanning runs in separate processes (or in this one); the history writer (`service/writer.py`) makes
each outcome durable in an order a crash cannot break. A message whose processing fails is tried
again after a pause; after RETRY_ATTEMPTS failures it is given up on, never silently: it is recorded
with the error and held in quarantine (the raw message kept), so an administrator sees it in the trace
and can release it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from hashlib import sha256
from multiprocessing.connection import Connection

import structlog

from mailwarden import metrics
from mailwarden.deliver import DeliveryAgent, DeliveryJob, JobKind, Route, parse_next_hop
from mailwarden.deliver.dsn import RecipientFailure, build_dsn
from mailwarden.enforce.apply import Plan, plan_delivery
from mailwarden.enforce.dkim_sign import DkimSigner
from mailwarden.enforce.notify import incident_report, malware_notification
from mailwarden.enforce.record import message_record, monitor_record, redacted_events, scan_summary, would_have
from mailwarden.errors import DependencyUnavailable
from mailwarden.ids import derive_id
from mailwarden.ingest.journal import JournalEnvelope, JournalParseError, unwrap
from mailwarden.ingest.replies import QUEUED
from mailwarden.ingest.spool import Spool, SpoolEntry
from mailwarden.lifeline import exit_with_server, server_lifeline
from mailwarden.logs import configure as configure_logging
from mailwarden.model import (
    Action,
    Category,
    Direction,
    Disposition,
    Envelope,
    Finding,
    Message,
    Mode,
    Policy,
    StageOutcome,
    StageResult,
    Verdict,
    classify_direction,
)
from mailwarden.model.direction import is_org_address
from mailwarden.model.envelope import domain_of
from mailwarden.model.quarantine import NewEntry, new_entries, reason_for
from mailwarden.model.trace import EventRecord, EventType, MessageRecord, RecipientRecord, RecipientStatus
from mailwarden.model.verdict import ModificationKind
from mailwarden.pipeline.cpu import run_inline
from mailwarden.service.config import Config
from mailwarden.service.directory import OrgDirectory, Tenant
from mailwarden.service.runtime import Runtime
from mailwarden.service.writer import FIRST_PAUSE, LONGEST_PAUSE, HistoryWriter, Outcome

log = structlog.get_logger(__name__)

JOURNAL_PARSE_ERROR = "JOURNAL_PARSE_ERROR"
RETRY_ATTEMPTS = 3  # a spool entry whose processing failed is tried again this often
RETRY_DELAY_SECONDS = 5.0  # times the attempt number


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A scan that met a dependency away (database, Redis): the entry waits and is tried again."""

    reason: str


def record_id(spool_id: str, index: int) -> str:
    """The history id of the index-th organisation's record of a spool entry: the first keeps the
    spool id (the id the client was told in the 250 reply), the others are derived from it."""
    return spool_id if index == 0 else derive_id(spool_id, f"record/{index}")


class Processor:
    """Consumes the spool with a few workers (or scanning processes) and hands outcomes to the writer."""

    def __init__(
        self,
        rt: Runtime,
        spool: Spool | None,
        directory: OrgDirectory,
        *,
        roles: Mapping[str, str],
        agent: DeliveryAgent | None = None,
    ) -> None:
        self.rt = rt
        self.spool = spool
        self.directory = directory
        self.roles = roles
        cfg = rt.config.processing
        self.workers = cfg.workers
        self._entries: asyncio.Queue[SpoolEntry] = asyncio.Queue(maxsize=cfg.workers * 4)
        self.scan_processes = cfg.scan_processes
        self._pool: ProcessPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._attempts: dict[str, int] = {}  # spool id → failed attempts, while a retry is pending
        self._paused_until = float("-inf")  # scanning waits for a dependency that is away until then
        self._pause = FIRST_PAUSE
        self.signer = DkimSigner.from_config(rt.config.dkim)
        self.writer = HistoryWriter(rt, spool, on_failure=self._write_failed, on_written=self._written)
        self.writer.agent = agent

    @property
    def agent(self) -> DeliveryAgent | None:
        return self.writer.agent

    @agent.setter
    def agent(self, agent: DeliveryAgent | None) -> None:
        self.writer.agent = agent

    @property
    def processed(self) -> int:
        return self.writer.processed

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.writer.settle_held_jobs)
        self._tasks = [asyncio.create_task(self._feed(), name="spool-feed")]
        if self.scan_processes:
            self._start_pool()
            # two batches per scanning process: one being scanned, the next one already there
            dispatchers = 2 * self.scan_processes
            self._tasks += [asyncio.create_task(self._dispatcher(), name=f"scan-{i}") for i in range(dispatchers)]
        else:
            self._tasks += [asyncio.create_task(self._worker(), name=f"scan-{i}") for i in range(self.workers)]
        self._tasks.append(asyncio.create_task(self.writer.run(), name="history-writer"))

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Finish what is in hand (scanned messages get written), leave the rest in the spool."""
        feed, *rest = self._tasks
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_timeout):
                await self._entries.join()
                await self.writer.outcomes.join()
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        self._tasks = []
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
            self._pool = None

    async def _feed(self) -> None:
        assert self.spool is not None
        async for entry in self.spool.entries():
            await self._entries.put(entry)

    async def _worker(self) -> None:
        while True:
            await self._pause_while_unavailable()
            entry = await self._entries.get()
            try:
                outcome = await self.process(entry)
                self._pause = FIRST_PAUSE
            except DependencyUnavailable as exc:
                self._wait_for_dependency(entry, str(exc))
            except Exception as exc:  # a bug here must not lose the message: it stays in the spool
                log.error("processing_failed", spool_id=entry.id, error=_error_text(exc), exc_info=exc)
                await self._retry_later(entry, _error_text(exc))
            else:
                await self.writer.outcomes.put(outcome)
            finally:
                self._entries.task_done()

    # ---- a dependency away ---------------------------------------------------------------------
    def _wait_for_dependency(self, entry: SpoolEntry, reason: str) -> None:
        """The database or Redis is away: nobody's failure. The entry goes back to the spool's hand-out
        and scanning pauses, longer each time (one log line per pause), until a scan gets through."""
        loop = asyncio.get_running_loop()
        if loop.time() >= self._paused_until:
            log.error("scanning_paused", error=reason, retry_in_seconds=self._pause)
            self._paused_until = loop.time() + self._pause
            self._pause = min(self._pause * 2, LONGEST_PAUSE)
        if self.spool is not None:
            self.spool.hand_again(entry)

    async def _pause_while_unavailable(self) -> None:
        delay = self._paused_until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    # ---- failures ----------------------------------------------------------------------------
    async def _retry_later(self, entry: SpoolEntry, error: str) -> None:
        """A failed entry stays in the spool and is handed out again after a pause (a scanning process
        that died, a bug met by one message); after RETRY_ATTEMPTS failures it is given up on."""
        if self.spool is None:
            return
        metrics.PROCESSING_FAILURES.inc()
        attempt = self._attempts.get(entry.id, 0) + 1
        if attempt > RETRY_ATTEMPTS:
            self._attempts.pop(entry.id, None)
            await self._give_up(entry, error)
            return
        self._attempts[entry.id] = attempt
        delay = RETRY_DELAY_SECONDS * attempt
        log.warning("processing_retry_scheduled", spool_id=entry.id, attempt=attempt, in_seconds=delay, error=error)
        asyncio.get_running_loop().call_later(delay, self.spool.hand_again, entry)

    async def _give_up(self, entry: SpoolEntry, error: str) -> None:
        """Record the message with the error (see `given_up_outcome`). The
        writer's queue is fed from a task: the writer itself may be the one giving up."""
        metrics.GIVEN_UP.inc()
        log.error("processing_given_up", spool_id=entry.id, attempts=RETRY_ATTEMPTS, error=error, kept="in quarantine")
        try:
            outcome = self.given_up_outcome(entry, error)
        except Exception as exc:  # not even the header could be read: the entry stays for the next start
            metrics.UNRECORDED.inc()
            log.error("processing_given_up_unrecorded", spool_id=entry.id, error=_error_text(exc), kept="in the spool")
            return
        task = asyncio.create_task(self.writer.outcomes.put(outcome))
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def _write_failed(self, outcome: Outcome, error: str) -> None:
        if outcome.given_up:  # its last chance: the entry waits in the spool for the next start
            metrics.UNRECORDED.inc()
            log.error("processing_given_up_unrecorded", spool_id=outcome.entry.id, error=error, kept="in the spool")
            return
        await self._retry_later(outcome.entry, error)

    def _written(self, entries: list[SpoolEntry]) -> None:
        for entry in entries:
            self._attempts.pop(entry.id, None)

    async def _dispatcher(self) -> None:
        """Hand the scanning processes what the spool has, up to `workers` entries per batch.

        One round trip per batch instead of per message: the pickling, pipe writes and wake-ups of a
        process pool cost about as much as a small message's scan. Message bytes go over once; results
        come back without them."""
        while True:
            await self._pause_while_unavailable()
            batch = [await self._entries.get()]
            while len(batch) < self.workers and not self._entries.empty():
                batch.append(self._entries.get_nowait())
            try:
                results = await self._scan_batch(batch)
                for entry, result in zip(batch, results, strict=True):
                    if isinstance(result, Unavailable):
                        self._wait_for_dependency(entry, result.reason)
                        continue
                    self._pause = FIRST_PAUSE
                    if isinstance(result, str):  # a bug here must not lose the message: it stays in the spool
                        log.error("processing_failed", spool_id=entry.id, error=result)
                        await self._retry_later(entry, result)
                        continue
                    result.entry = entry
                    await self.writer.outcomes.put(result)
            except Exception as exc:
                log.error("processing_failed", spool_ids=[e.id for e in batch], error=_error_text(exc), exc_info=exc)
                for entry in batch:
                    await self._retry_later(entry, _error_text(exc))
            finally:
                for _ in batch:
                    self._entries.task_done()

    async def _scan_batch(self, batch: list[SpoolEntry], *, retry: bool = True) -> list[Outcome | Unavailable | str]:
        loop = asyncio.get_running_loop()
        assert self._pool is not None
        try:
            return await loop.run_in_executor(self._pool, _process_batch_in_worker, batch)
        except BrokenProcessPool:
            # a scanning process died (killed, out of memory, a crash in a library): start a new pool and
            # try each entry alone, so that a message that kills its process holds up no other one
            log.error("scan_process_died", spool_ids=[e.id for e in batch])
            self._restart_pool()
            if not retry:
                return ["the scanning process died twice on this message; it stays in the spool"]
            results: list[Outcome | Unavailable | str] = []
            for entry in batch:
                results += await self._scan_batch([entry], retry=False)
            return results

    def _start_pool(self) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["mailwarden.service.processor"])
        self._pool = ProcessPoolExecutor(
            max_workers=self.scan_processes,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.rt.config, dict(self.roles), server_lifeline()),
        )

    def _restart_pool(self) -> None:
        old, self._pool = self._pool, None
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        self._start_pool()

    # ---- one entry ---------------------------------------------------------------------------
    async def process(self, entry: SpoolEntry) -> Outcome:
        # an entry replayed after a crash may be in history already: the writer checks a batch at once
        role = self.roles.get(entry.listener, "journal")
        if role == "journal":
            return await self._journal(entry)
        return await self._inline(entry, role)

    async def _journal(self, entry: SpoolEntry) -> Outcome:
        env = entry.envelope
        try:
            je = unwrap(
                entry.raw, smtp_mail_from=env.mail_from, smtp_rcpt_to=env.rcpt_to, org_domains=self.directory.domains
            )
        except JournalParseError as exc:
            return self._journal_error(entry, str(exc))
        unwrapped_at = datetime.now(UTC)
        tenant = self.directory.tenant_for([je.sender]) or self.directory.tenant_for([r.address for r in je.recipients])
        org_name = tenant.organisation.name if tenant else None
        key = f"{org_name}|{je.dedupe_key}"
        recipients = [
            RecipientRecord(r.address, r.field, RecipientStatus.RECORDED, r.expanded_from, r.forwarded_from)
            for r in je.recipients
        ]
        # copies of a message already recorded are merged by the writer (one place, no races)
        return await self._journal_scan(entry, je, tenant, key, recipients, unwrapped_at)

    async def _journal_scan(
        self,
        entry: SpoolEntry,
        je: JournalEnvelope,
        tenant: Tenant | None,
        key: str,
        recipients: list[RecipientRecord],
        unwrapped_at: datetime,
    ) -> Outcome:
        env = entry.envelope
        org_name = tenant.organisation.name if tenant else None
        message = Message(je.original)
        envelope = Envelope(
            mail_from=je.sender,
            rcpt_to=tuple(r.address for r in je.recipients),
            client_ip=None,
            received_at=env.received_at,
        )
        policy = tenant.policy if tenant else Policy()
        domains = tenant.organisation.domain_names if tenant else frozenset()
        direction = classify_direction(je.sender, envelope.rcpt_to, domains, originated=je.originated)
        verdict = await self.rt.pipeline.scan(
            message,
            envelope,
            policy,
            organisation=tenant.organisation if tenant else None,
            direction=direction,
            facts={"journal": True, "journal_format": je.source_format.value},
        )
        unwrap_event = EventRecord(
            EventType.JOURNAL_UNWRAP,
            f"{je.source_format.value}: {len(je.recipients)} recipients, envelope confidence "
            f"{je.envelope_confidence.value}" + (", spoof of own domain" if je.spoof_of_own_domain else ""),
            at=unwrapped_at,
        )
        record, events = monitor_record(
            message_id=entry.id,
            message=message,
            envelope=envelope,
            verdict=verdict,
            organisation=org_name,
            source="journal",
            recipients=recipients,
            receive_detail=_receive(entry),
            receive_reply=_queued(entry),
            extra_events=[unwrap_event, *_rule_events(verdict, None, unwrapped_at)],
        )
        lookup = (org_name, je.original_message_id) if je.original_message_id else None
        outcome = Outcome(entry, records=[(record, events)], dedupe_key=key, dedupe_lookup=lookup)
        outcome.quarantine = _entries(record, verdict, policy, blob_key=None)
        return outcome

    def _journal_error(self, entry: SpoolEntry, reason: str) -> Outcome:
        """A report that cannot be unwrapped is recorded as such and kept byte for byte for inspection."""
        message = Message(entry.raw)
        stage = StageResult(
            "journal",
            StageOutcome.ERROR,
            (Finding("journal", JOURNAL_PARSE_ERROR, 0.0, reason),),
            error=f"journal_parse_error: {reason}",
        )
        verdict = Verdict(
            direction=Direction.INBOUND,
            category=Category.SCAN_ERROR,
            disposition=Disposition(Action.DELIVER, reason="journal_parse_error: nothing to act on"),
            stages=(stage,),
            scan_errors=(f"journal_parse_error: {reason}",),
        )
        blob_key = f"journal-error-{entry.id}.eml"
        record, events = monitor_record(
            message_id=entry.id,
            message=message,
            envelope=entry.envelope,
            verdict=verdict,
            organisation=None,
            source="journal",
            receive_detail=_receive(entry),
            receive_reply=_queued(entry),
            extra_events=[EventRecord(EventType.JOURNAL_UNWRAP, f"journal_parse_error: {reason}; kept as {blob_key}")],
        )
        log.warning("journal_parse_error", spool_id=entry.id, reason=reason, blob=blob_key)
        return Outcome(entry, records=[(record, events)], blobs=[(blob_key, entry.raw)])

    async def _inline(self, entry: SpoolEntry, role: str) -> Outcome:
        """A message that arrived at the gateway: scan, then apply (enforce) or relay unchanged (monitor)."""
        env = entry.envelope
        message = Message(entry.raw)
        groups = self._groups(env, role)
        outcome = Outcome(entry)
        for index, (tenant, rcpts) in enumerate(groups):
            message_id = record_id(entry.id, index)
            domains = tenant.organisation.domain_names if tenant else frozenset()
            sub_env = replace(env, rcpt_to=tuple(rcpts))
            # the outbound listener takes only authenticated clients and allowed networks
            direction = classify_direction(env.mail_from, rcpts, domains, originated=role == "outbound")
            policy = tenant.policy if tenant else Policy()
            verdict = await self.rt.pipeline.scan(
                message, sub_env, policy, organisation=tenant.organisation if tenant else None, direction=direction
            )
            mode = self._mode(tenant, role, env.mail_from, rcpts)
            applied = mode is Mode.ENFORCE and verdict.category is not Category.INTERNAL
            plan = plan_delivery(entry.raw, verdict, rcpts, applied=applied)
            if applied and plan.raw is not None and verdict.direction is Direction.OUTBOUND and message.from_address:
                # the signature covers the message as it leaves: after every header and subject change
                plan = replace(plan, raw=self.signer.sign(plan.raw, domain_of(message.from_address) or ""))
            self._apply(outcome, message_id, message, sub_env, verdict, tenant, mode, plan)
        return outcome

    def given_up_outcome(self, entry: SpoolEntry, error: str) -> Outcome:
        """The outcome of a message processing gave up on, built from its envelope and header alone
        (the body may be what failed). Enforce: held in quarantine whatever the policy's
        scan_error_action says (that covers one filter failing while the others ran; here none could
        finish). Monitor on the gateway: relayed unchanged, as monitor mode promises. Journal copy:
        recorded. Every record carries the error in its Scan event."""
        env = entry.envelope
        role = self.roles.get(entry.listener, "journal")
        headers = Message(_header_block(entry.raw))
        verdict = Verdict(
            direction=Direction.INBOUND if role != "outbound" else Direction.OUTBOUND,
            category=Category.SCAN_ERROR,
            disposition=Disposition(Action.QUARANTINE, reason="processing failed"),
            scan_errors=(f"processing failed {RETRY_ATTEMPTS} times: {error}",),
        )
        outcome = Outcome(entry, given_up=True)
        groups = [(None, list(env.rcpt_to))] if role == "journal" else self._groups(env, role)
        for index, (tenant, rcpts) in enumerate(groups):
            message_id = record_id(entry.id, index)
            mode = self._mode(tenant, role, env.mail_from, rcpts)
            if mode is Mode.ENFORCE:
                plan = Plan(
                    Action.QUARANTINE,
                    None,
                    (),
                    RecipientStatus.QUARANTINED,
                    EventType.QUARANTINE,
                    detail="processing failed: held in quarantine",
                    quarantine=True,
                )
            else:
                plan = plan_delivery(entry.raw, verdict, rcpts, applied=False)
                if role == "journal":  # nothing to relay; the report is kept for inspection
                    plan = replace(plan, raw=None, deliver_to=())
                    outcome.blobs.append((f"failed-{message_id}.eml", entry.raw))
            self._apply(outcome, message_id, headers, replace(env, rcpt_to=tuple(rcpts)), verdict, tenant, mode, plan)
            record, events = outcome.records[-1]
            outcome.records[-1] = (replace(record, size=len(entry.raw), sha256=sha256(entry.raw).hexdigest()), events)
        return outcome

    def _groups(self, env: Envelope, role: str) -> list[tuple[Tenant | None, list[str]]]:
        """Recipients per organisation: one history record each, so no tenant sees another's mail."""
        if role == "outbound":
            return [(self.directory.tenant_for([env.mail_from]), list(env.rcpt_to))]
        groups: dict[str, tuple[Tenant | None, list[str]]] = {}
        for rcpt in env.rcpt_to:
            found = self.directory.lookup(rcpt)
            tenant = found[0] if found else None
            name = tenant.organisation.name if tenant else ""
            groups.setdefault(name, (tenant, []))[1].append(rcpt)
        return list(groups.values())

    def _mode(self, tenant: Tenant | None, role: str, sender: str, rcpts: Sequence[str]) -> Mode:
        """Enforce only when every domain concerned (the recipients' inbound, the sender's outbound) is
        in enforce mode; journal copies are always monitor mode."""
        if tenant is None or role == "journal":
            return Mode.MONITOR
        addresses = rcpts if role == "inbound" else [sender]
        modes = {tenant.organisation.mode_for(domain_of(a)) for a in addresses}
        return Mode.ENFORCE if modes == {Mode.ENFORCE} else Mode.MONITOR

    def _apply(
        self,
        outcome: Outcome,
        message_id: str,
        message: Message,
        env: Envelope,
        verdict: Verdict,
        tenant: Tenant | None,
        mode: Mode,
        plan: Plan,
    ) -> None:
        now = datetime.now(UTC)
        applied = mode is Mode.ENFORCE and verdict.category is not Category.INTERNAL
        events = [
            EventRecord(
                EventType.RECEIVE, _receive(outcome.entry), smtp_reply=_queued(outcome.entry), at=env.received_at
            )
        ]
        if verdict.category is Category.INTERNAL:
            events.append(EventRecord(EventType.RECORD, "internal mail: not scanned", at=now))
        else:
            events.append(EventRecord(EventType.SCAN, scan_summary(verdict), at=now))
            if not applied:
                events.append(EventRecord(EventType.RECORD, would_have(verdict), at=now))
            elif plan.event is not None:
                events.append(EventRecord(plan.event, plan.detail, smtp_reply=plan.smtp_reply, at=now))
            events += _rule_events(verdict, plan if applied else None, now)
            if applied and plan.pool and plan.pool not in self.rt.config.delivery.pools:
                # a policy may name a pool this node's config lacks: say where the message went instead
                note = f"delivery pool {plan.pool!r} is not in [delivery] pools: the default pool is used"
                events.append(EventRecord(EventType.RULE, note, at=now))
        status = plan.status if applied else RecipientStatus.PENDING
        recipients = [RecipientRecord(r, "envelope", status) for r in env.rcpt_to]
        # a transport rule's To/Cc/Bcc recipients under their field; other new targets come from a redirect
        added = {address: header.lower() for address, header in plan.added}
        recipients += [
            RecipientRecord(r, added.get(r, "redirect"), RecipientStatus.PENDING)
            for r in plan.deliver_to
            if r not in env.rcpt_to
        ]
        blob_key = f"quarantine-{message_id}.eml"
        if plan.quarantine:
            outcome.blobs.append((blob_key, outcome.entry.raw))
        lifetime = self.rt.config.delivery.max_queue_lifetime
        if plan.raw is not None and plan.deliver_to:
            for route_index, (route, rcpts) in enumerate(self._routes(plan.deliver_to, tenant, plan.pool)):
                job = DeliveryJob.create(
                    message_id=message_id,
                    mail_from=env.mail_from,
                    recipients=rcpts,
                    route=route,
                    message=plan.raw,
                    lifetime=lifetime,
                )
                outcome.jobs.append(replace(job, id=derive_id(message_id, f"deliver/{route_index}")))
        if applied and verdict.category is Category.MALWARE:
            notified = self._notify_malware(outcome, message_id, message, env, verdict, tenant)
            if notified:
                events.append(EventRecord(EventType.NOTIFY, "malware notification to " + ", ".join(notified), at=now))
        reported = self._incident_reports(outcome, message_id, message, env, verdict, tenant) if applied else []
        if reported:
            events.append(EventRecord(EventType.NOTIFY, "incident report to " + ", ".join(reported), at=now))
        if plan.bounce and env.mail_from:
            outcome.jobs.append(self._bounce(message_id, outcome.entry.raw, env, plan))
            events.append(EventRecord(EventType.DSN, f"NDR to {env.mail_from}", at=now))
        record = message_record(
            message_id=message_id,
            message=message,
            envelope=env,
            verdict=verdict,
            organisation=tenant.organisation.name if tenant else None,
            mode=mode,
            source="smtp",
            applied=applied,
            recipients=recipients,
        )
        outcome.records.append((record, redacted_events(events)))
        if plan.quarantine or not applied:
            # enforce: an entry per recipient for the blob above; monitor: what would have been held
            outcome.quarantine += _entries(record, verdict, tenant.policy if tenant else Policy(), blob_key=blob_key)

    def _notify_malware(
        self,
        outcome: Outcome,
        message_id: str,
        message: Message,
        env: Envelope,
        verdict: Verdict,
        tenant: Tenant | None,
    ) -> list[str]:
        """Notification jobs (null sender, no bounce loops) to the policy's admins and internal sender."""
        policy = tenant.policy if tenant else Policy()
        targets = list(policy.malware.notify_admins)
        domains = tenant.organisation.domain_names if tenant else frozenset()
        if policy.malware.notify_internal_sender and env.mail_from and is_org_address(env.mail_from, domains):
            targets.append(env.mail_from)
        hostname = self.rt.config.delivery.ehlo_hostname()
        for target in dict.fromkeys(targets):
            note = malware_notification(
                to=target,
                hostname=hostname,
                message=message,
                recipients=env.rcpt_to,
                verdict=verdict,
                message_id=message_id,
                received=env.received_at,
                policy=policy,
            )
            outcome.jobs.append(self._notice(message_id, target, tenant, note, "notify"))
        return list(dict.fromkeys(targets))

    def _routes(
        self, recipients: Sequence[str], tenant: Tenant | None, pool: str | None = None
    ) -> list[tuple[Route, list[str]]]:
        """Recipients grouped by next hop: an organisation domain's own next hop, else the internet
        (through the delivery pool a transport rule chose, when `[delivery] pools` has it)."""
        internet = Route(pool=pool) if pool and pool in self.rt.config.delivery.pools else Route()
        routes: dict[Route, list[str]] = {}
        for rcpt in recipients:
            found = self.directory.lookup(rcpt)
            if found and found[1].next_hop:
                route = parse_next_hop(found[1].next_hop, require_tls=found[1].require_tls)
            else:
                route = internet
            routes.setdefault(route, []).append(rcpt)
        return list(routes.items())

    def _incident_reports(
        self,
        outcome: Outcome,
        message_id: str,
        message: Message,
        env: Envelope,
        verdict: Verdict,
        tenant: Tenant | None,
    ) -> list[str]:
        """Transport rules' incident reports (null sender) to the administrators they name."""
        targets: dict[str, list[str]] = {}
        for mod in verdict.disposition.modifications:
            if mod.kind is ModificationKind.INCIDENT_REPORT:
                targets.setdefault(mod.value, []).append(mod.rule)
        for target, rules in targets.items():
            report = incident_report(
                to=target,
                hostname=self.rt.config.delivery.ehlo_hostname(),
                message=message,
                sender=env.mail_from,
                recipients=env.rcpt_to,
                verdict=verdict,
                rules=tuple(dict.fromkeys(rules)),
                message_id=message_id,
                received=env.received_at,
            )
            outcome.jobs.append(self._notice(message_id, target, tenant, report, "incident-report"))
        return list(targets)

    def _notice(self, message_id: str, target: str, tenant: Tenant | None, raw: bytes, kind: str) -> DeliveryJob:
        """A notification (malware alert, incident report) from the null sender, routed like mail to
        `target`; its job id is derived from the message's, the kind and the target, so a replay
        queues it once and no two notices share one."""
        ((route, _),) = self._routes([target], tenant)
        job = DeliveryJob.create(
            message_id=message_id,
            mail_from="",
            recipients=[target],
            route=route,
            message=raw,
            lifetime=self.rt.config.delivery.max_queue_lifetime,
        )
        return replace(job, id=derive_id(message_id, f"{kind}/{target}"))

    def _bounce(self, message_id: str, raw: bytes, env: Envelope, plan: Plan) -> DeliveryJob:
        reply = plan.smtp_reply or "550 5.7.1 Message rejected by policy"
        _, _, text = reply.partition(" ")
        status = text.split(" ", 1)[0] if text[:1].isdigit() else "5.7.1"
        failures = [
            RecipientFailure(
                r, status, reply, reason=plan.detail or "rejected by policy", diagnostic_type="X-mailwarden"
            )
            for r in env.rcpt_to
        ]
        dsn = build_dsn(raw, env.mail_from, failures, self.rt.config.delivery.ehlo_hostname())
        route = self.dsn_route(env.mail_from)
        job = DeliveryJob.create(
            message_id=message_id,
            mail_from="",
            recipients=[env.mail_from],
            route=route,
            message=dsn,
            lifetime=self.rt.config.delivery.max_queue_lifetime,
            kind=JobKind.DSN,
        )
        return replace(job, id=derive_id(message_id, "ndr"))

    def dsn_route(self, sender: str) -> Route:
        """Bounces to the organisation's own senders go to its mail server; others to the internet."""
        found = self.directory.lookup(sender)
        if found and found[1].next_hop:
            return parse_next_hop(found[1].next_hop, require_tls=found[1].require_tls)
        return Route()


# ---- scanning processes ----------------------------------------------------------------------
# Each scanning process has its own runtime: database connection (for the organisation directory),
# stages (DNS resolver, YARA rules, clamd connections) and an event loop. The server process keeps
# the SMTP listeners, the spool, history writing and delivery; only bytes and results cross over.
_worker: Processor | None = None
_worker_loop: asyncio.AbstractEventLoop | None = None


def _init_worker(config: Config, roles: dict[str, str], lifeline: Connection) -> None:
    global _worker, _worker_loop
    exit_with_server(lifeline)
    configure_logging(config.log.level, config.log.format)
    if config.processing.scan_nice:
        with contextlib.suppress(OSError):  # a container may forbid it: scanning still works
            os.nice(config.processing.scan_nice)
    run_inline()
    rt = Runtime(config)
    directory = OrgDirectory(rt.policies, refresh_seconds=config.processing.policy_refresh_seconds)
    _worker = Processor(rt, None, directory, roles=roles)
    _worker_loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_worker_loop)


def _process_batch_in_worker(batch: list[SpoolEntry]) -> list[Outcome | Unavailable | str]:
    """Scan a batch concurrently (DNS waits overlap); per entry an outcome, or the error as text."""
    assert _worker is not None and _worker_loop is not None
    worker = _worker

    async def one(entry: SpoolEntry) -> Outcome | Unavailable | str:
        try:
            outcome = await worker.process(entry)
        except DependencyUnavailable as exc:
            return Unavailable(str(exc))
        except Exception as exc:
            log.exception("processing_failed", spool_id=entry.id)
            return f"{type(exc).__name__}: {exc}"
        outcome.entry = replace(entry, raw=b"")  # the server has the bytes; don't send them back
        return outcome

    async def run() -> list[Outcome | Unavailable | str]:
        return list(await asyncio.gather(*(one(entry) for entry in batch)))

    return _worker_loop.run_until_complete(run())


def _rule_events(verdict: Verdict, plan: Plan | None, now: datetime) -> list[EventRecord]:
    """Trace rows for transport rules: what each matched rule did (or, audit / monitor, would have done)."""
    events = []
    for finding in verdict.findings:
        if finding.stage != "rules":
            continue
        audit = "(audit: would have)" in finding.detail
        kind = EventType.RULE if plan is not None and not audit else EventType.RECORD
        events.append(EventRecord(kind, "transport rule " + finding.detail, at=now))
    if plan is not None:
        events += [EventRecord(EventType.RULE, note, at=now) for note in plan.notes if note.startswith("rule ")]
    return events


def _entries(record: MessageRecord, verdict: Verdict, policy: Policy, *, blob_key: str | None) -> list[NewEntry]:
    """Quarantine entries for a message whose action is (or, unapplied, would be) quarantine."""
    reason = reason_for(verdict, policy)
    if reason is None:
        return []
    held = [r.address for r in record.recipients if r.status in (RecipientStatus.QUARANTINED, RecipientStatus.RECORDED)]
    return new_entries(
        message_id=record.id,
        organisation=record.organisation,
        recipients=held if record.applied else [r.address for r in record.recipients],
        reason=reason,
        sender=record.sender,
        subject=record.subject,
        received_at=record.received_at,
        policy=policy,
        would_have=not record.applied,
        blob_key=blob_key,
        sha256=record.sha256,
        size=record.size,
    )


def _header_block(raw: bytes) -> bytes:
    """The message's header section alone (up to the first empty line)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[: end + len(separator)]
    return raw


def _error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _queued(entry: SpoolEntry) -> str:
    """The reply the client was given when the message was spooled."""
    return QUEUED.format(id=entry.id)


def _receive(entry: SpoolEntry) -> str:
    env = entry.envelope
    parts = [f"listener {entry.listener}"]
    if env.client_ip:
        parts.append(f"from [{env.client_ip}]")
    if env.helo:
        parts.append(f"helo={env.helo}")
    if env.tls:
        parts.append(f"tls={env.tls.version}")
    if env.authenticated_as:
        parts.append(f"auth={env.authenticated_as}")
    return " ".join(parts)
