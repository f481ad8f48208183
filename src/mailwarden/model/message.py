"""A message: its raw bytes kept exactly, its MIME tree parsed once and lazily.

Parsing uses the standard library's `compat32` policy, which measured about 14 times faster than
`policy.default` on the SpamAssassin corpus (see bench/parse.py); headers are decoded only when a
caller asks for them.
"""

from __future__ import annotations

import contextlib
import email
import email.errors
import email.header
import email.utils
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message as MimePart
from functools import cached_property
from typing import Any

from mailwarden.model import filetype, mime

# URLs are found by first looking for the few literal markers in a lower-cased copy and then matching the
# full pattern only there: on a 2.6 MB HTML body, a quarter of the time of one case-insensitive scan.
_URL_AT = re.compile(r"""(?:https?://|www\.)[^\s<>"'()\[\]{}]+""", re.IGNORECASE)
_URL_MARK = re.compile(r"http|www\.")
_HREF_AT = re.compile(r"""(?:href|src|action)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_HREF_MARK = re.compile(r"href|src|action")
MAX_URL_SCAN = 32_000_000  # characters of each body searched for links (padding before a link must not hide it)
MAX_URLS = 10_000  # distinct URLs kept per message
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_TRAILING = ".,;:!?"
_FALLBACK_CHARSETS = ("utf-8", "cp1252")
# a Date that ends in "-0000" or in a zone name (any comment after it aside)
_UNKNOWN_ZONE = re.compile(r"(?:-0000|\b[A-Za-z]{1,5})\s*(?:\(.*\))?\s*$")
_MAIL_HEADERS = frozenset(
    {"from", "to", "subject", "date", "message-id", "received", "return-path", "mime-version", "sender"}
)


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attached file: its name as sent, the type it declares and the type its bytes really are."""

    filename: str | None
    declared_type: str
    real_type: str
    size: int
    sha256: str
    payload: bytes
    depth: int = 0

    @property
    def extension(self) -> str:
        if not self.filename or "." not in self.filename:
            return ""
        return self.filename.rsplit(".", 1)[1].lower()


def decode_header_value(value: str | email.header.Header | None) -> str:
    """An RFC 2047 header value as readable text; never raises."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        # compat32 hands raw 8-bit header bytes over as a Header in the charset "unknown-8bit"
        chunks = decode_header(value)
        value = "".join(
            decode_text(b, None if cs in (None, "unknown-8bit") else cs) if isinstance(b, bytes) else b
            for b, cs in chunks
        )
    text = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        # raw 8-bit header bytes arrive as surrogate escapes; most such mail is UTF-8
        raw = text.encode("utf-8", "surrogateescape")
        text = decode_text(raw, None)
    if "=?" in text:
        with contextlib.suppress(UnicodeError, LookupError, ValueError, email.errors.HeaderParseError):
            text = str(make_header(decode_header(text)))
    return " ".join(text.split())


def content_charset(part: MimePart) -> str | None:
    """The part's declared charset, or None when the declaration cannot even be read (an RFC 2231
    charset parameter whose own charset name is garbage, e.g. holds a NUL, makes the standard library
    raise)."""
    try:
        return part.get_content_charset()
    except (LookupError, UnicodeError, ValueError):
        return None


def decode_text(payload: bytes, charset: str | None) -> str:
    """Bytes of a text part as str, trying the declared charset then common fallbacks."""
    for cs in (charset, *_FALLBACK_CHARSETS):
        if not cs:
            continue
        try:
            return payload.decode(cs)
        except (LookupError, UnicodeDecodeError, ValueError):  # ValueError: a charset name with a NUL
            continue
    return payload.decode("utf-8", "replace")


class Message:
    """One email message. `raw` is never modified; everything else is derived from it on demand."""

    __slots__ = ("__dict__", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    # ---- structure -------------------------------------------------------------------------
    @cached_property
    def _tree(self) -> tuple[MimePart, mime.MimeLimit | None]:
        return mime.parse(self.raw)

    @property
    def email(self) -> MimePart:
        """The parsed MIME tree (compat32), parsed on first use; only the header block when the
        message is past a MIME limit (`mime_limit`)."""
        return self._tree[0]

    @property
    def mime_limit(self) -> mime.MimeLimit | None:
        """The nesting or part-count limit that stopped the parse, or None when the tree is whole."""
        return self._tree[1]

    @property
    def size(self) -> int:
        return len(self.raw)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @cached_property
    def defects(self) -> tuple[str, ...]:
        """Names of the MIME defects the parser registered anywhere in the tree."""
        return tuple(type(d).__name__ for part in mime.parts(self.email) for d in part.defects)

    def looks_like_mail(self) -> bool:
        """True when the header block has at least one header every mail carries at least one of."""
        return not self._header_index.keys().isdisjoint(_MAIL_HEADERS)

    # ---- headers ---------------------------------------------------------------------------
    @cached_property
    def _header_index(self) -> dict[str, list[tuple[str, Any]]]:
        """The top-level header fields by lower-case name, in order, as the parser stored them. The
        standard library's `get` and `get_all` compare every field's name in turn: with a long Received
        chain the filters' few dozen look-ups a message cost more than the look-ups' own work."""
        index: dict[str, list[tuple[str, Any]]] = {}
        for name, value in self.email.raw_items():
            index.setdefault(name.lower(), []).append((name, value))
        return index

    def _values(self, name: str) -> list[Any]:
        """What `email.get_all(name)` returns (each value as the policy hands it over), from the index."""
        found = self._header_index.get(name.lower())
        if not found:
            return []
        fetch = self.email.policy.header_fetch_parse
        return [fetch(field, value) for field, value in found]

    def header_names(self) -> set[str]:
        """The lower-case names of the top-level header fields."""
        return set(self._header_index)

    def header(self, name: str) -> str | None:
        """First value of a header, decoded and unfolded; None when absent."""
        values = self._values(name)
        return decode_header_value(values[0]) if values else None

    def headers(self, name: str) -> list[str]:
        return [decode_header_value(v) for v in self._values(name)]

    def raw_headers(self, name: str) -> list[str]:
        """Undecoded values, for parsers that need the exact text (Received, Authentication-Results)."""
        return [str(v) for v in self._values(name)]

    @cached_property
    def subject(self) -> str:
        return self.header("Subject") or ""

    @cached_property
    def message_id(self) -> str | None:
        values = self._values("Message-ID")
        if not values:
            return None
        value = str(values[0]).strip()
        return value or None

    @cached_property
    def from_address(self) -> str | None:
        addresses = self._addresses("From")
        return addresses[0][1] if addresses else None

    @cached_property
    def from_display_name(self) -> str:
        addresses = self._addresses("From")
        return addresses[0][0] if addresses else ""

    @cached_property
    def to_addresses(self) -> tuple[str, ...]:
        return tuple(a for _, a in self._addresses("To"))

    @cached_property
    def cc_addresses(self) -> tuple[str, ...]:
        return tuple(a for _, a in self._addresses("Cc"))

    @cached_property
    def reply_to(self) -> str | None:
        addresses = self._addresses("Reply-To")
        return addresses[0][1] if addresses else None

    @cached_property
    def return_path(self) -> str | None:
        values = self._values("Return-Path")
        if not values:
            return None
        return email.utils.parseaddr(str(values[0]))[1].lower()

    @cached_property
    def date(self) -> datetime | None:
        """The Date header as a datetime; naive only when the value names no zone at all (malformed).

        RFC 5322 §3.3: `-0000` is UTC with the sender's local zone unknown, and §4.3: zone names of
        unknown meaning are taken the same way; the standard library returns both naive."""
        values = self._values("Date")
        if not values:
            return None
        text = str(values[0])
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed.tzinfo is None and _UNKNOWN_ZONE.search(text):
            return parsed.replace(tzinfo=UTC)
        return parsed

    def _addresses(self, name: str) -> list[tuple[str, str]]:
        """(display name, address) of every address in the header fields `name`; parsed once per name."""
        cache: dict[str, list[tuple[str, str]]] = self.__dict__.setdefault("_address_cache", {})
        found = cache.get(name)
        if found is None:
            values = [str(v) for v in self._values(name)]
            found = cache[name] = [
                (decode_header_value(display), addr.strip().lower())
                for display, addr in email.utils.getaddresses(values)
                if addr and "@" in addr
            ]
        return found

    # ---- body ------------------------------------------------------------------------------
    def leaves(self) -> Iterator[MimePart]:
        """Leaf parts of the tree; a nested message/rfc822 is walked into."""
        for part in mime.parts(self.email):
            if not part.is_multipart() and part.get_content_maintype() != "message":
                yield part

    @cached_property
    def _leaf_kinds(self) -> tuple[tuple[MimePart, str, bool], ...]:
        """Every leaf with its content type and whether it is a file: classified once, used by the
        body and attachment views."""
        return tuple((part, part.get_content_type(), _is_attachment(part)) for part in self.leaves())

    @cached_property
    def text_parts(self) -> tuple[str, ...]:
        return tuple(self._bodies("text/plain"))

    @cached_property
    def html_parts(self) -> tuple[str, ...]:
        return tuple(self._bodies("text/html"))

    def _bodies(self, content_type: str) -> Iterator[str]:
        for part, kind, is_file in self._leaf_kinds:
            if kind != content_type or is_file:
                continue
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                yield decode_text(payload, content_charset(part))

    @cached_property
    def urls(self) -> tuple[str, ...]:
        """Distinct URLs from the text and HTML bodies, in order of first appearance (bounded: the first
        MAX_URL_SCAN characters of each body, at most MAX_URLS)."""
        seen: dict[str, None] = {}
        for text in self.text_parts:
            _add_urls(text[:MAX_URL_SCAN], seen)
        for html in self.html_parts:
            html = html[:MAX_URL_SCAN]
            for m in _at_markers(html, _HREF_MARK, _HREF_AT):
                value = m.group(1)
                if value.lower().startswith(("http://", "https://", "www.")) and len(seen) < MAX_URLS:
                    seen.setdefault(value.rstrip(_TRAILING), None)
            _add_urls(html, seen)
        return tuple(seen)

    @cached_property
    def attachments(self) -> tuple[Attachment, ...]:
        """Every part that is a file (has a name or is not inline text), with its real type."""
        out = []
        for part, kind, is_file in self._leaf_kinds:
            if not is_file:
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            out.append(
                Attachment(
                    filename=_filename(part),
                    declared_type=kind,
                    real_type=filetype.sniff(data),
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    payload=data,
                )
            )
        return tuple(out)

    @cached_property
    def nested_messages(self) -> tuple[Message, ...]:
        """Attached message/rfc822 parts, each as a Message of its own."""
        out = []
        for part in mime.parts(self.email):
            if part.get_content_type() != "message/rfc822":
                continue
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], MimePart):
                out.append(Message(mime.part_bytes(inner[0])))
        return tuple(out)


def bounded(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters by keeping its head and its tail: content placed after
    padding (a known way to slip past scanners that read only the start) is still looked at."""
    if len(text) <= limit:
        return text
    if limit < 2:
        return text[: max(limit, 0)]
    head = limit // 2
    return text[:head] + "\n" + text[len(text) - (limit - head - 1) :]


