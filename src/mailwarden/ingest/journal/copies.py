"""What Gmail routing copies and BCC copies share: the copy is the original itself, byte for byte."""

from __future__ import annotations

from mailwarden.ingest.journal.envelope import (
    EnvelopeConfidence,
    JournalEnvelope,
    JournalFormat,
    JournalParseError,
    JournalRecipient,
    dedupe_key,
)
from mailwarden.ingest.journal.headers import first_header, header_addresses, parse_message_id, valid_address
from mailwarden.ingest.journal.hints import Hints
from mailwarden.ingest.journal.mime import Entity
from mailwarden.ingest.journal.verdicts import google_verdict
from mailwarden.model.direction import Direction

_COPY_NAMES = {JournalFormat.GMAIL: "Gmail copy", JournalFormat.BCC: "BCC copy"}


def copy_sender(copy: Entity, smtp_mail_from: str, fmt: JournalFormat) -> str:
    """The envelope sender of our SMTP transaction, else the copy's From address."""
    sender = valid_address(smtp_mail_from) or next(iter(header_addresses(copy.headers, "From")), None)
    if not sender:
        raise JournalParseError(
            f"{_COPY_NAMES[fmt]} has no envelope sender (MAIL FROM) and no From header", source_format=fmt
        )
    return sender


def check_is_mail(copy: Entity, fmt: JournalFormat) -> None:
    """Refuse a copy without a single header field: it is no email message."""
    if not copy.headers.keys():
        raise JournalParseError(
            f"{_COPY_NAMES[fmt]} is not an email message: it has no header fields", source_format=fmt
        )


def header_recipients(copy: Entity) -> list[JournalRecipient]:
    """The To and Cc addresses of the copy, each once: Bcc recipients stay unknown."""
    addresses = header_addresses(copy.headers, "To") + header_addresses(copy.headers, "Cc")
    return [JournalRecipient(a, "header") for a in dict.fromkeys(addresses)]


def copy_envelope(
    fmt: JournalFormat,
    copy: Entity,
    sender: str,
    recipients: dict[str, JournalRecipient],
    direction: Direction | None,
    hints: Hints,
    provider: dict[str, str],
    confidence: EnvelopeConfidence,
    domains: set[str],
) -> JournalEnvelope:
    """The envelope of a copy that is the original itself (Gmail routing copy, BCC copy)."""
    spoof = hints.spoof(sender, domains)
    message_id = parse_message_id(first_header(copy.headers, "Message-ID"))
    return JournalEnvelope(
        source_format=fmt,
        journal_msg_id=message_id,
        original_message_id=message_id,
        network_message_id=None,
        sender=sender,
        recipients=tuple(recipients.values()),
        on_behalf_of=None,
        direction_hint=Direction.INBOUND if spoof else direction,
        direction_evidence=tuple(hints.evidence),
        originated=hints.originated(),
        spoof_of_own_domain=spoof,
        provider_hints=provider,
        provider_verdict=google_verdict(provider) if fmt is JournalFormat.GMAIL else None,
        envelope_confidence=confidence,
        original=copy.raw,
        wrapped_in_ndr=False,
        dedupe_key=dedupe_key(message_id, copy.raw, sender),
    )
