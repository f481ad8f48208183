"""Google Workspace "also deliver to" routing copies: the original itself, with Gmail's X-Gm-* fields."""

from __future__ import annotations

from email.message import Message as MimePart

from mailwarden.ingest.journal.copies import check_is_mail, copy_envelope, copy_sender, header_recipients
from mailwarden.ingest.journal.envelope import (
    EnvelopeConfidence,
    JournalEnvelope,
    JournalFormat,
    JournalParseError,
    JournalRecipient,
)
from mailwarden.ingest.journal.headers import find_address, first_header, header_text, split_list
from mailwarden.ingest.journal.hints import Hints
from mailwarden.ingest.journal.mime import Entity
from mailwarden.model.direction import Direction, is_org_address

GMAIL_HEADERS = ("X-Gm-Original-To", "X-Gm-Spam", "X-Gm-Phishy")
_CUSTOM_DIR = {
    "inbound": Direction.INBOUND,
    "outbound": Direction.OUTBOUND,
    "internal": Direction.INTERNAL,
}


def unwrap_gmail(copy: Entity, smtp_mail_from: str, domains: set[str]) -> JournalEnvelope:
    """A Google Workspace routing copy: recipients from X-Gm-Original-To, To/Cc for outbound mail."""
    fmt = JournalFormat.GMAIL
    check_is_mail(copy, fmt)
    sender = copy_sender(copy, smtp_mail_from, fmt)
    hints = Hints()
    provider = gmail_hints(copy.headers, hints)
    direction = hints.direction()

    recipients: dict[str, JournalRecipient] = {}
    for value in copy.headers.get_all("X-Gm-Original-To", []):
        for item in split_list(header_text(value)):
            address = find_address(item)
            if address:
                recipients.setdefault(address, JournalRecipient(address, "envelope"))
    confidence = EnvelopeConfidence.MEDIUM
    looks_outbound = direction is Direction.OUTBOUND or is_org_address(sender, domains)
    if looks_outbound or not recipients:
        if not recipients:
            confidence = EnvelopeConfidence.LOW
        for rcpt in header_recipients(copy):
            recipients.setdefault(rcpt.address, rcpt)
    if not recipients:
        raise JournalParseError(
            "Gmail copy has no recipients: no X-Gm-Original-To and no To/Cc header", source_format=fmt
        )

    return copy_envelope(fmt, copy, sender, recipients, direction, hints, provider, confidence, domains)


def gmail_hints(headers: MimePart, hints: Hints) -> dict[str, str]:
    """Gmail's spam and phishing opinions; the direction only from the organisation's own X-Journal-Direction field."""
    # The topmost occurrence is the one Gmail added last; a sender may have forged later ones.
    custom = first_header(headers, "X-Journal-Direction")
    if custom:
        hints.add("custom_header", custom, _CUSTOM_DIR.get(custom.lower()), vouches=True)
    provider: dict[str, str] = {}
    for key, name in (
        ("x_gm_spam", "X-Gm-Spam"),
        ("x_gm_phishy", "X-Gm-Phishy"),
        ("auth_results", "ARC-Authentication-Results"),
    ):
        value = first_header(headers, name)
        if value:
            provider[key] = value
    return provider
