"""What unwrapping a journal report or copy yields: the original, its envelope, and the one error."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from mailwarden.errors import MailwardenError
from mailwarden.model.direction import Direction
from mailwarden.model.provider import ProviderVerdict


class JournalFormat(StrEnum):
    EXCHANGE_2007 = "exchange_envelope_v2007"
    EXCHANGE_2003 = "exchange_legacy_2003"
    GMAIL = "gmail_routing_copy"
    BCC = "bcc_copy"


class EnvelopeConfidence(StrEnum):
    """How sure we are that `recipients` are the original envelope recipients."""

    HIGH = "high"  # written by the provider (Exchange report) or encoded in our RCPT TO
    MEDIUM = "medium"  # Gmail's X-Gm-Original-To, To/Cc headers added for outbound copies
    LOW = "low"  # only the To/Cc headers of the original: Bcc recipients are unknown


@dataclass(frozen=True, slots=True)
class JournalRecipient:
    """One envelope recipient of the original message.

    `field` is where the address came from: "to" / "cc" / "bcc" / "recipient" (report lines),
    "envelope" (X-Gm-Original-To or a decoded RCPT TO) or "header" (To/Cc of the original).
    """

    address: str
    field: str
    expanded_from: str | None = None  # distribution group the recipient was expanded from
    forwarded_from: str | None = None  # address the message was sent to before forwarding


@dataclass(frozen=True, slots=True)
class JournalEnvelope:
    """The original message of a journal report or copy, with what the provider told about it."""

    source_format: JournalFormat
    journal_msg_id: str | None  # Message-ID of the report/copy itself (inside an NDR: of the report)
    original_message_id: str | None
    network_message_id: str | None  # X-MS-Exchange-Organization-Network-Message-Id of the original
    sender: str
    recipients: tuple[JournalRecipient, ...]
    on_behalf_of: str | None
    direction_hint: Direction | None  # provider's opinion, for the trace
    direction_evidence: tuple[str, ...]
    # the provider (or the submission door that encoded our RCPT TO) vouches that the organisation sent
    # it; only then may the caller take it as outbound or internal (model/direction.py)
    originated: bool
    spoof_of_own_domain: bool  # the sender claims an own domain, but a provider source says it came in
    provider_hints: dict[str, str] = field(hash=False)
    envelope_confidence: EnvelopeConfidence
    original: bytes  # exactly as attached: this is what gets scanned
    wrapped_in_ndr: bool
    dedupe_key: str  # same for every report/fork of one original; recipients are merged by the caller
    subject: str | None = None  # Subject line of an Exchange report body, decoded from its charset
    provider_verdict: ProviderVerdict | None = None  # the provider's own verdict, normalised (verdicts.py)


class JournalParseError(MailwardenError):
    """A journal report or copy cannot be unwrapped; the message says what is wrong with it."""

    exit_code = 65  # EX_DATAERR

    def __init__(self, message: str, *, source_format: JournalFormat | None = None) -> None:
        self.source_format = source_format
        super().__init__(message)


def dedupe_key(original_message_id: str | None, original: bytes, sender: str) -> str:
    """The same key for every report or fork of one original: its Message-ID (else its hash) and sender."""
    if original_message_id:
        identity = "mid:" + original_message_id.strip("<>")
    else:
        identity = "sha256:" + hashlib.sha256(original).hexdigest()
    return hashlib.sha256(f"{identity}\n{sender}".encode("utf-8", "surrogateescape")).hexdigest()
