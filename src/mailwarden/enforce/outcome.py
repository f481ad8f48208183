"""The whole outcome of a verdict, decided once: what history records, what is held, what is sent.

Monitor or enforce is decided here (`mode_for`), and so is everything that follows from it: the
message's record and timeline, its quarantine entries (held, or what would have been held), and the
delivery and notification jobs, each with an id derived from the message's by what it is, so a replay
after a crash makes the same jobs again instead of new ones. Nothing here does I/O: the effects are
handed to the history writer (`service/writer.py`), which makes them durable and gives the jobs to the
delivery agent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from mailwarden.deliver import DeliveryJob, JobKind, Route, parse_next_hop
from mailwarden.deliver.dsn import RecipientFailure, build_dsn
from mailwarden.enforce.apply import Plan, plan_delivery
from mailwarden.enforce.dkim_sign import DkimSigner
from mailwarden.enforce.notify import incident_report, malware_notification
from mailwarden.enforce.pool import HIGH_RISK_POOL, high_risk_reason, is_high_risk
from mailwarden.enforce.record import message_record, redacted_events, scan_summary, would_have
from mailwarden.ids import derive_id
from mailwarden.model import Category, Direction, Envelope, Message, Mode, Policy, Verdict
from mailwarden.model.direction import is_org_address
from mailwarden.model.envelope import domain_of
from mailwarden.model.listener import ListenerRole
from mailwarden.model.org import Domain
from mailwarden.model.policy import Tenant
from mailwarden.model.quarantine import NewEntry, new_entries, reason_for
from mailwarden.model.replies import MESSAGE_REJECTED, POLICY_REJECT_STATUS
from mailwarden.model.trace import EventRecord, EventType, MessageRecord, RecipientRecord, RecipientStatus
from mailwarden.model.verdict import ModificationKind

# The domain entry of an address (its next hop, its TLS requirement), when an organisation has it.
DomainOf = Callable[[str], Domain | None]


@dataclass(kw_only=True)
class Effects:
    """What the outcome of one spool entry's verdicts leaves to be made durable."""

    records: list[tuple[MessageRecord, list[EventRecord]]] = field(default_factory=list)
    blobs: list[tuple[str, bytes]] = field(default_factory=list)
    jobs: list[DeliveryJob] = field(default_factory=list)
    # quarantine entries (would-have ones in monitor mode)
    quarantine: list[NewEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Arrival:
    """How the message reached us, for its Receive event: the listener and client, and our 250 reply."""

    detail: str
    reply: str | None


@dataclass(frozen=True, slots=True)
class Sending:
    """What the outcome needs to know about delivery: our name, how long a job may wait, the pools."""

    hostname: str
    lifetime: timedelta
    pools: Collection[str]


def mode_for(tenant: Tenant | None, role: ListenerRole, sender: str, rcpts: Sequence[str]) -> Mode:
    """Enforce only when every domain concerned (the recipients' inbound, the sender's outbound) is in
    enforce mode; journal copies, and mail of no organisation, are always monitor mode."""
    if tenant is None or role is ListenerRole.JOURNAL:
        return Mode.MONITOR
    addresses = rcpts if role is ListenerRole.INBOUND else [sender]
    modes = {tenant.organisation.mode_for(domain_of(a)) for a in addresses}
    return Mode.ENFORCE if modes == {Mode.ENFORCE} else Mode.MONITOR


class Outcomes:
    """Turns a verdict into its effects. `domain_of` finds an address's domain entry (the directory)."""

    def __init__(self, sending: Sending, domain_of: DomainOf, signer: DkimSigner) -> None:
        self.sending = sending
        self._domain = domain_of
        self.signer = signer

    # ---- plans -------------------------------------------------------------------------------
    def plan(self, raw: bytes, message: Message, verdict: Verdict, rcpts: Sequence[str], *, mode: Mode) -> Plan:
        """What applying the verdict does to the message (monitor: relay it unchanged), DKIM-signed last."""
        applied = mode is Mode.ENFORCE and verdict.category is not Category.INTERNAL
        high_risk = is_high_risk(verdict) and HIGH_RISK_POOL in self.sending.pools
        plan = plan_delivery(raw, verdict, rcpts, applied=applied, high_risk=high_risk)
        if applied and plan.raw is not None and verdict.direction is Direction.OUTBOUND and message.from_address:
            # the signature covers the message as it leaves: after every header and subject change
            plan = replace(plan, raw=self.signer.sign(plan.raw, domain_of(message.from_address) or ""))
        return plan

    # ---- a message at the gateway ------------------------------------------------------------
    def apply(
        self,
        effects: Effects,
        message_id: str,
        raw: bytes,
        message: Message,
        env: Envelope,
        verdict: Verdict,
        tenant: Tenant | None,
        mode: Mode,
        plan: Plan,
        arrival: Arrival,
    ) -> None:
        """The record, timeline, quarantine entries and jobs of a message that arrived at the gateway."""
        now = datetime.now(UTC)
        applied = mode is Mode.ENFORCE and verdict.category is not Category.INTERNAL
        events = [EventRecord(EventType.RECEIVE, arrival.detail, smtp_reply=arrival.reply, at=env.received_at)]
        events += self._verdict_events(verdict, plan, applied, now)
        blob_key = f"quarantine-{message_id}.eml"
        if plan.quarantine:
            effects.blobs.append((blob_key, raw))
        if plan.raw is not None and plan.deliver_to:
            effects.jobs += self._delivery_jobs(message_id, env.mail_from, plan)
        if applied and verdict.category is Category.MALWARE:
            notified = self._notify_malware(effects, message_id, message, env, verdict, tenant)
            if notified:
                events.append(EventRecord(EventType.NOTIFY, "malware notification to " + ", ".join(notified), at=now))
        language = tenant.policy.notifications.language if tenant else "en"
        reported = self._incident_reports(effects, message_id, message, env, verdict, language) if applied else []
        if reported:
            events.append(EventRecord(EventType.NOTIFY, "incident report to " + ", ".join(reported), at=now))
        bcc = tenant.policy.outbound_spam.bcc_suspicious if tenant else None
        if applied and bcc and verdict.direction is Direction.OUTBOUND and is_high_risk(verdict):
            # the outbound spam policy's copy of suspicious outbound mail, as it left (headers stamped)
            effects.jobs.append(self._notice(message_id, bcc, plan.raw or raw, "bcc-suspicious"))
            events.append(EventRecord(EventType.NOTIFY, f"copy of a suspicious outbound message to {bcc}", at=now))
        if plan.bounce and env.mail_from:
            effects.jobs.append(self._bounce(message_id, raw, env, plan))
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
            recipients=_recipients(env, plan, applied),
        )
        effects.records.append((record, redacted_events(events)))
        if plan.quarantine or not applied:
            # enforce: an entry per recipient for the blob above; monitor: what would have been held
            policy = tenant.policy if tenant else Policy()
            effects.quarantine += quarantine_entries(record, verdict, policy, blob_key=blob_key)

    def _verdict_events(self, verdict: Verdict, plan: Plan, applied: bool, now: datetime) -> list[EventRecord]:
        if verdict.category is Category.INTERNAL:
            return [EventRecord(EventType.RECORD, "internal mail: not scanned", at=now)]
        events = [EventRecord(EventType.SCAN, scan_summary(verdict), at=now)]
        if not applied:
            events.append(EventRecord(EventType.RECORD, would_have(verdict), at=now))
        elif plan.event is not None:
            events.append(EventRecord(plan.event, plan.detail, smtp_reply=plan.smtp_reply, at=now))
        events += self._pool_events(verdict, applied, now)
        events += rule_events(verdict, plan if applied else None, now)
        if applied and plan.pool and plan.pool not in self.sending.pools:
            # a policy may name a pool this node's config lacks: say where the message went instead
            note = f"delivery pool {plan.pool!r} is not in [delivery] pools: the default pool is used"
            events.append(EventRecord(EventType.RULE, note, at=now))
        return events

    def _pool_events(self, verdict: Verdict, applied: bool, now: datetime) -> list[EventRecord]:
        """Why outbound spam leaves through the high-risk pool (monitor mode: would have), or why it
        could not, because this node's `[delivery] pools` has no `high_risk`."""
        if not is_high_risk(verdict):
            return []
        reason = high_risk_reason(verdict)
        if not applied:
            return [EventRecord(EventType.RECORD, f"would have left through pool {HIGH_RISK_POOL}: {reason}", at=now)]
        if HIGH_RISK_POOL not in self.sending.pools:
            note = f"pool {HIGH_RISK_POOL} is not in [delivery] pools: {reason} left through the default pool"
            return [EventRecord(EventType.SCAN, note, at=now)]
        return [EventRecord(EventType.SCAN, f"pool {HIGH_RISK_POOL}: {reason}", at=now)]

    # ---- jobs ----------------------------------------------------------------------------------
    def routes(self, recipients: Sequence[str], pool: str | None = None) -> list[tuple[Route, list[str]]]:
        """Recipients grouped by next hop: an organisation domain's own next hop, else the internet
        (through the delivery pool a transport rule chose, when `[delivery] pools` has it)."""
        internet = Route(pool=pool) if pool and pool in self.sending.pools else Route()
        routes: dict[Route, list[str]] = {}
        for rcpt in recipients:
            routes.setdefault(self._route(rcpt) or internet, []).append(rcpt)
        return list(routes.items())

    def dsn_route(self, sender: str) -> Route:
        """Bounces to the organisation's own senders go to its mail server; others to the internet."""
        return self._route(sender) or Route()

    def _route(self, address: str) -> Route | None:
        domain = self._domain(address)
        if domain is None or not domain.next_hop:
            return None
        return parse_next_hop(domain.next_hop, require_tls=domain.require_tls)

    def _delivery_jobs(self, message_id: str, mail_from: str, plan: Plan) -> list[DeliveryJob]:
        assert plan.raw is not None
        jobs = []
        for index, (route, rcpts) in enumerate(self.routes(plan.deliver_to, plan.pool)):
            job = self._job(message_id, mail_from, rcpts, route, plan.raw)
            jobs.append(replace(job, id=derive_id(message_id, f"deliver/{index}")))
        return jobs

    def _job(
        self,
        message_id: str,
        mail_from: str,
        rcpts: Sequence[str],
        route: Route,
        raw: bytes,
        kind: JobKind = JobKind.MESSAGE,
    ) -> DeliveryJob:
        return DeliveryJob.create(
            message_id=message_id,
            mail_from=mail_from,
            recipients=list(rcpts),
            route=route,
            message=raw,
            lifetime=self.sending.lifetime,
            kind=kind,
        )

    def _notify_malware(
        self,
        effects: Effects,
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
        for target in dict.fromkeys(targets):
            note = malware_notification(
                to=target,
                hostname=self.sending.hostname,
                message=message,
                recipients=env.rcpt_to,
                verdict=verdict,
                message_id=message_id,
                received=env.received_at,
                policy=policy,
            )
            effects.jobs.append(self._notice(message_id, target, note, "notify"))
        return list(dict.fromkeys(targets))

    def _incident_reports(
        self, effects: Effects, message_id: str, message: Message, env: Envelope, verdict: Verdict, language: str
    ) -> list[str]:
        """Transport rules' incident reports (null sender) to the administrators they name, in the language of
        the organisation's notifications."""
        targets: dict[str, list[str]] = {}
        for mod in verdict.disposition.modifications:
            if mod.kind is ModificationKind.INCIDENT_REPORT:
                targets.setdefault(mod.value, []).append(mod.rule)
        for target, rules in targets.items():
            report = incident_report(
                to=target,
                hostname=self.sending.hostname,
                message=message,
                sender=env.mail_from,
                recipients=env.rcpt_to,
                verdict=verdict,
                rules=tuple(dict.fromkeys(rules)),
                message_id=message_id,
                received=env.received_at,
                language=language,
            )
            effects.jobs.append(self._notice(message_id, target, report, "incident-report"))
        return list(targets)

    def _notice(self, message_id: str, target: str, raw: bytes, kind: str) -> DeliveryJob:
        """A notification (malware alert, incident report) from the null sender, routed like mail to
        `target`; its job id is derived from the message's, the kind and the target, so a replay
        queues it once and no two notices share one."""
        ((route, _),) = self.routes([target])
        job = self._job(message_id, "", [target], route, raw)
        return replace(job, id=derive_id(message_id, f"{kind}/{target}"))

    def _bounce(self, message_id: str, raw: bytes, env: Envelope, plan: Plan) -> DeliveryJob:
        reply = plan.smtp_reply or MESSAGE_REJECTED
        _, _, text = reply.partition(" ")
        status = text.split(" ", 1)[0] if text[:1].isdigit() else POLICY_REJECT_STATUS
        failures = [
            RecipientFailure(
                r, status, reply, reason=plan.detail or "rejected by policy", diagnostic_type="X-mailwarden"
            )
            for r in env.rcpt_to
        ]
        dsn = build_dsn(raw, env.mail_from, failures, self.sending.hostname)
        job = self._job(message_id, "", [env.mail_from], self.dsn_route(env.mail_from), dsn, JobKind.DSN)
        return replace(job, id=derive_id(message_id, "ndr"))


def _recipients(env: Envelope, plan: Plan, applied: bool) -> list[RecipientRecord]:
    status = plan.status if applied else RecipientStatus.PENDING
    recipients = [RecipientRecord(r, "envelope", status) for r in env.rcpt_to]
    # a transport rule's To/Cc/Bcc recipients under their field; other new targets come from a redirect
    added = {address: header.lower() for address, header in plan.added}
    recipients += [
        RecipientRecord(r, added.get(r, "redirect"), RecipientStatus.PENDING)
        for r in plan.deliver_to
        if r not in env.rcpt_to
    ]
    return recipients


def rule_events(verdict: Verdict, plan: Plan | None, now: datetime) -> list[EventRecord]:
    """Trace rows for transport rules: what each matched rule did (or, audit / monitor, would have done)."""
    events = []
    for hit in verdict.rules:
        kind = EventType.RULE if plan is not None and not hit.audit else EventType.RECORD
        events.append(EventRecord(kind, "transport rule " + hit.detail, at=now))
    if plan is not None:  # what the rules changed on the message as it left
        events += [EventRecord(EventType.RULE, note, at=now) for note in plan.notes]
    return events


def quarantine_entries(
    record: MessageRecord, verdict: Verdict, policy: Policy, *, blob_key: str | None
) -> list[NewEntry]:
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
