"""Journal unwrapping for monitor mode: a journal report or copy in, the original and its envelope out.

Pure: bytes in, a `JournalEnvelope` out, no I/O. Four inputs are understood (docs/journal.md):

* Exchange 2007+ envelope journal reports (`X-MS-Journal-Report`), also when an NDR carries one;
* Exchange 2003 legacy reports (`Content-Identifier: ExJournalReport`, or the `Content-Identifer` typo);
* Google Workspace "also deliver to" routing copies (`X-Gm-Original-To`, `X-Gm-Spam`, `X-Gm-Phishy`);
* plain BCC copies (Postfix `recipient_bcc_maps` and the like), optionally with the original
  recipient encoded in our RCPT TO address: `journal+in.<local>=<domain>@…` / `journal+out.…`.

The MIME structure is found on the raw bytes: header blocks are parsed with the standard library
(compat32), but part boundaries are located by scanning the bytes, so the attached original is a
slice of the report exactly as received and DKIM signatures on it still verify.
"""

from __future__ import annotations

import binascii
import email.utils
import hashlib
import quopri
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message as MimePart
from email.parser import BytesHeaderParser
from email.policy import compat32
from enum import StrEnum
from functools import lru_cache

from mailwarden.errors import ConfigError, MailwardenError
from mailwarden.model.direction import Direction, is_org_address
from mailwarden.model.envelope import normalise_address


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


class JournalParseError(MailwardenError):
    """A journal report or copy cannot be unwrapped; the message says what is wrong with it."""

    exit_code = 65  # EX_DATAERR

    def __init__(self, message: str, *, source_format: JournalFormat | None = None) -> None:
        self.source_format = source_format
        super().__init__(message)


_EXCHANGE = (JournalFormat.EXCHANGE_2007, JournalFormat.EXCHANGE_2003)
_GMAIL_HEADERS = ("X-Gm-Original-To", "X-Gm-Spam", "X-Gm-Phishy")
# Inside Exchange transport the header has its long name; the header firewall renames it on the way out.
_EXCHANGE_2007_HEADERS = ("X-MS-Journal-Report", "X-MS-Exchange-Organization-Journal-Report")
_EXCHANGE_2003_HEADERS = ("Content-Identifier", "Content-Identifer")  # the typo occurs in the wild
# Headers that show a message/rfc822 part's header block ran into the original's (no blank line).
_MESSAGE_HEADERS = ("From", "Received", "Message-ID", "Date", "Return-Path", "Subject")

_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_BLANK_LINE = re.compile(rb"\n\r?\n")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_REPORT_FIELD = re.compile(r"([A-Za-z][A-Za-z0-9-]*)[ \t]*:(.*)")
_REDIRECT = re.compile(r"(?i)(expanded|forwarded)[ \t]*:(.*)")
_RECIPIENT_FIELDS = {"to": "to", "cc": "cc", "bcc": "bcc", "recipient": "recipient", "recipients": "recipient"}
_DEFAULT_BCC_PATTERN = r"(?i)[^@]*?\+(?P<dir>in|out)\.(?P<local>.+)=(?P<domain>[^=@\s]+)@[^@]+"

_MS_DIRECTIONALITY = {"incoming": Direction.INBOUND, "originating": Direction.OUTBOUND}
_MS_AUTH_AS = {"anonymous": Direction.INBOUND, "internal": Direction.OUTBOUND}
_FOREFRONT_DIR = {"inb": Direction.INBOUND, "out": Direction.OUTBOUND, "int": Direction.INTERNAL}
_CUSTOM_DIR = {
    "inbound": Direction.INBOUND,
    "outbound": Direction.OUTBOUND,
    "internal": Direction.INTERNAL,
}
_BCC_DIR = {"in": Direction.INBOUND, "out": Direction.OUTBOUND}
_COPY_NAMES = {JournalFormat.GMAIL: "Gmail copy", JournalFormat.BCC: "BCC copy"}


# ---- raw MIME ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entity:
    """One MIME entity located in `raw`: header block [start, header_end), body [body_start, end)."""

    raw: bytes
    start: int
    header_end: int
    body_start: int
    end: int
    headers: MimePart

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    @property
    def transfer_encoding(self) -> str:
        return _text(self.headers.get("Content-Transfer-Encoding", "")).lower()

    def body(self) -> bytes:
        return self.raw[self.body_start : self.end]


