"""One spool entry in, its outcome out: a journal report unwrapped and scanned, or a message at the
gateway scanned once per organisation of its recipients; the verdict's effects come from `enforce/`.

No side effects: the history writer makes the outcome durable. Runs in the scanning processes (or in
the server when there are none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from hashlib import sha256

import structlog

from mailwarden.enforce.apply import Plan, plan_delivery
from mailwarden.enforce.dkim_sign import DkimSigner
from mailwarden.enforce.outcome import Arrival, Effects, Outcomes, Sending, mode_for, quarantine_entries, rule_events
from mailwarden.enforce.record import monitor_record
from mailwarden.ids import derive_id
from mailwarden.ingest.journal import JournalEnvelope, JournalParseError, unwrap
from mailwarden.ingest.replies import QUEUED
from mailwarden.ingest.spool import SpoolEntry
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
from mailwarden.model.listener import ListenerRole
from mailwarden.model.org import Domain
from mailwarden.model.policy import Tenant
from mailwarden.model.trace import EventRecord, EventType, RecipientRecord, RecipientStatus
from mailwarden.pipeline.engine import Pipeline
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.service.config import Config
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.sender_activity import SenderActivityLookup

log = structlog.get_logger(__name__)

JOURNAL_PARSE_ERROR = "JOURNAL_PARSE_ERROR"


@dataclass(kw_only=True)
class Outcome(Effects):
    """What processing one spool entry produced, waiting to be written."""

    entry: SpoolEntry
    dedupe_key: str | None = None
    # (organisation, Message-ID, sender) to look for in history: the dedupe key's identity, in history's columns
    dedupe_lookup: tuple[str | None, str, str] | None = None
    given_up: bool = False  # the record of a message processing gave up on: the last thing tried


def record_id(spool_id: str, index: int) -> str:
    """The history id of the index-th organisation's record of a spool entry: the first keeps the
    spool id (the id the client was told in the 250 reply), the others are derived from it."""
    return spool_id if index == 0 else derive_id(spool_id, f"record/{index}")


class Scanner:
    """Scans spool entries with the pipeline and turns each verdict into its outcome."""

    def __init__(
        self,
        pipeline: Pipeline,
        directory: OrgDirectory,
        roles: Mapping[str, ListenerRole],
        outcomes: Outcomes,
        *,
        senders: SenderActivityLookup | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.directory = directory
        self.roles = {name: ListenerRole(role) for name, role in roles.items()}
        self.outcomes = outcomes
        self.senders = senders  # the compromised-account signals' facts; None: not looked up (retro-hunt)

    async def _facts(
        self, direction: Direction, tenant: Tenant | None, envelope: Envelope, facts: ScanFacts
    ) -> ScanFacts:
        """The seed facts, with the sender's activity for an outbound message."""
        if self.senders is not None and direction is Direction.OUTBOUND and tenant is not None and envelope.mail_from:
            facts.sender = await self.senders.facts(
                tenant.organisation.name, envelope.mail_from, envelope.rcpt_to,
                tenant.organisation.domain_names, envelope.received_at,
            )  # fmt: skip
        return facts

    def role(self, entry: SpoolEntry) -> ListenerRole:
        """The role of the listener that took the entry (a listener no longer configured: journal,
        the role that changes nothing)."""
        return self.roles.get(entry.listener, ListenerRole.JOURNAL)

    async def process(self, entry: SpoolEntry) -> Outcome:
        # an entry replayed after a crash may be in history already: the writer checks a batch at once
        role = self.role(entry)
        if role is ListenerRole.JOURNAL:
            return await self._journal(entry)
        return await self._inline(entry, role)

    # ---- journal reports -----------------------------------------------------------------------
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
        message = Message(je.original)
        envelope = Envelope(je.sender, tuple(r.address for r in je.recipients), None, received_at=env.received_at)
        policy = tenant.policy if tenant else Policy()
        domains = tenant.organisation.domain_names if tenant else frozenset()
        direction = classify_direction(je.sender, envelope.rcpt_to, domains, originated=je.originated)
        verdict = await self.pipeline.scan(
            message,
            envelope,
            policy,
            organisation=tenant.organisation if tenant else None,
            direction=direction,
            facts=await self._facts(
                direction, tenant, envelope, ScanFacts(journal=True, journal_format=je.source_format.value)
            ),
        )
        return self._journal_outcome(entry, je, tenant, message, envelope, verdict, unwrapped_at)

    def _journal_outcome(
        self,
        entry: SpoolEntry,
        je: JournalEnvelope,
        tenant: Tenant | None,
        message: Message,
        envelope: Envelope,
        verdict: Verdict,
        unwrapped_at: datetime,
    ) -> Outcome:
        """A journal copy's record (monitor mode: what would have happened) and would-have entries.
        Copies of a message already recorded are merged by the writer (one place, no races)."""
        org_name = tenant.organisation.name if tenant else None
        unwrap_event = EventRecord(
            EventType.JOURNAL_UNWRAP,
            f"{je.source_format.value}: {len(je.recipients)} recipients, envelope confidence "
            f"{je.envelope_confidence.value}" + (", spoof of own domain" if je.spoof_of_own_domain else ""),
            at=unwrapped_at,
        )
        recipients = [
            RecipientRecord(r.address, r.field, RecipientStatus.RECORDED, r.expanded_from, r.forwarded_from)
            for r in je.recipients
        ]
        record, events = monitor_record(
            message_id=entry.id,
            message=message,
            envelope=envelope,
            verdict=verdict,
            organisation=org_name,
            source="journal",
            recipients=recipients,
            receive_detail=arrival(entry).detail,
            receive_reply=arrival(entry).reply,
            extra_events=[unwrap_event, *rule_events(verdict, None, unwrapped_at)],
        )
        record = replace(record, provider=je.provider_verdict)
        lookup = (org_name, je.original_message_id, record.sender) if je.original_message_id else None
        outcome = Outcome(
            entry=entry, records=[(record, events)], dedupe_key=f"{org_name}|{je.dedupe_key}", dedupe_lookup=lookup
        )
        outcome.quarantine = quarantine_entries(record, verdict, tenant.policy if tenant else Policy(), blob_key=None)
        return outcome

    def _journal_error(self, entry: SpoolEntry, reason: str) -> Outcome:
        """A report that cannot be unwrapped is recorded as such and kept byte for byte for inspection."""
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
            message=Message(entry.raw),
            envelope=entry.envelope,
            verdict=verdict,
            organisation=None,
            source="journal",
            receive_detail=arrival(entry).detail,
            receive_reply=arrival(entry).reply,
            extra_events=[EventRecord(EventType.JOURNAL_UNWRAP, f"journal_parse_error: {reason}; kept as {blob_key}")],
        )
        log.warning("journal_parse_error", spool_id=entry.id, reason=reason, blob=blob_key)
        return Outcome(entry=entry, records=[(record, events)], blobs=[(blob_key, entry.raw)])

    # ---- mail at the gateway -------------------------------------------------------------------
    async def _inline(self, entry: SpoolEntry, role: ListenerRole) -> Outcome:
        """A message that arrived at the gateway: scan, then apply (enforce) or relay unchanged (monitor)."""
        env = entry.envelope
        message = Message(entry.raw)
        outcome = Outcome(entry=entry)
        for index, (tenant, rcpts) in enumerate(self.groups(env, role)):
            domains = tenant.organisation.domain_names if tenant else frozenset()
            sub_env = replace(env, rcpt_to=tuple(rcpts))
            # the outbound listener takes only authenticated clients and allowed networks
            direction = classify_direction(env.mail_from, rcpts, domains, originated=role is ListenerRole.OUTBOUND)
            verdict = await self.pipeline.scan(
                message,
                sub_env,
                tenant.policy if tenant else Policy(),
                organisation=tenant.organisation if tenant else None,
                direction=direction,
                facts=await self._facts(direction, tenant, sub_env, ScanFacts()),
            )
            mode = mode_for(tenant, role, env.mail_from, rcpts)
            plan = self.outcomes.plan(entry.raw, message, verdict, rcpts, mode=mode)
            message_id = record_id(entry.id, index)
            self.outcomes.apply(
                outcome, message_id, entry.raw, message, sub_env, verdict, tenant, mode, plan, arrival(entry)
            )
        return outcome

    def groups(self, env: Envelope, role: ListenerRole) -> list[tuple[Tenant | None, list[str]]]:
        """Recipients per organisation: one history record each, so no tenant sees another's mail."""
        if role is ListenerRole.OUTBOUND:
            return [(self.directory.tenant_for([env.mail_from]), list(env.rcpt_to))]
        groups: dict[str, tuple[Tenant | None, list[str]]] = {}
        for rcpt in env.rcpt_to:
            found = self.directory.lookup(rcpt)
            tenant = found[0] if found else None
            name = tenant.organisation.name if tenant else ""
            groups.setdefault(name, (tenant, []))[1].append(rcpt)
        return list(groups.values())

    # ---- a message processing gave up on -------------------------------------------------------
    def given_up(self, entry: SpoolEntry, error: str, attempts: int) -> Outcome:
        """The outcome of a message processing gave up on, built from its envelope and header alone
        (the body may be what failed). Enforce: held in quarantine whatever the policy's
        scan_error_action says (that covers one filter failing while the others ran; here none could
        finish). Monitor on the gateway: relayed unchanged, as monitor mode promises. Journal copy:
        recorded, the report kept. Every record carries the error in its Scan event."""
        env = entry.envelope
        role = self.role(entry)
        headers = Message(header_block(entry.raw))
        verdict = Verdict(
            direction=Direction.OUTBOUND if role is ListenerRole.OUTBOUND else Direction.INBOUND,
            category=Category.SCAN_ERROR,
            disposition=Disposition(Action.QUARANTINE, reason="processing failed"),
            scan_errors=(f"processing failed {attempts} times: {error}",),
        )
        outcome = Outcome(entry=entry, given_up=True)
        groups = [(None, list(env.rcpt_to))] if role is ListenerRole.JOURNAL else self.groups(env, role)
        for index, (tenant, rcpts) in enumerate(groups):
            message_id = record_id(entry.id, index)
            mode = mode_for(tenant, role, env.mail_from, rcpts)
            plan = _held_plan() if mode is Mode.ENFORCE else plan_delivery(entry.raw, verdict, rcpts, applied=False)
            if role is ListenerRole.JOURNAL:  # nothing to relay; the report is kept for inspection
                plan = replace(plan, raw=None, deliver_to=())
                outcome.blobs.append((f"failed-{message_id}.eml", entry.raw))
            sub_env = replace(env, rcpt_to=tuple(rcpts))
            self.outcomes.apply(
                outcome, message_id, entry.raw, headers, sub_env, verdict, tenant, mode, plan, arrival(entry)
            )
            record, events = outcome.records[-1]
            outcome.records[-1] = (replace(record, size=len(entry.raw), sha256=sha256(entry.raw).hexdigest()), events)
        return outcome


def _held_plan() -> Plan:
    return Plan(
        Action.QUARANTINE,
        None,
        (),
        RecipientStatus.QUARANTINED,
        EventType.QUARANTINE,
        detail="processing failed: held in quarantine",
        quarantine=True,
    )


def header_block(raw: bytes) -> bytes:
    """The message's header section alone (up to the first empty line)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[: end + len(separator)]
    return raw


def arrival(entry: SpoolEntry) -> Arrival:
    """The Receive event of a spool entry: the listener and client, and the reply the client was given."""
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
    return Arrival(" ".join(parts), QUEUED.format(id=entry.id))


def outcomes_for(config: Config, directory: OrgDirectory) -> Outcomes:
    """The outcome of verdicts as this node's configuration and directory have it."""

    def domain_entry(address: str) -> Domain | None:
        found = directory.lookup(address)
        return found[1] if found else None

    d = config.delivery
    sending = Sending(hostname=d.ehlo_hostname(), lifetime=d.max_queue_lifetime, pools=frozenset(d.pools))
    return Outcomes(sending, domain_entry, DkimSigner.from_config(config.dkim))
