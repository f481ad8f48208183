"""Outbound spam leaves through the delivery pool `high_risk` (EOP's DI=SO): the outcome's jobs, the
antispam stamp and the trace; monitor mode only records; outbound malware is held and the admins told."""

from __future__ import annotations

import email
from datetime import timedelta
from email.policy import default

import pytest

from mailwarden.deliver import DeliveryJob, JobKind, Route
from mailwarden.enforce.dkim_sign import DkimSigner
from mailwarden.enforce.outcome import Arrival, Effects, Outcomes, Sending
from mailwarden.model import Action, Category, Direction, Disposition, Envelope, Message, Mode, Policy, Verdict
from mailwarden.model.org import ConnectionMode, Domain, Organisation
from mailwarden.model.policy import MalwarePolicy, Tenant
from mailwarden.model.trace import EventRecord, EventType, RecipientStatus
from mailwarden.pipeline.decide import disposition_for
from tests.factories import build_message

ORG = Organisation("acme", (Domain("example.com", ConnectionMode.GATEWAY, "10.0.0.25"),), monitor_only=False)
SENDER = "alice@example.com"
EXTERNAL = ("bob@partner.example",)
ORG_HOP = Route(host="10.0.0.25", port=25)


def outcomes(*pools: str) -> Outcomes:
    sending = Sending(hostname="mw.example.com", lifetime=timedelta(days=1), pools=frozenset({"default", *pools}))
    return Outcomes(sending, lambda a: ORG.domains[0] if a.endswith("@example.com") else None, DkimSigner(()))


def outbound(category: Category, action: Action = Action.DELIVER, **kw: object) -> Verdict:
    disposition = Disposition(action, reason=f"outbound {category.value}")
    return Verdict(Direction.OUTBOUND, category, disposition, scl=6, **kw)  # type: ignore[arg-type]


def run(
    out: Outcomes,
    verdict: Verdict,
    *,
    mode: Mode = Mode.ENFORCE,
    rcpts: tuple[str, ...] = EXTERNAL,
    policy: Policy | None = None,
) -> tuple[Effects, list[EventRecord]]:
    raw = build_message(sender=SENDER, to=rcpts[0], subject="Cheap watches")
    message = Message(raw)
    plan = out.plan(raw, message, verdict, rcpts, mode=mode)
    effects = Effects()
    tenant = Tenant(ORG, policy or Policy())
    env = Envelope(SENDER, rcpts, client_ip="192.0.2.7")
    out.apply(
        effects, "01K7POOL0000000000000000000", raw, message, env, verdict, tenant, mode, plan, Arrival("x", None)
    )
    ((_, events),) = effects.records
    return effects, events


def messages(effects: Effects) -> list[DeliveryJob]:
    return [j for j in effects.jobs if j.kind is JobKind.MESSAGE and j.mail_from == SENDER]


def antispam(job: DeliveryJob) -> str:
    return str(email.message_from_bytes(job.message, policy=default)["X-Mailwarden-Antispam"])


@pytest.mark.parametrize(
    "category", [Category.SPAM, Category.HIGH_CONFIDENCE_SPAM, Category.PHISH, Category.HIGH_CONFIDENCE_PHISH]
)
def test_outbound_spam_and_phish_leave_through_the_high_risk_pool(category: Category) -> None:
    effects, events = run(outcomes("high_risk"), outbound(category))
    ((job,),) = [messages(effects)]
    assert job.route == Route(pool="high_risk") and job.recipients == EXTERNAL
    assert antispam(job).endswith(";DI:SO")
    label = "spam" if "spam" in category.value else "phish"
    assert f"pool high_risk: outbound {label} (DI=SO)" in [e.detail for e in events if e.type is EventType.SCAN]


def test_clean_and_bulk_outbound_mail_keeps_the_default_pool() -> None:
    for category in (Category.CLEAN, Category.BULK):
        effects, events = run(outcomes("high_risk"), outbound(category))
        ((job,),) = [messages(effects)]
        assert job.route == Route() and "DI:" not in antispam(job)
        assert not any("high_risk" in e.detail for e in events)


def test_inbound_spam_is_not_pooled() -> None:
    verdict = Verdict(Direction.INBOUND, Category.SPAM, Disposition(Action.JUNK, reason="spam"), scl=6)
    effects, _ = run(outcomes("high_risk"), verdict, rcpts=("carol@example.com",))
    (job,) = [j for j in effects.jobs if j.kind is JobKind.MESSAGE]
    assert job.route == ORG_HOP and "DI:" not in antispam(job)