def _entity(raw: bytes, start: int = 0, end: int | None = None) -> _Entity:
    end = len(raw) if end is None else max(end, start)
    if raw.startswith(b"\n", start, end):
        header_end, body_start = start, start + 1
    elif raw.startswith(b"\r\n", start, end):
        header_end, body_start = start, start + 2
    else:
        match = _BLANK_LINE.search(raw, start, end)
        header_end, body_start = (match.start() + 1, match.end()) if match else (end, end)
    return _Entity(raw, start, header_end, body_start, end, _HEADER_PARSER.parsebytes(raw[start:header_end]))


def _parts(entity: _Entity, what: str) -> tuple[list[_Entity], bool]:
    """Body parts of a multipart entity and whether its closing boundary was found."""
    boundary = entity.headers.get_boundary()
    if not boundary:
        raise JournalParseError(f"{what} is {entity.content_type} but has no boundary parameter")
    try:
        marker = boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        marker = boundary.encode("utf-8", "surrogateescape")
    raw = entity.raw
    parts: list[_Entity] = []
    part_start: int | None = None
    for delimiter_start, line_end, closing in _delimiters(raw, b"--" + marker, entity.body_start, entity.end):
        if part_start is not None:
            parts.append(_entity(raw, part_start, delimiter_start))
        if closing:
            return parts, True
        part_start = line_end
    if part_start is None:
        raise JournalParseError(f"{what} has no MIME part delimiter for its boundary {boundary!r}")
    parts.append(_entity(raw, part_start, entity.end))
    return parts, False


