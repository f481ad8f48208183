"""Plain BCC copies (Postfix `recipient_bcc_maps` and the like), with the recipient encoded in our RCPT TO.

An MTA that sends its copy to `journal+in.<local>=<domain>@…` (or `journal+out.…` from its
submission door) tells which recipient the copy is for and which way the message went.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from mailwarden.errors import ConfigError
from mailwarden.ingest.journal.copies import check_is_mail, copy_envelope, copy_sender, header_recipients
from mailwarden.ingest.journal.envelope import (
    EnvelopeConfidence,
    JournalEnvelope,
    JournalFormat,
    JournalParseError,
    JournalRecipient,
)
from mailwarden.ingest.journal.headers import valid_address
from mailwarden.ingest.journal.hints import Hints
from mailwarden.ingest.journal.mime import Entity
from mailwarden.model.direction import Direction

_DEFAULT_BCC_PATTERN = r"(?i)[^@]*?\+(?P<dir>in|out)\.(?P<local>.+)=(?P<domain>[^=@\s]+)@[^@]+"
_BCC_DIR = {"in": Direction.INBOUND, "out": Direction.OUTBOUND}


def unwrap_bcc(
    copy: Entity,
    smtp_mail_from: str,
    smtp_rcpt_to: Sequence[str],
    domains: set[str],
    address_pattern: str | None = None,
) -> JournalEnvelope:
    """A plain BCC copy: the recipients decoded from our RCPT TO addresses, else the To/Cc fields.

    `address_pattern` replaces the default decoding regex (see `unwrap`).
    """
    pattern = _bcc_pattern(address_pattern or _DEFAULT_BCC_PATTERN)
    fmt = JournalFormat.BCC
    check_is_mail(copy, fmt)
    sender = copy_sender(copy, smtp_mail_from, fmt)
    hints = Hints()
    recipients: dict[str, JournalRecipient] = {}
    tags: dict[str, Direction | None] = {}
    for rcpt in smtp_rcpt_to:
        decoded = _decode_rcpt(rcpt, pattern)
        if decoded:
            direction, address, tag = decoded
            recipients.setdefault(address, JournalRecipient(address, "envelope"))
            tags.setdefault(tag, direction)
    for tag, tag_direction in tags.items():  # the organisation's own MTA encoded them, by the door used
        hints.add("bcc_encoding", tag, tag_direction, vouches=True)
    confidence = EnvelopeConfidence.HIGH
    if not recipients:
        confidence = EnvelopeConfidence.LOW
        recipients = {r.address: r for r in header_recipients(copy)}
    if not recipients:
        raise JournalParseError(
            "BCC copy has no recipients: no encoded RCPT TO address and no To/Cc header", source_format=fmt
        )

    direction = hints.direction()
    return copy_envelope(fmt, copy, sender, recipients, direction, hints, {}, confidence, domains)


@lru_cache(maxsize=16)
def _bcc_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled RCPT TO decoding pattern; ConfigError when it is no regex or lacks a named group."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"not a valid regular expression: {exc}", field="journal_address_pattern") from None
    if not {"dir", "local", "domain"} <= set(compiled.groupindex):
        raise ConfigError("needs the named groups dir, local and domain", field="journal_address_pattern")
    return compiled


def _decode_rcpt(address: str, pattern: re.Pattern[str]) -> tuple[Direction | None, str, str] | None:
    """(direction, original address, dir text) of an encoded RCPT TO address, or None."""
    address = address.strip().strip("<>")
    local, _, host = address.rpartition("@")
    if len(local) > 1 and local.startswith('"') and local.endswith('"'):
        address = f"{local[1:-1]}@{host}"  # the MTA quoted our local part (e.g. for "a..b")
    match = pattern.fullmatch(address)
    if not match:
        return None
    decoded = valid_address(f"{match.group('local')}@{match.group('domain')}")
    if not decoded:
        return None
    tag = match.group("dir").lower()
    return _BCC_DIR.get(tag), decoded, tag
