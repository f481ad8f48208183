"""MIME entities located on the raw bytes of a report, so an attached original is a byte-exact slice.

Header blocks are parsed with the standard library (compat32); part boundaries are found by scanning
the bytes, so DKIM signatures on the attached original still verify.
"""

from __future__ import annotations

import binascii
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message as MimePart
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailwarden.ingest.journal.envelope import JournalParseError
from mailwarden.ingest.journal.headers import header_text

# Headers that show a message/rfc822 part's header block ran into the original's (no blank line).
_MESSAGE_HEADERS = ("From", "Received", "Message-ID", "Date", "Return-Path", "Subject")
_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_BLANK_LINE = re.compile(rb"\n\r?\n")


@dataclass(frozen=True, slots=True)
class Entity:
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
        return header_text(self.headers.get("Content-Transfer-Encoding", "")).lower()

    def body(self) -> bytes:
        return self.raw[self.body_start : self.end]


def read_entity(raw: bytes, start: int = 0, end: int | None = None) -> Entity:
    """The entity in raw[start:end]: its header block parsed, its body located (not copied)."""
    end = len(raw) if end is None else max(end, start)
    if raw.startswith(b"\n", start, end):
        header_end, body_start = start, start + 1
    elif raw.startswith(b"\r\n", start, end):
        header_end, body_start = start, start + 2
    else:
        match = _BLANK_LINE.search(raw, start, end)
        header_end, body_start = (match.start() + 1, match.end()) if match else (end, end)
    return Entity(raw, start, header_end, body_start, end, _HEADER_PARSER.parsebytes(raw[start:header_end]))


def body_parts(entity: Entity, what: str) -> tuple[list[Entity], bool]:
    """Body parts of a multipart entity and whether its closing boundary was found."""
    boundary = entity.headers.get_boundary()
    if not boundary:
        raise JournalParseError(f"{what} is {entity.content_type} but has no boundary parameter")
    try:
        marker = boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        marker = boundary.encode("utf-8", "surrogateescape")
    raw = entity.raw
    parts: list[Entity] = []
    part_start: int | None = None
    for delimiter_start, line_end, closing in _delimiters(raw, b"--" + marker, entity.body_start, entity.end):
        if part_start is not None:
            parts.append(read_entity(raw, part_start, delimiter_start))
        if closing:
            return parts, True
        part_start = line_end
    if part_start is None:
        raise JournalParseError(f"{what} has no MIME part delimiter for its boundary {boundary!r}")
    parts.append(read_entity(raw, part_start, entity.end))
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


def decode_transfer(data: bytes, encoding: str, what: str) -> bytes:
    """A part body decoded from base64 or quoted-printable; other encodings are kept as they are."""
    if encoding == "base64":
        compact = b"".join(data.split())
        try:
            return binascii.a2b_base64(compact + b"=" * (-len(compact) % 4))
        except binascii.Error as exc:
            raise JournalParseError(f"{what} has broken base64 content: {exc}") from None
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data  # 7bit, 8bit, binary, absent (or unknown: the bytes are kept as they are)


def embedded(part: Entity, what: str) -> Entity:
    """The message inside a message/rfc822 part, located in the report's bytes when not encoded."""
    start = part.body_start
    if any(name in part.headers for name in _MESSAGE_HEADERS):
        start = _end_of_content_headers(part)  # no blank line between part headers and the message
    encoding = part.transfer_encoding
    if encoding in ("base64", "quoted-printable"):
        decoded = decode_transfer(part.raw[start : part.end], encoding, what)
        return read_entity(decoded)
    return read_entity(part.raw, start, part.end)


def _end_of_content_headers(part: Entity) -> int:
    """Where the original begins when it follows the part's Content-* fields without a blank line."""
    raw, pos = part.raw, part.start
    while pos < part.header_end:
        newline = raw.find(b"\n", pos, part.header_end)
        line_end = part.header_end if newline < 0 else newline + 1
        line = raw[pos:line_end]
        if not (line[:1] in (b" ", b"\t") or line.lower().startswith((b"content-", b"mime-version"))):
            break
        pos = line_end
    return pos
