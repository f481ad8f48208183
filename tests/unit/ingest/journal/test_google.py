"""Google Workspace routing copies: recipients from X-Gm-Original-To, direction only from our own field."""

from __future__ import annotations

from mailwarden.ingest.journal import (
    EnvelopeConfidence,
    JournalFormat,
    JournalRecipient,
)
from mailwarden.model.direction import Direction
from tests.unit.ingest.journal.helpers import (
    fixture,
    run,
)

# ---- Gmail ---------------------------------------------------------------------------------------


def test_gmail_fixture() -> None:
    env = run(fixture("gmail_inbound.eml"), smtp_mail_from="billing@vendor.example.net")

    assert env.source_format is JournalFormat.GMAIL
    assert env.sender == "billing@vendor.example.net"
    assert env.recipients == (JournalRecipient("ap@example.com", "envelope"),)
    assert env.envelope_confidence is EnvelopeConfidence.MEDIUM
    assert env.direction_hint is Direction.INBOUND
    assert env.direction_evidence == ("custom_header:inbound",)
    assert env.provider_hints["x_gm_phishy"] == "1"
    assert env.provider_hints["x_gm_spam"] == "0"
    assert env.provider_hints["auth_results"].startswith("i=1; mx.google.com; spf=fail")
    assert env.original == fixture("gmail_inbound.eml")
    assert env.original_message_id == "<inv4471@vendor.example.net>"


def test_gmail_outbound_copy_adds_header_recipients() -> None:
    raw = (
        b"X-Gm-Original-To: partner@example.org, partner2@example.org\r\n"
        b"X-Gm-Original-To: partner@example.org\r\n"
        b"X-Journal-Direction: outbound\r\n"
        b"From: Alice <alice@example.com>\r\n"
        b"To: Partner <partner@example.org>, other@example.org\r\n"
        b"Cc: bob@example.com\r\n"
        b"Message-ID: <out-1@example.com>\r\n"
        b"\r\nHello\r\n"
    )

    env = run(raw, smtp_mail_from="alice@example.com")

    assert env.recipients == (
        JournalRecipient("partner@example.org", "envelope"),
        JournalRecipient("partner2@example.org", "envelope"),
        JournalRecipient("other@example.org", "header"),
        JournalRecipient("bob@example.com", "header"),
    )
    assert env.direction_hint is Direction.OUTBOUND
    assert env.envelope_confidence is EnvelopeConfidence.MEDIUM


def test_gmail_copy_without_original_to_falls_back_to_headers_with_low_confidence() -> None:
    raw = fixture("gmail_inbound.eml").replace(b"X-Gm-Original-To: ap@example.com\n", b"")

    env = run(raw, smtp_mail_from="")

    assert env.sender == "billing@vendor.example.net"  # From header when MAIL FROM is empty
    assert env.recipients == (JournalRecipient("ap@example.com", "header"),)
    assert env.envelope_confidence is EnvelopeConfidence.LOW


def test_a_gmail_copy_is_originated_only_by_its_direction_header() -> None:
    internal = b"X-Gm-Original-To: bob@example.com\r\nFrom: alice@example.com\r\nTo: bob@example.com\r\n\r\nHi\r\n"

    assert run(b"X-Journal-Direction: internal\r\n" + internal, smtp_mail_from="alice@example.com").originated
    assert not run(internal, smtp_mail_from="alice@example.com").originated
    spoof = run(b"X-Journal-Direction: inbound\r\n" + internal, smtp_mail_from="alice@example.com")
    assert not spoof.originated and spoof.spoof_of_own_domain
