"""The reason a quarantine entry gets: DLP when the transport rule that quarantined the message matched
on sensitive information, `rule` for any other rule (docs/quarantine.md)."""

from __future__ import annotations

from mailwarden.model.quarantine import Reason
from mailwarden.service.processor import Processor
from tests.unit.service.test_scan_rules import process, processor, use

__all__ = ["processor"]  # the fixture, used by name

CARD_TEXT = "Please charge card 4111 1111 1111 1111 for the order."
PARTNER_RULE = {"name": "Partner", "conditions": {"sender_domain": ["example.org"]}, "actions": {"quarantine": True}}
CARDS_RULE = {
    "name": "Cards",
    "conditions": {"sensitive_info": [{"type": "credit_card"}]},
    "actions": {"quarantine": True},
}


def reasons(proc: Processor, text: str) -> list[Reason]:
    out = process(proc, "inbound", "p@example.org", ("bob@example.com", "carol@example.com"), text=text)
    return [entry.reason for entry in out.quarantine]


def test_a_dlp_rule_quarantine_has_the_reason_dlp(processor: Processor) -> None:
    use(processor, CARDS_RULE)
    assert reasons(processor, CARD_TEXT) == [Reason.DLP, Reason.DLP]


def test_another_rule_quarantine_has_the_reason_rule(processor: Processor) -> None:
    use(processor, PARTNER_RULE)
    assert reasons(processor, CARD_TEXT) == [Reason.RULE, Reason.RULE]


def test_the_rule_that_quarantined_decides_not_a_dlp_rule_that_only_tagged(processor: Processor) -> None:
    tag = {**CARDS_RULE, "actions": {"prepend_subject": "[card] "}}
    use(processor, tag, PARTNER_RULE)
    assert reasons(processor, CARD_TEXT) == [Reason.RULE, Reason.RULE]
    use(processor, PARTNER_RULE | {"actions": {"add_header": [{"name": "X-Partner", "value": "yes"}]}}, CARDS_RULE)
    assert reasons(processor, CARD_TEXT) == [Reason.DLP, Reason.DLP]
