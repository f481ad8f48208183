"""From monitor to enforce: the mode-switch preview counts the would-have actions history recorded, the
per-domain switch is audited, and a policy replay shows what a candidate changes over the kept messages
without recording anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailwarden.errors import NotFoundError, PolicyError
from mailwarden.model.org import ConnectionMode
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.replay import PolicyReplay, candidate_document
from mailwarden.service.runtime import Runtime
from mailwarden.store.preview import mode_preview
from tests.unit.service.replay_helpers import QUARANTINE_INVOICES, REJECT_LOTTERY, document, mail, record, runtime


@pytest.fixture
def rt(tmp_path: Path) -> Any:
    runtime_ = runtime(tmp_path)
    yield runtime_
    runtime_.close()


async def test_the_preview_counts_would_have_actions_per_category_for_the_organisation_and_per_domain(
    rt: Runtime, tmp_path: Path
) -> None:
    rt.policies.import_document(parse_organisation_document(document(QUARANTINE_INVOICES, REJECT_LOTTERY)))
    ids = await record(
        rt,
        tmp_path,
        [
            (mail("Invoice 1"), "alice@example.com"),
            (mail("Invoice 2", to="bob@example.net"), "bob@example.net"),
            (mail("Lottery win"), "alice@example.com"),
            (mail("Lunch"), "alice@example.com"),
        ],
    )
    start = datetime.now(UTC) - timedelta(days=7)
    whole = mode_preview(rt.db, "acme", start)
    assert whole.monitored == 4
    assert whole.counts["quarantine"] == {"rule": 2}
    assert whole.counts["reject"] == {"rule": 1}
    assert whole.total("junk") == 0 and whole.total("drop") == 0
    listed = whole.messages["quarantine"]
    assert {m.message_id for m in listed} == {ids[0], ids[1]}
    # newest first, by the time-ordered id (two recorded within one millisecond may come either way)
    assert [m.message_id for m in listed] == sorted((m.message_id for m in listed), reverse=True)
    assert whole.messages["reject"][0].subject == "Lottery win"

    net = mode_preview(rt.db, "acme", start, domain="EXAMPLE.net")
    assert (net.monitored, net.counts["quarantine"], net.total("reject")) == (1, {"rule": 1}, 0)
    assert mode_preview(rt.db, "acme", datetime.now(UTC) + timedelta(minutes=1)).monitored == 0
    assert mode_preview(rt.db, "other", start).monitored == 0


async def test_enforced_messages_are_not_counted_as_would_have(rt: Runtime, tmp_path: Path) -> None:
    rt.policies.import_document(parse_organisation_document(document(QUARANTINE_INVOICES)))
    await record(rt, tmp_path, [(mail("Invoice 1"), "alice@example.com")])
    with rt.db.session() as session:
        from mailwarden.store.schema import MessageRow

        for row in session.query(MessageRow):
            row.applied = True  # as recorded in enforce mode
    assert mode_preview(rt.db, "acme", datetime.now(UTC) - timedelta(days=1)).total("quarantine") == 0


def test_a_domain_switch_is_audited_and_an_enforcing_mode_needs_a_next_hop(rt: Runtime) -> None:
    rt.policies.import_document(parse_organisation_document(document()))
    with pytest.raises(PolicyError, match="next_hop"):
        rt.policies.set_domain_mode("acme", "example.com", ConnectionMode.GATEWAY, actor="ann")
    assert rt.policies.get_organisation("acme").domain("example.com").mode is ConnectionMode.JOURNAL  # type: ignore[union-attr]
    with pytest.raises(PolicyError, match="next_hop"):
        rt.policies.set_domain_mode("acme", "example.com", ConnectionMode.GATEWAY, next_hop="bad host!")

    domain = rt.policies.set_domain_mode(
        "acme", "example.com", ConnectionMode.GATEWAY, next_hop="10.0.0.25", actor="ann"
    )
    assert (domain.mode, domain.next_hop) == (ConnectionMode.GATEWAY, "10.0.0.25")
    org = rt.policies.get_organisation("acme")
    assert org.domain("example.net").mode is ConnectionMode.JOURNAL  # type: ignore[union-attr]
    [entry] = [e for e in rt.audit.newest(limit=10) if e["action"] == "domain.set_mode"]
    assert entry["actor"] == "ann"
    assert entry["before"] == {"example.com": {"mode": "journal", "next_hop": None}}
    assert entry["after"] == {"example.com": {"mode": "gateway", "next_hop": "10.0.0.25"}}
    rt.policies.set_domain_mode("acme", "example.com", ConnectionMode.JOURNAL, actor="ann")  # the hop stays
    assert rt.policies.get_organisation("acme").domain("example.com").next_hop == "10.0.0.25"  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        rt.policies.set_domain_mode("acme", "nope.example", ConnectionMode.JOURNAL)


async def test_a_replay_shows_what_a_candidate_changes_and_records_nothing(rt: Runtime, tmp_path: Path) -> None:
    rt.policies.import_document(parse_organisation_document(document(QUARANTINE_INVOICES)))
    invoice, lottery, _lunch = await record(
        rt,
        tmp_path,
        [
            (mail("Invoice 7"), "alice@example.com"),
            (mail("Lottery win"), "alice@example.com"),
            (mail("Lunch"), "alice@example.com"),
        ],
    )
    audit_before = len(rt.audit.newest(limit=100))
    events_before = [len(rt.history.get(i).events) for i in (invoice, lottery)]
    current = rt.policies.export_document("acme")
    candidate = candidate_document(current, [REJECT_LOTTERY])  # a rule set: the invoice rule goes, lottery comes

    report = await PolicyReplay(rt).run(candidate, since=datetime.now(UTC) - timedelta(days=7))

    assert (report.in_window, report.scanned, report.skipped, report.capped) == (3, 3, 0, False)
    changes = {c.message_id: c for c in report.changes}
    assert set(changes) == {invoice, lottery}
    assert (changes[invoice].action_before, changes[invoice].action_after) == ("quarantine", "deliver")
    assert changes[invoice].rules_before == ("Hold invoices",) and changes[invoice].rules_after == ()
    assert (changes[lottery].category_before, changes[lottery].category_after) == ("clean", "rule")
    assert changes[lottery].action_after == "reject" and changes[lottery].subject == "Lottery win"
    assert sorted(report.transitions()) == [("deliver", "reject", 1), ("quarantine", "deliver", 1)]
    # nothing recorded: history, the saved policy and the audit log are as they were
    assert rt.history.get(lottery).summary.action.value == "deliver"
    assert rt.policies.get_policy("acme").rules[0].name == "Hold invoices"
    assert len(rt.audit.newest(limit=100)) == audit_before
    assert [len(rt.history.get(i).events) for i in (invoice, lottery)] == events_before


async def test_a_replay_is_capped_to_the_newest_messages_and_says_so(rt: Runtime, tmp_path: Path) -> None:
    rt.policies.import_document(parse_organisation_document(document()))
    ids = await record(rt, tmp_path, [(mail(f"Invoice {i}"), "alice@example.com") for i in range(3)])
    candidate = candidate_document(rt.policies.export_document("acme"), [QUARANTINE_INVOICES])
    report = await PolicyReplay(rt).run(candidate, limit=2)
    assert (report.in_window, report.scanned, report.capped) == (3, 2, True)
    assert [c.message_id for c in report.changes] == sorted(ids, reverse=True)[:2]
    assert report.as_dict()["transitions"] == [{"before": "deliver", "after": "quarantine", "messages": 2}]


def test_a_candidate_may_be_a_document_a_policy_or_rules_and_is_validated_whole(rt: Runtime) -> None:
    rt.policies.import_document(parse_organisation_document(document(QUARANTINE_INVOICES)))
    current = rt.policies.export_document("acme")
    assert candidate_document(current, {"spam": {"bcl_threshold": 4}}).policy.spam.bcl_threshold == 4
    assert [r.name for r in candidate_document(current, document(REJECT_LOTTERY)).policy.rules] == ["Refuse lottery"]
    assert len(candidate_document(current, {"rules": []}).domains) == 2  # a policy mapping keeps the domains
    with pytest.raises(PolicyError) as bad:
        candidate_document(current, [{"name": "x", "conditions": {"subject_contains": ["a"]}, "actions": {"nope": 1}}])
    assert any("rules.0" in e for e in bad.value.errors)
    with pytest.raises(PolicyError, match="other"):
        candidate_document(current, {**document(), "name": "other"})
    with pytest.raises(PolicyError):
        candidate_document(current, "text")
