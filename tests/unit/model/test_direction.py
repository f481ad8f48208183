from __future__ import annotations

import pytest

from mailwarden.model import Direction, classify_direction

ORG = {"example.com", "example.co.jp"}


@pytest.mark.parametrize(
    ("sender", "recipients", "expected"),
    [
        ("partner@example.org", ["alice@example.com"], Direction.OUTBOUND),  # the organisation sent it all the same
        ("alice@example.com", ["partner@example.org"], Direction.OUTBOUND),
        ("alice@example.com", ["bob@example.com", "taro@example.co.jp"], Direction.INTERNAL),
        ("alice@example.com", ["bob@example.com", "partner@example.org"], Direction.OUTBOUND),
        ("Alice@EXAMPLE.COM", ["BOB@example.com"], Direction.INTERNAL),
        ("alice@example.com", [], Direction.OUTBOUND),
        ("alice@sub.example.com", ["bob@example.com"], Direction.OUTBOUND),  # accepted domains match exactly
    ],
)
def test_direction_of_mail_the_organisation_sent(sender: str, recipients: list[str], expected: Direction) -> None:
    assert classify_direction(sender, recipients, ORG, originated=True) is expected


@pytest.mark.parametrize(
    ("sender", "recipients"),
    [
        ("partner@example.org", ["alice@example.com"]),
        ("", ["alice@example.com"]),  # null sender (a bounce)
        ("ceo@example.com", ["bob@example.com"]),  # the own domain in MAIL FROM / From proves nothing
        ("ceo@example.com", ["partner@example.org"]),
    ],
)
def test_without_evidence_that_the_organisation_sent_it_mail_is_inbound(sender: str, recipients: list[str]) -> None:
    assert classify_direction(sender, recipients, ORG, originated=False) is Direction.INBOUND