def test_the_organisations_own_recipients_still_go_to_its_mail_server() -> None:
    effects, _ = run(outcomes("high_risk"), outbound(Category.SPAM), rcpts=("bob@partner.example", "eve@example.com"))
    routes = {j.route: j.recipients for j in messages(effects)}
    assert routes == {Route(pool="high_risk"): ("bob@partner.example",), ORG_HOP: ("eve@example.com",)}


def test_without_a_high_risk_pool_the_default_pool_is_used_and_the_trace_says_so() -> None:
    effects, events = run(outcomes(), outbound(Category.SPAM))
    ((job,),) = [messages(effects)]
    assert job.route == Route() and "DI:" not in antispam(job)
    scans = [e.detail for e in events if e.type is EventType.SCAN]
    assert "pool high_risk is not in [delivery] pools: outbound spam (DI=SO) left through the default pool" in scans


def test_a_rule_that_holds_outbound_spam_wins_over_the_pool() -> None:
    effects, events = run(outcomes("high_risk"), outbound(Category.RULE, Action.QUARANTINE))
    assert messages(effects) == [] and not any("high_risk" in e.detail for e in events)
    spam_held = outbound(Category.SPAM, Action.QUARANTINE)
    effects, events = run(outcomes("high_risk"), spam_held)
    assert messages(effects) == [] and not any("high_risk" in e.detail for e in events)


def test_monitor_mode_records_the_pool_it_would_have_used_and_changes_nothing() -> None:
    raw = build_message(sender=SENDER, to=EXTERNAL[0], subject="Cheap watches")
    effects, events = run(outcomes("high_risk"), outbound(Category.SPAM), mode=Mode.MONITOR)
    ((job,),) = [messages(effects)]
    assert job.route == Route() and job.message == raw  # unchanged, not stamped, default pool
    records = [e.detail for e in events if e.type is EventType.RECORD]
    assert "would have left through pool high_risk: outbound spam (DI=SO)" in records
    assert not any(e.type is EventType.SCAN and "pool" in e.detail for e in events)
    ((record, _),) = effects.records
    assert record.recipients[0].status is RecipientStatus.PENDING


def test_outbound_malware_is_held_not_pooled_and_the_admins_are_notified() -> None:
    policy = Policy(malware=MalwarePolicy(notify_admins=("soc@example.com",)))
    disposition = disposition_for(Category.MALWARE, policy, malware=("EICAR",))
    assert disposition.action is Action.QUARANTINE
    verdict = Verdict(Direction.OUTBOUND, Category.MALWARE, disposition, malware=("EICAR",))
    effects, events = run(outcomes("high_risk"), verdict, policy=policy)
    assert messages(effects) == []
    ((record, _),) = effects.records
    assert record.recipients[0].status is RecipientStatus.QUARANTINED and effects.quarantine
    notices = [j for j in effects.jobs if j.mail_from == ""]
    assert [j.recipients for j in notices] == [("soc@example.com",)]
    assert "malware notification to soc@example.com" in [e.detail for e in events if e.type is EventType.NOTIFY]


def test_suspicious_outbound_mail_is_copied_to_the_policys_bcc_address_and_clean_mail_is_not() -> None:
    policy = Policy.model_validate({"outbound_spam": {"bcc_suspicious": "soc@example.com"}})
    effects, events = run(outcomes("high_risk"), outbound(Category.SPAM), policy=policy)
    [copy] = [
        j for j in effects.jobs if j.recipients == ("soc@example.com",) or list(j.recipients) == ["soc@example.com"]
    ]
    assert copy.route == ORG_HOP and b"Cheap watches" in copy.message and antispam(copy).endswith(";DI:SO")
    assert any(e.detail == "copy of a suspicious outbound message to soc@example.com" for e in events)
    clean, _ = run(outcomes("high_risk"), outbound(Category.CLEAN), policy=policy)
    assert not [j for j in clean.jobs if "soc@example.com" in j.recipients]
    watched, _ = run(outcomes("high_risk"), outbound(Category.SPAM), policy=policy, mode=Mode.MONITOR)
    assert not [j for j in watched.jobs if "soc@example.com" in j.recipients]  # monitor mode sends no copy
