from __future__ import annotations

import pytest

from mailwarden.model import Direction, classify_direction

ORG = {"example.com", "example.co.jp"}


@pytest.mark.parametrize(
    ("sender", "recipients", "expected"),
    [
        ("partner@example.org", ["alice@example.com"], Direction.INBOUND),
        ("alice@example.com", ["partner@example.org"], Direction.OUTBOUND),
        ("alice@example.com", ["bob@example.com", "taro@example.co.jp"], Direction.INTERNAL),
        ("alice@example.com", ["bob@example.com", "partner@example.org"], Direction.OUTBOUND),
        ("Alice@EXAMPLE.COM", ["BOB@example.com"], Direction.INTERNAL),
        ("", ["alice@example.com"], Direction.INBOUND),  # null sender (a bounce) comes from outside
        ("alice@example.com", [], Direction.OUTBOUND),
        ("alice@sub.example.com", ["bob@example.com"], Direction.INBOUND),  # accepted domains match exactly
    ],
)
def test_direction(sender: str, recipients: list[str], expected: Direction) -> None:
    assert classify_direction(sender, recipients, ORG) is expected


def test_unverified_own_domain_sender_is_inbound_not_internal() -> None:
    assert classify_direction("ceo@example.com", ["bob@example.com"], ORG, sender_verified=False) is Direction.INBOUND
