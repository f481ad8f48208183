from __future__ import annotations

import pytest

from mailwarden.errors import ConfigError
from mailwarden.pipeline.spam.heuristics import DEFAULT_WEIGHTS, SYMBOLS, Heuristics
from tests.unit.pipeline.spam.heuristics.helpers import mail


def test_every_symbol_has_a_weight_and_a_description() -> None:
    assert set(SYMBOLS) == set(DEFAULT_WEIGHTS)
    assert all(desc for _, desc in SYMBOLS.values())


def test_findings_carry_config_weights_and_zero_turns_a_symbol_off() -> None:
    message = mail(headers={"Date": None})  # type: ignore[dict-item]
    default = {f.code: f for f in Heuristics().evaluate(message)}
    assert default["DATE_MISSING"].score == DEFAULT_WEIGHTS["DATE_MISSING"]
    assert default["DATE_MISSING"].stage == "spam"
    tuned = {f.code: f for f in Heuristics.from_config({"weights": {"DATE_MISSING": 3.5}}).evaluate(message)}
    assert tuned["DATE_MISSING"].score == 3.5
    off = Heuristics.from_config({"weights": {"DATE_MISSING": 0}}).evaluate(message)
    assert "DATE_MISSING" not in {f.code for f in off}


def test_config_lists_replace_the_built_in_ones() -> None:
    h = Heuristics.from_config({"url_shorteners": ["go.example.net"], "brands": {"Example Bank": ["bank.example"]}})
    assert h.settings.shorteners == frozenset({"go.example.net"})
    codes = {
        f.code
        for f in h.evaluate(mail(text="https://go.example.net/x", headers={"From": "Example Bank <a@example.net>"}))
    }
    assert {"PHISH_URL_SHORTENER", "PHISH_BRAND_DISPLAY_NAME"} <= codes


def test_bad_config_is_refused() -> None:
    with pytest.raises(ConfigError):
        Heuristics.from_config({"weights": {"DATE_MISSING": "high"}})
    with pytest.raises(ConfigError):
        Heuristics.from_config({"suspicious_tlds": "top"})


def test_evaluate_never_raises_on_broken_input() -> None:
    from mailwarden.model import Message

    for raw in (b"", b"garbage", b"From: <@>\r\nDate: x\r\nReceived: ;;;\r\n\r\n<a href='http://[::1'>x</a>"):
        Heuristics().evaluate(Message(raw))


def test_phish_evidence_with_spam_evidence_adds_the_composite() -> None:
    both = mail(
        text="Congratulations, you have won! Claim at https://bit.ly/3abc",
        headers={"From": "PayPal Service <a@example.net>"},
    )
    phish_only = mail(headers={"From": "PayPal Service <a@example.net>"})
    assert "PHISH_SUSPICIOUS_MIX" in {f.code for f in Heuristics().evaluate(both)}
    assert "PHISH_SUSPICIOUS_MIX" not in {f.code for f in Heuristics().evaluate(phish_only)}


def test_hostile_messages_are_judged_on_a_bounded_part() -> None:
    """5 MB of nested tags and 100,000 links: evaluate returns, with the symbols of what it read."""
    hidden = '<p style="display:none">' + "hidden words " * 10 + "</p>"
    middle = '<p style="display:none">' + "middle words " * 30 + "</p>"
    nested = (
        "<div><span>" * 20_000
        + hidden
        + "<div><span>" * 225_000
        + middle
        + "<div><span>" * 225_000
        + hidden.replace("hidden", "later")
    )
    deep = Heuristics().symbols(mail(text=None, html=nested))
    # the head and the tail of the body are read (256 KB each): the first and the last hidden paragraphs
    # count, the one in the middle of 5 MB does not
    assert dict(deep)["HTML_HIDDEN_TEXT"] == "248 hidden characters"
    assert "HTML_ONLY" in dict(deep)

    links = "".join(f'<a href="http://192.0.2.{i % 250}/{i}">{i}</a> ' for i in range(100_000))
    many = {f.code for f in Heuristics().evaluate(mail(text=None, html=links))}
    assert {"HTML_ONLY", "PHISH_URL_IP_HOST", "URL_MANY_DOMAINS"} <= many
    assert not {"PHISH_ANCHOR_MISMATCH", "PHISH_URL_SHORTENER"} & many


def test_many_link_domains_still_count_past_the_link_bound() -> None:
    links = " ".join(f"https://shop{i}.example{i % 40}.net/p" for i in range(20_000))
    assert "URL_MANY_DOMAINS" in {f.code for f in Heuristics().evaluate(mail(text=links))}


def test_many_long_tracker_links_are_decoded_up_to_a_bound() -> None:
    """1,000 Google redirects each carrying 6 KB: the first ones are judged by their target, the rest as opaque."""
    padding = "A" * 6000
    links = "".join(
        f'<a href="https://www.google.com/url?q=http://192.0.2.{i % 250}/{i}&x={padding}{i}">www.example.org</a> '
        for i in range(1_000)
    )
    found = {f.code for f in Heuristics().evaluate(mail(text=None, html=links))}
    assert {"PHISH_URL_IP_HOST", "PHISH_ANCHOR_MISMATCH"} <= found
