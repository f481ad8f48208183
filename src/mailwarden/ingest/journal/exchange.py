"""Exchange envelope journal reports: 2007+ (`X-MS-Journal-Report`) and 2003 legacy, also inside an NDR.

The report is a multipart message: a text part listing the envelope (`Sender:`, `To:`/`Cc:`/`Bcc:`/
`Recipient:` lines, with `Expanded:` and `Forwarded:` notes) and the original as a message/rfc822 part.
Exchange's own X-MS-Exchange-Organization-* fields of the original say which way it went.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message as MimePart

from mailwarden.ingest.journal.envelope import (
    EnvelopeConfidence,
    JournalEnvelope,
    JournalFormat,
    JournalParseError,
    JournalRecipient,
    dedupe_key,
)
from mailwarden.ingest.journal.headers import (
    find_address,
    first_header,
    header_addresses,
    header_text,
    parse_message_id,
    split_list,
)
from mailwarden.ingest.journal.hints import Hints
from mailwarden.ingest.journal.mime import Entity, body_parts, decode_transfer, embedded
from mailwarden.ingest.journal.verdicts import microsoft_verdict
from mailwarden.model.direction import Direction

EXCHANGE_FORMATS = (JournalFormat.EXCHANGE_2007, JournalFormat.EXCHANGE_2003)
# Inside Exchange transport the header has its long name; the header firewall renames it on the way out.
_EXCHANGE_2007_HEADERS = ("X-MS-Journal-Report", "X-MS-Exchange-Organization-Journal-Report")
_EXCHANGE_2003_HEADERS = ("Content-Identifier", "Content-Identifer")  # the typo occurs in the wild

_REPORT_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9-]*)[ \t]*:(.*)")
_REDIRECT = re.compile(r"(?i)(expanded|forwarded)[ \t]*:(.*)")
_RECIPIENT_FIELDS = {"to": "to", "cc": "cc", "bcc": "bcc", "recipient": "recipient", "recipients": "recipient"}

_MS_DIRECTIONALITY = {"incoming": Direction.INBOUND, "originating": Direction.OUTBOUND}
_MS_AUTH_AS = {"anonymous": Direction.INBOUND, "internal": Direction.OUTBOUND}
_FOREFRONT_DIR = {"inb": Direction.INBOUND, "out": Direction.OUTBOUND, "int": Direction.INTERNAL}


def marker_format(headers: MimePart) -> JournalFormat | None:
    """The Exchange report format the header fields mark, or None for anything else."""
    if any(name in headers for name in _EXCHANGE_2007_HEADERS):
        return JournalFormat.EXCHANGE_2007
    for name in _EXCHANGE_2003_HEADERS:
        if any(header_text(v).lower() == "exjournalreport" for v in headers.get_all(name, [])):
            return JournalFormat.EXCHANGE_2003
    return None


def report_in_ndr(ndr: Entity) -> tuple[JournalFormat, Entity] | None:
    """The journal report an NDR returns as its message/rfc822 part, if it returns one."""
    try:
        parts, _ = body_parts(ndr, "non-delivery report")
        for part in parts:
            if part.content_type == "message/rfc822":
                returned = embedded(part, "returned message of the non-delivery report")
                marked = marker_format(returned.headers)
                if marked:
                    return marked, returned
    except JournalParseError:
        return None
    return None


def unwrap_exchange(fmt: JournalFormat, report: Entity, *, wrapped_in_ndr: bool, domains: set[str]) -> JournalEnvelope:
    """The original attached to an Exchange envelope report, with the envelope its report body lists."""
    try:
        inner, body = _attached_original(report)
    except JournalParseError as exc:
        raise JournalParseError(str(exc), source_format=fmt) from None
    original = inner.raw[inner.start : inner.end]
    sender = body.sender or next(iter(header_addresses(inner.headers, "From")), None)
    if not sender:
        raise JournalParseError(
            "report body has no Sender line and the attached original has no From header", source_format=fmt
        )
    if not body.recipients:
        raise JournalParseError("report body has no recipient lines (To/Cc/Bcc/Recipient)", source_format=fmt)

    hints = Hints()
    provider = microsoft_hints(inner.headers, hints)
    direction = hints.direction()
    spoof = hints.spoof(sender, domains)
    if spoof:
        direction = Direction.INBOUND

    message_id = body.message_id or parse_message_id(first_header(inner.headers, "Message-ID"))
    return JournalEnvelope(
        source_format=fmt,
        journal_msg_id=parse_message_id(first_header(report.headers, "Message-ID")),
        original_message_id=message_id,
        network_message_id=first_header(inner.headers, "X-MS-Exchange-Organization-Network-Message-Id"),
        sender=sender,
        recipients=tuple(body.recipients.values()),
        on_behalf_of=body.on_behalf_of,
        direction_hint=direction,
        direction_evidence=tuple(hints.evidence),
        originated=hints.originated(),
        spoof_of_own_domain=spoof,
        provider_hints=provider,
        provider_verdict=microsoft_verdict(provider),
        envelope_confidence=EnvelopeConfidence.HIGH,
        original=original,
        wrapped_in_ndr=wrapped_in_ndr,
        dedupe_key=dedupe_key(message_id, original, sender),
        subject=body.subject,
    )


def _attached_original(report: Entity) -> tuple[Entity, _ReportBody]:
    """The attached original and the parsed report body; JournalParseError names what is missing."""
    if not report.content_type.startswith("multipart/"):
        raise JournalParseError(
            f"journal report has no message/rfc822 part (it is a single {report.content_type} part)"
        )
    parts, closed = body_parts(report, "journal report")
    attached = next((p for p in parts if p.content_type == "message/rfc822"), None)
    if attached is None:
        if not closed:
            raise JournalParseError("journal report is truncated before its message/rfc822 part")
        raise JournalParseError("journal report has no message/rfc822 part")
    if not closed:
        raise JournalParseError("journal report is truncated: its closing MIME boundary is missing")
    inner = embedded(attached, "message/rfc822 part of the journal report")
    if not inner.raw[inner.start : inner.end].strip():
        raise JournalParseError("message/rfc822 part of the journal report is empty")

    body_part = next((p for p in parts if p.content_type == "text/plain"), None) or next(
        (p for p in parts if p.headers.get_content_maintype() == "text"), None
    )
    if body_part is None:
        raise JournalParseError("journal report has no text part with the report body")
    text = _part_text(body_part)
    if not text.strip():
        raise JournalParseError("journal report body is empty")
    return inner, _parse_report_body(text)


@dataclass(slots=True)
class _ReportBody:
    sender: str | None = None
    subject: str | None = None
    message_id: str | None = None
    on_behalf_of: str | None = None
    recipients: dict[str, JournalRecipient] = field(default_factory=dict)

    def add_recipients(self, field_name: str, value: str) -> None:
        expanded = forwarded = None
        addresses = []
        for item in split_list(value):
            redirect = _REDIRECT.fullmatch(item)
            if redirect:
                target = find_address(redirect.group(2))
                if redirect.group(1).lower() == "expanded":
                    expanded = expanded or target
                else:
                    forwarded = forwarded or target
                continue
            address = find_address(item)
            if address:
                addresses.append(address)
        for address in addresses:
            # the same recipient repeated (forked reports, repeated lines): the first line wins
            self.recipients.setdefault(address, JournalRecipient(address, field_name, expanded, forwarded))


def _parse_report_body(text: str) -> _ReportBody:
    """The report lines, case-insensitively; unknown lines are ignored.

    Exchange 2007+ writes one `Field: value` line per recipient; Exchange 2003-style reports may
    list recipients as indented lines under a `Recipients:` line, which is accepted too.
    """
    body = _ReportBody()
    continuing: str | None = None  # recipient field that indented lines continue
    # split on line breaks only: str.splitlines() would also split on NEL and other separators
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            continuing = None
            continue
        match = _REPORT_FIELD.fullmatch(stripped)
        name = match.group(1).lower() if match else ""
        known = name in _RECIPIENT_FIELDS or name in ("sender", "subject", "message-id", "on-behalf-of")
        if not known:
            if continuing and line[:1] in (" ", "\t"):
                body.add_recipients(continuing, stripped)
            else:
                continuing = None
            continue
        assert match is not None
        value = match.group(2).strip()
        continuing = None
        if name in _RECIPIENT_FIELDS:
            continuing = _RECIPIENT_FIELDS[name]
            body.add_recipients(continuing, value)
        elif name == "sender":
            body.sender = body.sender or find_address(value)
        elif name == "subject":
            body.subject = value if body.subject is None else body.subject
        elif name == "message-id":
            body.message_id = body.message_id or parse_message_id(value)
        else:
            body.on_behalf_of = body.on_behalf_of or find_address(value)
    return body


def _part_text(part: Entity) -> str:
    data = decode_transfer(part.body(), part.transfer_encoding, "journal report body")
    charset = part.headers.get_content_charset()
    for candidate in (charset, "utf-8", "cp1252"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError, ValueError):  # ValueError: a NUL in the charset name
            continue
    return data.decode("utf-8", "replace")


def microsoft_hints(headers: MimePart, hints: Hints) -> dict[str, str]:
    """Exchange's and Forefront's direction opinions into `hints`; their spam verdicts as provider hints."""
    provider: dict[str, str] = {}
    # X-MS-Exchange-Organization-* are Exchange's own: its header firewall removes them from mail that
    # comes in. The Forefront report is only believed when it says inbound.
    directionality = first_header(headers, "X-MS-Exchange-Organization-MessageDirectionality")
    if directionality:
        found = _MS_DIRECTIONALITY.get(directionality.lower())
        hints.add("ms_directionality", directionality, found, vouches=True)
    forefront = _attributes(first_header(headers, "X-Forefront-Antispam-Report") or "")
    if forefront.get("DIR"):
        hints.add("forefront_dir", forefront["DIR"], _FOREFRONT_DIR.get(forefront["DIR"].lower()))
    auth_as = first_header(headers, "X-MS-Exchange-Organization-AuthAs")
    if auth_as:
        hints.add("ms_authas", auth_as, _MS_AUTH_AS.get(auth_as.lower()), vouches=True)
    scl = first_header(headers, "X-MS-Exchange-Organization-SCL") or forefront.get("SCL")
    bcl = _attributes(first_header(headers, "X-Microsoft-Antispam") or "").get("BCL")
    for key, value in (
        ("scl", scl),
        ("bcl", bcl),
        ("sfv", forefront.get("SFV")),
        ("cat", forefront.get("CAT")),
        ("dir", forefront.get("DIR")),
        ("srv", forefront.get("SRV")),
        ("auth_results", first_header(headers, "Authentication-Results")),
    ):
        if value:
            provider[key] = value
    return provider


def _attributes(value: str) -> dict[str, str]:
    """`KEY:value;KEY:value` of X-Forefront-Antispam-Report and X-Microsoft-Antispam, keys upper-cased."""
    out: dict[str, str] = {}
    for item in value.split(";"):
        key, colon, val = item.partition(":")
        if colon:
            out.setdefault(key.strip().upper(), val.strip())
    return out
