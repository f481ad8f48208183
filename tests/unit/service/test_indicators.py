"""Indicator matching for retro-hunt searches: what matches, what does not, and what is refused."""

from __future__ import annotations

import hashlib

import pytest

from mailwarden.model import Message
from mailwarden.service.indicators import IndicatorError, Indicators
from tests.factories import build_message

PAYLOAD = b"%PDF-1.4 not really an invoice"
RAW = build_message(
    sender="Billing <billing@mail.evil.example>",
    subject="Invoice 2231 overdue",
    text="Pay now at https://pay.evil.example/login?id=7 or call us.\n",
    attachments=[("invoice.pdf", "application/pdf", PAYLOAD)],
)


def found(indicators: Indicators, sender: str = "bounce@relay.example") -> list[str]:
    return indicators.matches(Message(RAW), sender)


def test_each_indicator_matches_what_it_names() -> None:
    assert found(Indicators(senders=("Billing@mail.evil.example",))) == ["sender is billing@mail.evil.example"]
    assert found(Indicators(senders=("bounce@relay.example",))) == ["sender is bounce@relay.example"]
    assert found(Indicators(domains=("evil.example",))) == ["sender domain is evil.example"]
    assert found(Indicators(urls=("pay.evil.example/login",))) == ["url contains pay.evil.example/login"]
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert found(Indicators(sha256=(digest.upper(),))) == [f"attachment invoice.pdf has sha256 {digest}"]
    assert found(Indicators(subject=r"invoice \d+ OVERDUE")) == [r"subject matches invoice \d+ OVERDUE"]


def test_a_message_without_the_indicators_matches_nothing() -> None:
    assert found(Indicators(senders=("billing@evil.example",))) == []
    assert found(Indicators(domains=("il.example",))) == []  # a domain is whole labels, not a suffix
    assert found(Indicators(urls=("good.example",))) == []
    assert found(Indicators(sha256=("0" * 64,))) == []
    assert found(Indicators(subject="^overdue")) == []


def test_any_one_indicator_is_enough_and_all_that_match_are_named() -> None:
    both = Indicators(urls=("nothing.example", "evil.example"), subject="overdue")
    assert found(both) == ["url contains evil.example", "subject matches overdue"]


def test_bad_indicators_are_refused_with_the_field_named() -> None:
    with pytest.raises(IndicatorError, match="sha256"):
        Indicators(sha256=("abc",))
    with pytest.raises(IndicatorError, match="subject: not a valid RE2 pattern"):
        Indicators(subject="(unclosed")
    with pytest.raises(IndicatorError, match="at least one indicator"):
        Indicators(urls=(" ",))


def test_indicators_survive_the_round_trip_through_the_hunt_row() -> None:
    indicators = Indicators(senders=("a@b.example",), domains=("@Evil.Example",), subject="x+")
    assert Indicators.from_dict(indicators.as_dict()) == indicators