def _at_markers(text: str, marker: re.Pattern[str], pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
    """Matches of `pattern` that start at a word boundary where `marker` occurs (case-insensitively)."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters lower-case to two (İ): offsets must stay aligned
        lowered = text.translate(_ASCII_LOWER)
    end = 0  # like finditer, a match is never looked for inside the previous one
    for found in marker.finditer(lowered):
        i = found.start()
        if i < end or (i and (lowered[i - 1].isalnum() or lowered[i - 1] == "_")):
            continue
        m = pattern.match(text, i)
        if m is not None:
            end = m.end()
            yield m


def _add_urls(text: str, seen: dict[str, None]) -> None:
    for m in _at_markers(text, _URL_MARK, _URL_AT):
        if len(seen) >= MAX_URLS:
            return
        seen.setdefault(m.group(0).rstrip(_TRAILING), None)


def _filename(part: MimePart) -> str | None:
    try:
        name = part.get_filename()
    except (LookupError, ValueError, AttributeError, TypeError):
        return None
    if name is None:
        return None
    return decode_header_value(name) or None


def _is_attachment(part: MimePart) -> bool:
    # str(): a field with raw 8-bit bytes comes back as a Header object under compat32
    disposition = str(part.get("Content-Disposition") or "").split(";", 1)[0].strip().lower()
    if disposition == "attachment":
        return True
    if _filename(part):
        return True
    return part.get_content_maintype() not in ("text", "multipart", "message")
