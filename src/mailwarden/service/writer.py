"""The history writer: what scanning produced is made durable, in batches, in an order a crash cannot break.

For each spool entry, one after another within a batch's thread hop:

1. quarantine blobs, kept reports, and one blob with the spool entries of the batch's newly recorded
   messages, kept for retro-hunt (`[retention] keep_days`, zstd);
2. delivery jobs, **held** (the agent does not see them yet);
3. history records, their quarantine entries and kept-message rows, in one transaction for the batch (an id or a
   (message, recipient) pair already there is skipped, so a replay writes nothing twice);
4. journal copies of a message already recorded are merged into its record, each with the quarantine
   entries of its recipients, in a transaction of its own;
5. the held jobs are released to the agent; then the spool entries are removed.

A crash before 3 leaves the entry in the spool; its held jobs are discarded at the next start and the
replay writes them again. A crash after 3 leaves held jobs whose message is in history: they are
released at the next start, and the replay, finding the record, writes nothing but what is idempotent.
Either way no job is sent twice and none is lost.

One message's failure holds up no other: a batch that fails is written again one outcome at a time,
and only the outcome that fails alone is reported back (tried again later, then given up on). A
database that cannot be reached is nobody's failure: the batch waits, with growing pauses, until it
can be written, while the listeners keep spooling mail.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from mailwarden import metrics
from mailwarden.deliver import DeliveryAgent, DeliveryJob
from mailwarden.errors import NotFoundError
from mailwarden.ingest.spool import Spool, SpoolEntry
from mailwarden.model.quarantine import NewEntry
from mailwarden.model.trace import EventRecord, EventType, MessageRecord, RecipientRecord
from mailwarden.service.delivery_trace import DeliveryTrace
from mailwarden.service.runtime import Runtime
from mailwarden.service.scan import Outcome
from mailwarden.store.db import unavailable
from mailwarden.store.kept import KeptMessage, KeptStore, blob_key, compress
from mailwarden.store.quarantine import QuarantineStore

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = structlog.get_logger(__name__)

RECENT_COPIES = 100_000  # journal de-duplication keys this process remembers
FIRST_PAUSE = 1.0  # seconds before the first new try while the database is unreachable
LONGEST_PAUSE = 30.0


@dataclass
class _Write:
    """What writing one outcome does this time, decided afresh at every try (the outcome stays as scanned)."""

    outcome: Outcome
    records: list[tuple[MessageRecord, list[EventRecord]]]
    blobs: list[tuple[str, bytes]]
    jobs: list[DeliveryJob]
    quarantine: list[NewEntry]
    merge_into: str | None = None  # journal copy of a message already recorded: its recipients go there
    kept: list[KeptMessage] = field(default_factory=list)

    @property
    def history_id(self) -> str | None:
        return self.records[0][0].id if self.records else self.merge_into


OnFailure = Callable[[Outcome, str], Awaitable[None]]
OnWritten = Callable[[list[SpoolEntry]], None]
OnRecorded = Callable[[list[MessageRecord]], Awaitable[None]]


class HistoryWriter:
    """Consumes scanned outcomes, writes them in batches, and reports delivery events into history."""

    def __init__(
        self,
        rt: Runtime,
        spool: Spool | None,
        *,
        on_failure: OnFailure,
        on_written: OnWritten,
    ) -> None:
        cfg = rt.config.processing
        self.rt = rt
        self.spool = spool
        self.agent: DeliveryAgent | None = None
        self.quarantine = QuarantineStore(rt.db)
        self.kept = KeptStore(rt.db, rt.blobs)
        self.retention = rt.config.retention
        self.batch_size = cfg.batch_size
        self.batch_delay = cfg.batch_delay_ms / 1000
        self.dedupe_window = timedelta(hours=cfg.journal_dedupe_hours)
        self.outcomes: asyncio.Queue[Outcome] = asyncio.Queue(maxsize=cfg.batch_size * 4)
        self._on_failure = on_failure
        self._on_written = on_written
        # journal de-duplication: key → history id of the first copy written by this process (bounded)
        self._recent: OrderedDict[str, str] = OrderedDict()
        self.delivery_trace = DeliveryTrace(rt.history)
        self.processed = 0
        # told about every record once it is durable (merged journal copies as records of the first copy's
        # id with the copy's recipients): the automatic clawback hangs here
        self.on_recorded: OnRecorded | None = None

    # ---- start-up --------------------------------------------------------------------------
    def settle_held_jobs(self) -> None:
        """After a crash: release the held jobs whose message reached history, discard the others (the
        spool replay writes them again)."""
        if self.agent is None:
            return
        queue = self.agent.queue
        held = queue.held()
        if not held:
            return
        present = self.rt.history.existing_ids(sorted(set(held.values())))
        queue.release([job for job, message in held.items() if message in present])
        queue.discard_held([job for job, message in held.items() if message not in present])
        log.info("held_delivery_jobs_settled", released=sum(m in present for m in held.values()), held=len(held))

    # ---- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            batch = await self._next_batch()
            try:
                await self._write_isolated(batch)
            finally:
                for _ in batch:
                    self.outcomes.task_done()

    async def _next_batch(self) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        batch = [await self.outcomes.get()]
        deadline = loop.time() + self.batch_delay
        while len(batch) < self.batch_size:
            timeout = deadline - loop.time()
            if timeout <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.outcomes.get(), timeout))
            except TimeoutError:
                break
        return batch

    async def _write_isolated(self, batch: list[Outcome]) -> None:
        """The batch in one go; when that fails, each outcome alone, so one message holds up no other."""
        try:
            await self._write_while_reachable(batch)
            return
        except Exception as exc:
            if len(batch) == 1:
                await self._failed(batch[0], exc)
                return
            log.warning("history_batch_failed", batch=len(batch), error=_one_line(exc), then="one message at a time")
        for outcome in batch:
            try:
                await self._write_while_reachable([outcome])
            except Exception as exc:
                await self._failed(outcome, exc)

    async def _write_while_reachable(self, batch: list[Outcome]) -> None:
        """Write; while the database cannot be reached, wait and try again (growing pauses, one log
        line each), so an outage holds the messages in the spool instead of failing them."""
        pause = FIRST_PAUSE
        while True:
            try:
                await self._write(batch)
                return
            except Exception as exc:
                reason = unavailable(exc)
                if reason is None:
                    raise
                metrics.DATABASE_UNAVAILABLE.inc()
                log.error("database_unavailable", error=reason, waiting=len(batch), retry_in_seconds=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE)

    async def _failed(self, outcome: Outcome, exc: Exception) -> None:
        """An outcome that failed alone: log it once, and let the processor try it again or give up."""
        error = f"{type(exc).__name__}: {_one_line(exc)}"
        log.error("history_write_failed", spool_id=outcome.entry.id, error=error, exc_info=exc)
        await self._on_failure(outcome, error)

    # ---- one batch -------------------------------------------------------------------------
    async def _write(self, batch: list[Outcome]) -> None:
        writes = await asyncio.to_thread(self._durable, batch)
        if self.agent is not None and any(w.jobs for w in writes):
            self.agent.notify()
        for w in writes:
            self._remember(w)
            for record, _ in w.records:
                await self.delivery_trace.recorded(record.id)
                _count(record)
        if self.on_recorded is not None:
            await self._tell_recorded(writes)
        if self.spool is not None:
            await self.spool.done_many_async([o.entry.id for o in batch])
        self._on_written([o.entry for o in batch])
        self.processed += len(batch)
        metrics.PROCESSED.inc(len(batch))

    async def _tell_recorded(self, writes: list[_Write]) -> None:
        """The records are committed: what follows from them may fail without failing the messages."""
        assert self.on_recorded is not None
        records = [record for w in writes for record, _ in w.records]
        records += [replace(w.outcome.records[0][0], id=w.merge_into) for w in writes if w.merge_into is not None]
        if not records:
            return
        try:
            await self.on_recorded(records)
        except Exception as exc:
            log.error("after_record_failed", records=len(records), error=_one_line(exc), exc_info=exc)

    def _durable(self, batch: list[Outcome]) -> list[_Write]:
        """Steps 1–5 of the module docstring, in one thread hop for the whole batch."""
        queue = self.agent.queue if self.agent is not None else None
        # one session for the batch: its look-ups, then a record and its quarantine entries, or neither
        with self.rt.db.session() as session:
            writes = self._prepare(batch, session)
            for w in writes:
                for key, data in w.blobs:
                    self.rt.blobs.put(key, data)
            kept = self._keep(writes)
            if kept is not None:
                self.rt.blobs.put(*kept)
            jobs = [job for w in writes for job in w.jobs]
            if queue is not None:
                for job in jobs:
                    queue.hold(job)
            self.rt.history.record_many([item for w in writes for item in w.records], session=session)
            entries = [e for w in writes if w.merge_into is None for e in w.quarantine]
            self.quarantine.record(entries, session=session)
            self.kept.record([k for w in writes for k in w.kept], session=session)
        for w in writes:  # after the batch's own records: a copy may merge into one of them
            if w.merge_into is not None:
                self._merge(w)
        if queue is not None:
            queue.release([job.id for job in jobs])
        return writes

    def _keep(self, writes: list[_Write]) -> tuple[str, bytes] | None:
        """Keep the batch's newly recorded messages for retro-hunt: one blob holding each spool entry as
        a zstd frame (returned: written before the records), and each record's row (`w.kept`, added with
        the records). Merged copies and replays record nothing new, so they keep nothing; neither does a
        message processing gave up on (its report is kept for inspection, and a rescan would fail again)."""
        days = self.retention.keep_days
        if not days:
            return None
        now = datetime.now(UTC)  # one expiry for the whole blob
        frames: list[bytes] = []
        offset = 0
        key = ""
        for w in writes:
            if not w.records or w.merge_into is not None or w.outcome.given_up:
                continue
            entry = w.outcome.entry
            key = key or blob_key(entry.id)
            data = compress(entry.raw, self.retention.zstd_level)
            w.kept = [
                KeptMessage(
                    message_id=record.id,
                    organisation=record.organisation,
                    kept_at=now,
                    expires_at=now + timedelta(days=days),
                    spool_id=entry.id,
                    listener=entry.listener,
                    envelope=entry.envelope,
                    raw_size=len(entry.raw),
                    stored_size=len(data),
                    blob_key=key,
                    blob_offset=offset,
                )
                for record, _ in w.records
            ]
            frames.append(data)
            offset += len(data)
        return (key, b"".join(frames)) if frames else None

    def _prepare(self, batch: list[Outcome], session: Session) -> list[_Write]:
        """Entries replayed after a crash write only what is idempotent, and journal copies of a message
        already recorded (in this batch, earlier in this process, before a restart or by another node)
        become merges. Two queries for the whole batch, in the batch's session."""
        present = self.rt.history.existing_ids([o.entry.id for o in batch if o.records], session=session)
        lookups = [
            o.dedupe_lookup
            for o in batch
            if o.dedupe_lookup and o.entry.id not in present and o.dedupe_key not in self._recent
        ]
        since = datetime.now(UTC) - self.dedupe_window
        earlier = self.rt.history.find_by_internet_message_ids(lookups, since=since, session=session) if lookups else {}
        first_in_batch: dict[str, str] = {}
        writes = []
        for o in batch:
            w = _Write(o, list(o.records), list(o.blobs), list(o.jobs), list(o.quarantine))
            writes.append(w)
            if o.entry.id in present:  # replayed: recorded before the crash, its jobs held then
                w.records, w.blobs, w.jobs = [], [], []
                continue
            if o.dedupe_key is None or not o.records:
                continue
            target = (
                first_in_batch.get(o.dedupe_key)
                or self._recent.get(o.dedupe_key)
                or (earlier.get(o.dedupe_lookup) if o.dedupe_lookup else None)
            )
            if target is not None and target != o.entry.id:
                # the copy's recipients, and the quarantine entries they would have, join the first record
                w.merge_into = target
                w.quarantine = [replace(e, message_id=target) for e in o.quarantine]
                w.records, w.blobs, w.jobs = [], [], []
            else:
                first_in_batch[o.dedupe_key] = o.records[0][0].id
        return writes

    def _merge(self, w: _Write) -> None:
        target = w.merge_into
        assert target is not None
        recipients: list[RecipientRecord] = list(w.outcome.records[0][0].recipients)
        try:
            self.rt.history.add_recipients(
                target,
                recipients,
                event=lambda added: EventRecord(
                    EventType.JOURNAL_UNWRAP, f"another journal copy merged: {added} new recipients"
                ),
                also=lambda session: self.quarantine.record(w.quarantine, session=session),
            )
        except NotFoundError:
            # the first copy's record is gone (deleted meanwhile): forget it; the next try records this copy
            if w.outcome.dedupe_key is not None:
                self._recent.pop(w.outcome.dedupe_key, None)
            raise

    def _remember(self, w: _Write) -> None:
        key, history_id = w.outcome.dedupe_key, w.history_id
        if key is None or history_id is None:
            return
        self._recent[key] = history_id
        while len(self._recent) > RECENT_COPIES:
            self._recent.popitem(last=False)


def _count(record: MessageRecord) -> None:
    """The message and its stages' times in /metrics (the scanning processes have no registry of their own
    that Prometheus reads: the times travel with the verdict)."""
    verdict = record.verdict
    metrics.MESSAGES.labels(
        record.direction.value, record.mode.value, verdict.category.value, verdict.disposition.action.value
    ).inc()
    for stage in verdict.stages:
        metrics.STAGE_SECONDS.labels(stage.stage).observe(stage.duration_ms / 1000)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