def _delimiters(raw: bytes, dash_boundary: bytes, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
    """(start, end of line, is closing) of each delimiter line in raw[start:end].

    A delimiter line is `--boundary` or `--boundary--` at the start of a line, optionally followed by
    blanks. RFC 2046: the line break before it belongs to the delimiter, not to the part before.
    Found with bytes.find rather than a regex: this scans multi-megabyte originals.
    """
    pos = start
    while (found := raw.find(dash_boundary, pos, end)) >= 0:
        pos = found + 1
        if found > start and raw[found - 1] != 0x0A:
            continue
        cursor = found + len(dash_boundary)
        closing = raw.startswith(b"--", cursor, end)
        cursor += 2 if closing else 0
        while cursor < end and raw[cursor] in (0x20, 0x09):
            cursor += 1
        if cursor < end and raw[cursor] == 0x0D:
            cursor += 1
        if cursor < end and raw[cursor] != 0x0A:
            continue
        delimiter_start = found
        if found > start:
            delimiter_start -= 2 if found - 1 > start and raw[found - 2] == 0x0D else 1
        yield delimiter_start, min(cursor + 1, end), closing
        pos = cursor


def _decode_transfer(data: bytes, encoding: str, what: str) -> bytes:
    if encoding == "base64":
        compact = b"".join(data.split())
        try:
            return binascii.a2b_base64(compact + b"=" * (-len(compact) % 4))
        except binascii.Error as exc:
            raise JournalParseError(f"{what} has broken base64 content: {exc}") from None
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data  # 7bit, 8bit, binary, absent (or unknown: the bytes are kept as they are)


def _embedded(part: _Entity, what: str) -> _Entity:
    """The message inside a message/rfc822 part, located in the report's bytes when not encoded."""
    start = part.body_start
    if any(name in part.headers for name in _MESSAGE_HEADERS):
        start = _end_of_content_headers(part)  # no blank line between part headers and the message
    encoding = part.transfer_encoding
    if encoding in ("base64", "quoted-printable"):
        decoded = _decode_transfer(part.raw[start : part.end], encoding, what)
        return _entity(decoded)
    return _entity(part.raw, start, part.end)


def _end_of_content_headers(part: _Entity) -> int:
    raw, pos = part.raw, part.start
    while pos < part.header_end:
        newline = raw.find(b"\n", pos, part.header_end)
        line_end = part.header_end if newline < 0 else newline + 1
        line = raw[pos:line_end]
        if not (line[:1] in (b" ", b"\t") or line.lower().startswith((b"content-", b"mime-version"))):
            break
        pos = line_end
    return pos


# ---- header helpers ---------------------------------------------------------------------------


def _text(value: object) -> str:
    """A header value unfolded, white space collapsed, raw 8-bit bytes read as UTF-8."""
    text = " ".join(_FOLD.sub("", str(value)).split())
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def _first(headers: MimePart, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    return _text(value) or None


def _message_id(value: str | None) -> str | None:
    if value is None:
        return None
    return "".join(value.split()) or None


def _header_addresses(headers: MimePart, name: str) -> list[str]:
    values = [str(v) for v in headers.get_all(name, [])]
    out = []
    for _, addr in email.utils.getaddresses(values):
        address = _valid_address(addr)
        if address:
            out.append(address)
    return out


def _valid_address(text: str) -> str | None:
    address = normalise_address(text)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(ch.isspace() for ch in address):
        return None
    return address


def _address(text: str) -> str | None:
    """The address in a report value: `a@b`, `<a@b>` or `Name <a@b>`."""
    if "<" in text:
        return _valid_address(text[text.rfind("<") + 1 :].split(">", 1)[0])
    for token in text.split():
        if "@" in token:
            return _valid_address(token)
    return None


def _attributes(value: str) -> dict[str, str]:
    """`KEY:value;KEY:value` of X-Forefront-Antispam-Report and X-Microsoft-Antispam, keys upper-cased."""
    out: dict[str, str] = {}
    for item in value.split(";"):
        key, colon, val = item.partition(":")
        if colon:
            out.setdefault(key.strip().upper(), val.strip())
    return out


def _marker_format(headers: MimePart) -> JournalFormat | None:
    if any(name in headers for name in _EXCHANGE_2007_HEADERS):
        return JournalFormat.EXCHANGE_2007
    for name in _EXCHANGE_2003_HEADERS:
        if any(_text(v).lower() == "exjournalreport" for v in headers.get_all(name, [])):
            return JournalFormat.EXCHANGE_2003
    return None


# ---- format detection -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Located:
    source_format: JournalFormat
    outer: _Entity  # what arrived
    report: _Entity  # the journal report or copy itself (inside the NDR when wrapped)
    wrapped_in_ndr: bool


def _locate(raw: bytes) -> _Located:
    outer = _entity(raw)
    marked = _marker_format(outer.headers)
    if marked:
        return _Located(marked, outer, outer, False)
    if outer.content_type == "multipart/report":
        found = _report_in_ndr(outer)
        if found is not None:
            return _Located(found[0], outer, found[1], True)
    if any(name in outer.headers for name in _GMAIL_HEADERS):
        return _Located(JournalFormat.GMAIL, outer, outer, False)
    return _Located(JournalFormat.BCC, outer, outer, False)


def _report_in_ndr(ndr: _Entity) -> tuple[JournalFormat, _Entity] | None:
    """The journal report an NDR returns as its message/rfc822 part, if it returns one."""
    try:
        parts, _ = _parts(ndr, "non-delivery report")
        for part in parts:
            if part.content_type == "message/rfc822":
                returned = _embedded(part, "returned message of the non-delivery report")
                marked = _marker_format(returned.headers)
                if marked:
                    return marked, returned
    except JournalParseError:
        return None
    return None


def detect_format(raw: bytes) -> JournalFormat:
    """Which kind of journal input `raw` is; anything unrecognised is a plain BCC copy."""
    return _locate(raw).source_format


# ---- Exchange report body ---------------------------------------------------------------------


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
        for item in _split_list(value):
            redirect = _REDIRECT.fullmatch(item)
            if redirect:
                target = _address(redirect.group(2))
                if redirect.group(1).lower() == "expanded":
                    expanded = expanded or target
                else:
                    forwarded = forwarded or target
                continue
            address = _address(item)
            if address:
                addresses.append(address)
        for address in addresses:
            # the same recipient repeated (forked reports, repeated lines): the first line wins
            self.recipients.setdefault(address, JournalRecipient(address, field_name, expanded, forwarded))


def _split_list(value: str) -> list[str]:
    """Comma-separated items, ignoring commas inside quotes or angle brackets."""
    if '"' not in value and "<" not in value:
        return [item for item in (part.strip() for part in value.split(",")) if item]
    items: list[str] = []
    current: list[str] = []
    quoted = angle = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        elif ch == "," and not quoted and not angle:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    items.append("".join(current).strip())
    return [item for item in items if item]


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
            body.sender = body.sender or _address(value)
        elif name == "subject":
            body.subject = value if body.subject is None else body.subject
        elif name == "message-id":
            body.message_id = body.message_id or _message_id(value)
        else:
            body.on_behalf_of = body.on_behalf_of or _address(value)
    return body


def _part_text(part: _Entity) -> str:
    data = _decode_transfer(part.body(), part.transfer_encoding, "journal report body")
    charset = part.headers.get_content_charset()
    for candidate in (charset, "utf-8", "cp1252"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError, ValueError):  # ValueError: a NUL in the charset name
            continue
    return data.decode("utf-8", "replace")


# ---- hints ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Hints:
    evidence: list[str] = field(default_factory=list)
    directions: list[Direction] = field(default_factory=list)
    vouched: bool = False  # a source the sender cannot write says the organisation sent it

    def add(self, source: str, raw_value: str, direction: Direction | None, *, vouches: bool = False) -> None:
        """One source's opinion. `vouches`: the sender cannot have written it, so an outbound or internal
        answer is evidence that the organisation sent the message (an inbound answer from any source
        is evidence against)."""
        self.evidence.append(f"{source}:{raw_value.lower()}")
        if direction is not None:
            self.directions.append(direction)
            self.vouched = self.vouched or (vouches and direction is not Direction.INBOUND)

    def direction(self) -> Direction | None:
        if len(set(self.directions)) > 1 and Direction.INBOUND in self.directions:
            self.evidence.append("hints_disagree")
        return self.directions[0] if self.directions else None

    def originated(self) -> bool:
        return self.vouched and Direction.INBOUND not in self.directions

    def spoof(self, sender: str, domains: set[str]) -> bool:
        """The sender claims one of the organisation's domains, but a source says the mail came in."""
        found = is_org_address(sender, domains) and Direction.INBOUND in self.directions
        if found:
            self.evidence.append("spoof_of_own_domain")
        return found


def _microsoft_hints(headers: MimePart, hints: _Hints) -> dict[str, str]:
    provider: dict[str, str] = {}
    # X-MS-Exchange-Organization-* are Exchange's own: its header firewall removes them from mail that
    # comes in. The Forefront report is only believed when it says inbound.
    directionality = _first(headers, "X-MS-Exchange-Organization-MessageDirectionality")
    if directionality:
        found = _MS_DIRECTIONALITY.get(directionality.lower())
        hints.add("ms_directionality", directionality, found, vouches=True)
    forefront = _attributes(_first(headers, "X-Forefront-Antispam-Report") or "")
    if forefront.get("DIR"):
        hints.add("forefront_dir", forefront["DIR"], _FOREFRONT_DIR.get(forefront["DIR"].lower()))
    auth_as = _first(headers, "X-MS-Exchange-Organization-AuthAs")
    if auth_as:
        hints.add("ms_authas", auth_as, _MS_AUTH_AS.get(auth_as.lower()), vouches=True)
    scl = _first(headers, "X-MS-Exchange-Organization-SCL") or forefront.get("SCL")
    bcl = _attributes(_first(headers, "X-Microsoft-Antispam") or "").get("BCL")
    for key, value in (
        ("scl", scl),
        ("bcl", bcl),
        ("sfv", forefront.get("SFV")),
        ("cat", forefront.get("CAT")),
        ("dir", forefront.get("DIR")),
        ("auth_results", _first(headers, "Authentication-Results")),
    ):
        if value:
            provider[key] = value
    return provider


def _gmail_hints(headers: MimePart, hints: _Hints) -> dict[str, str]:
    # The topmost occurrence is the one Gmail added last; a sender may have forged later ones.
    custom = _first(headers, "X-Journal-Direction")
    if custom:
        hints.add("custom_header", custom, _CUSTOM_DIR.get(custom.lower()), vouches=True)
    provider: dict[str, str] = {}
    for key, name in (
        ("x_gm_spam", "X-Gm-Spam"),
        ("x_gm_phishy", "X-Gm-Phishy"),
        ("auth_results", "ARC-Authentication-Results"),
    ):
        value = _first(headers, name)
        if value:
            provider[key] = value
    return provider


def _dedupe_key(original_message_id: str | None, original: bytes, sender: str) -> str:
    if original_message_id:
        identity = "mid:" + original_message_id.strip("<>")
    else:
        identity = "sha256:" + hashlib.sha256(original).hexdigest()
    return hashlib.sha256(f"{identity}\n{sender}".encode("utf-8", "surrogateescape")).hexdigest()


# ---- unwrapping -------------------------------------------------------------------------------


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
    located = _locate(raw)
    domains = {d.lower() for d in org_domains}
    if located.source_format in _EXCHANGE:
        return _unwrap_exchange(located, domains)
    if located.source_format is JournalFormat.GMAIL:
        return _unwrap_gmail(located, smtp_mail_from, domains)
    pattern = _bcc_pattern(journal_address_pattern or _DEFAULT_BCC_PATTERN)
    return _unwrap_bcc(located, smtp_mail_from, smtp_rcpt_to, pattern, domains)


def _unwrap_exchange(located: _Located, domains: set[str]) -> JournalEnvelope:
    fmt, report = located.source_format, located.report

    def fail(message: str) -> JournalParseError:
        return JournalParseError(message, source_format=fmt)

    if not report.content_type.startswith("multipart/"):
        raise fail(f"journal report has no message/rfc822 part (it is a single {report.content_type} part)")
    try:
        parts, closed = _parts(report, "journal report")
    except JournalParseError as exc:
        raise fail(str(exc)) from None
    attached = next((p for p in parts if p.content_type == "message/rfc822"), None)
    if attached is None:
        if not closed:
            raise fail("journal report is truncated before its message/rfc822 part")
        raise fail("journal report has no message/rfc822 part")
    if not closed:
        raise fail("journal report is truncated: its closing MIME boundary is missing")
    try:
        inner = _embedded(attached, "message/rfc822 part of the journal report")
    except JournalParseError as exc:
        raise fail(str(exc)) from None
    original = inner.raw[inner.start : inner.end]
    if not original.strip():
        raise fail("message/rfc822 part of the journal report is empty")

    body_part = next((p for p in parts if p.content_type == "text/plain"), None) or next(
        (p for p in parts if p.headers.get_content_maintype() == "text"), None
    )
    if body_part is None:
        raise fail("journal report has no text part with the report body")
    try:
        text = _part_text(body_part)
    except JournalParseError as exc:
        raise fail(str(exc)) from None
    if not text.strip():
        raise fail("journal report body is empty")
    body = _parse_report_body(text)
    sender = body.sender or next(iter(_header_addresses(inner.headers, "From")), None)
    if not sender:
        raise fail("report body has no Sender line and the attached original has no From header")
    if not body.recipients:
        raise fail("report body has no recipient lines (To/Cc/Bcc/Recipient)")

    hints = _Hints()
    provider = _microsoft_hints(inner.headers, hints)
    direction = hints.direction()
    spoof = hints.spoof(sender, domains)
    if spoof:
        direction = Direction.INBOUND

    message_id = body.message_id or _message_id(_first(inner.headers, "Message-ID"))
    return JournalEnvelope(
        source_format=fmt,
        journal_msg_id=_message_id(_first(report.headers, "Message-ID")),
        original_message_id=message_id,
        network_message_id=_first(inner.headers, "X-MS-Exchange-Organization-Network-Message-Id"),
        sender=sender,
        recipients=tuple(body.recipients.values()),
        on_behalf_of=body.on_behalf_of,
        direction_hint=direction,
        direction_evidence=tuple(hints.evidence),
        originated=hints.originated(),
        spoof_of_own_domain=spoof,
        provider_hints=provider,
        envelope_confidence=EnvelopeConfidence.HIGH,
        original=original,
        wrapped_in_ndr=located.wrapped_in_ndr,
        dedupe_key=_dedupe_key(message_id, original, sender),
        subject=body.subject,
    )


def _copy_sender(copy: _Entity, smtp_mail_from: str, fmt: JournalFormat) -> str:
    sender = _valid_address(smtp_mail_from) or next(iter(_header_addresses(copy.headers, "From")), None)
    if not sender:
        raise JournalParseError(
            f"{_COPY_NAMES[fmt]} has no envelope sender (MAIL FROM) and no From header", source_format=fmt
        )
    return sender


def _check_is_mail(copy: _Entity, fmt: JournalFormat) -> None:
    if not copy.headers.keys():
        raise JournalParseError(
            f"{_COPY_NAMES[fmt]} is not an email message: it has no header fields", source_format=fmt
        )


def _header_recipients(copy: _Entity) -> list[JournalRecipient]:
    addresses = _header_addresses(copy.headers, "To") + _header_addresses(copy.headers, "Cc")
    return [JournalRecipient(a, "header") for a in dict.fromkeys(addresses)]


def _unwrap_gmail(located: _Located, smtp_mail_from: str, domains: set[str]) -> JournalEnvelope:
    copy, fmt = located.outer, JournalFormat.GMAIL
    _check_is_mail(copy, fmt)
    sender = _copy_sender(copy, smtp_mail_from, fmt)
    hints = _Hints()
    provider = _gmail_hints(copy.headers, hints)
    direction = hints.direction()

    recipients: dict[str, JournalRecipient] = {}
    for value in copy.headers.get_all("X-Gm-Original-To", []):
        for item in _split_list(_text(value)):
            address = _address(item)
            if address:
                recipients.setdefault(address, JournalRecipient(address, "envelope"))
    confidence = EnvelopeConfidence.MEDIUM
    looks_outbound = direction is Direction.OUTBOUND or is_org_address(sender, domains)
    if looks_outbound or not recipients:
        if not recipients:
            confidence = EnvelopeConfidence.LOW
        for rcpt in _header_recipients(copy):
            recipients.setdefault(rcpt.address, rcpt)
    if not recipients:
        raise JournalParseError(
            "Gmail copy has no recipients: no X-Gm-Original-To and no To/Cc header", source_format=fmt
        )

    return _copy_envelope(
        fmt, located.outer.raw, copy, sender, recipients, direction, hints, provider, confidence, domains
    )


@lru_cache(maxsize=16)
def _bcc_pattern(pattern: str) -> re.Pattern[str]:
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
    decoded = _valid_address(f"{match.group('local')}@{match.group('domain')}")
    if not decoded:
        return None
    tag = match.group("dir").lower()
    return _BCC_DIR.get(tag), decoded, tag


def _unwrap_bcc(
    located: _Located, smtp_mail_from: str, smtp_rcpt_to: Sequence[str], pattern: re.Pattern[str], domains: set[str]
) -> JournalEnvelope:
    copy, fmt = located.outer, JournalFormat.BCC
    _check_is_mail(copy, fmt)
    sender = _copy_sender(copy, smtp_mail_from, fmt)
    hints = _Hints()
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
        recipients = {r.address: r for r in _header_recipients(copy)}
    if not recipients:
        raise JournalParseError(
            "BCC copy has no recipients: no encoded RCPT TO address and no To/Cc header", source_format=fmt
        )

    direction = hints.direction()
    return _copy_envelope(fmt, located.outer.raw, copy, sender, recipients, direction, hints, {}, confidence, domains)


def _copy_envelope(
    fmt: JournalFormat,
    original: bytes,
    copy: _Entity,
    sender: str,
    recipients: dict[str, JournalRecipient],
    direction: Direction | None,
    hints: _Hints,
    provider: dict[str, str],
    confidence: EnvelopeConfidence,
    domains: set[str],
) -> JournalEnvelope:
    """The envelope of a copy that is the original itself (Gmail routing copy, BCC copy)."""
    spoof = hints.spoof(sender, domains)
    message_id = _message_id(_first(copy.headers, "Message-ID"))
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
        envelope_confidence=confidence,
        original=original,
        wrapped_in_ndr=False,
        dedupe_key=_dedupe_key(message_id, original, sender),
    )
