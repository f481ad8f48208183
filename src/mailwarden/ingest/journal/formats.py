"""Which of the four journal inputs a message is, and `unwrap`, which hands it to that format's reader."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from mailwarden.ingest.journal.bcc import unwrap_bcc
from mailwarden.ingest.journal.envelope import JournalEnvelope, JournalFormat, JournalParseError
from mailwarden.ingest.journal.exchange import EXCHANGE_FORMATS, marker_format, report_in_ndr, unwrap_exchange
from mailwarden.ingest.journal.google import GMAIL_HEADERS, unwrap_gmail
from mailwarden.ingest.journal.mime import Entity, read_entity


def unwrap(
    raw: bytes,
    *,
    smtp_mail_from: str,
    smtp_rcpt_to: Sequence[str],
    org_domains: Collection[str] = (),
    journal_address_pattern: str | None = None,
) -> JournalEnvelope:
    """Unwrap one journal report or copy as received over SMTP.

    `smtp_mail_from` / `smtp_rcpt_to` are the envelope of *our* SMTP transaction; for BCC copies they
    carry the original sender and (when encoded) recipients. `org_domains` enables the spoof check.
    `originated` is set only when the provider (or our RCPT TO encoding) says the organisation sent the
    message; a sender in `org_domains` alone never sets it.
    `journal_address_pattern` replaces the default RCPT TO decoding regex; it must define the named
    groups `dir` (in|out), `local` and `domain` and is matched against the whole address.

    Raises JournalParseError, naming what is wrong, for anything that cannot be unwrapped.
    """
    if not raw.strip():
        raise JournalParseError("journal message is empty")
    located = locate(raw)
    domains = {d.lower() for d in org_domains}
    if located.source_format in EXCHANGE_FORMATS:
        return unwrap_exchange(
            located.source_format, located.report, wrapped_in_ndr=located.wrapped_in_ndr, domains=domains
        )
    if located.source_format is JournalFormat.GMAIL:
        return unwrap_gmail(located.outer, smtp_mail_from, domains)
    return unwrap_bcc(located.outer, smtp_mail_from, smtp_rcpt_to, domains, journal_address_pattern)


def detect_format(raw: bytes) -> JournalFormat:
    """Which kind of journal input `raw` is; anything unrecognised is a plain BCC copy."""
    return locate(raw).source_format


@dataclass(frozen=True, slots=True)
class Located:
    """What arrived, which journal format it is, and the report or copy inside it."""

    source_format: JournalFormat
    outer: Entity  # what arrived
    report: Entity  # the journal report or copy itself (inside the NDR when wrapped)
    wrapped_in_ndr: bool


def locate(raw: bytes) -> Located:
    """Which format `raw` is and where its report or copy is: an Exchange marker, an NDR, Gmail fields, else BCC."""
    outer = read_entity(raw)
    marked = marker_format(outer.headers)
    if marked:
        return Located(marked, outer, outer, False)
    if outer.content_type == "multipart/report":
        found = report_in_ndr(outer)
        if found is not None:
            return Located(found[0], outer, found[1], True)
    if any(name in outer.headers for name in GMAIL_HEADERS):
        return Located(JournalFormat.GMAIL, outer, outer, False)
    return Located(JournalFormat.BCC, outer, outer, False)
