"""The rule-test use case behind `mailwarden rules test` and the API's rules test."""

from __future__ import annotations

from mailwarden.model import Action, Direction, Domain, Message, Organisation, Policy
from mailwarden.service.ruletest import INTERNAL_NOTE, rule_test_envelope, run_rule_test
from tests.factories import build_message

ORG = Organisation("acme", (Domain("example.com"),))
POLICY = Policy.model_validate(
    {
        "rules": [
            {
                "name": "Finance (EU) audit",
                "mode": "audit",
                "conditions": {"sender_ip_in": ["192.0.2.0/24"]},
                "actions": {"quarantine": True},
            },
            {
                "name": "Invoices",
                "conditions": {"subject_contains": ["invoice"], "sender_domain": ["partner.org"]},
                "actions": {"reject": {"status": "5.7.1", "text": "No invoices"}},
            },
        ]
    }
)


async def test_matches_are_typed_with_their_mode_and_reasons_and_the_outcome_is_planned() -> None:
    message = Message(build_message(sender="x@partner.org", to="bob@example.com", subject="Invoice 42"))
    envelope = rule_test_envelope(message, sender=" X@Partner.org ", client_ip="192.0.2.7")
    result = await run_rule_test(message, envelope, POLICY, ORG)
    assert result.direction is Direction.INBOUND and result.envelope.mail_from == "x@partner.org"
    assert [(m.rule, m.mode) for m in result.matches] == [
        ("Finance (EU) audit", "audit: would have"),
        ("Invoices", "enforce"),
    ]
    assert result.matches[1].reasons == ("sender_domain 'partner.org'", "subject_contains 'invoice'")
    assert result.matches[1].detail.startswith("Invoices (enforce): ")
    assert result.verdict is not None and result.verdict.disposition.action is Action.REJECT


async def test_internal_mail_runs_no_rule_unless_a_direction_is_given() -> None:
    message = Message(build_message(sender="alice@example.com", to="bob@example.com", subject="invoice"))
    envelope = rule_test_envelope(message, recipients=("Bob@Example.com",))
    internal = await run_rule_test(message, envelope, POLICY, ORG)
    assert internal.verdict is None and internal.matches == () and internal.notes == (INTERNAL_NOTE,)
    outbound = await run_rule_test(message, envelope, POLICY, ORG, direction=Direction.OUTBOUND)
    assert outbound.direction is Direction.OUTBOUND and outbound.envelope.rcpt_to == ("bob@example.com",)
    assert outbound.matches == ()  # the sender is not at partner.org and no IP is known
