"""The MIME tree of raw bytes, read within limits, walked and written back without recursion.

The standard library's parser descends one level of its own call stack per nested part, so a small
message of a thousand nested `message/rfc822` parts ends in RecursionError; its `walk()` and its
generator recurse the same way. Here the parser stops at MAX_DEPTH levels or MAX_PARTS parts (the
message is then read as its header block alone and the limit it hit is reported), and the tree is
walked and written back with explicit stacks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.errors import MissingHeaderBodySeparatorDefect
from email.feedparser import BytesFeedParser
from email.message import Message as MimePart
from email.parser import BytesParser
from email.policy import compat32
from typing import Final

MAX_DEPTH: Final = 100
"""Nested parts (multipart and message/* alike) read at most; Postfix's `mime_nesting_limit` is 100 too."""
MAX_PARTS: Final = 10_000
"""Parts read at most in one message."""

SINGLE_PART_FAST: Final = 1024 * 1024
"""Bytes from which a one-part message is read without the feed parser's per-line work."""
_HEADER_SCAN: Final = 1024 * 1024  # bytes searched for the end of the header block
_EOL = re.compile(rb"\r\n|\r|\n")

NESTING_LIMIT: Final = "MIME_NESTING_LIMIT"
PART_LIMIT: Final = "MIME_PART_LIMIT"


@dataclass(frozen=True, slots=True)
class MimeLimit:
    """Why a MIME tree was not read in full: `code` is NESTING_LIMIT or PART_LIMIT."""

    code: str
    detail: str


class _LimitReached(Exception):
    def __init__(self, limit: MimeLimit) -> None:
        super().__init__(limit.detail)
        self.limit = limit


class _BoundedParser(BytesFeedParser):
    """compat32's feed parser, stopped before it opens a part past MAX_DEPTH or MAX_PARTS.

    `_new_message` / `_pop_message` are where the parser opens and closes every part (root, multipart
    children, the message inside message/*), unchanged since Python 3.3; counting there measures
    exactly the nesting the parser's own recursion follows.
    """

    def __init__(self) -> None:
        super().__init__(policy=compat32)
        self._open = 0
        self._parts = 0

    def _new_message(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise _LimitReached(MimeLimit(PART_LIMIT, f"more than {MAX_PARTS} MIME parts"))
        if self._open >= MAX_DEPTH:
            raise _LimitReached(MimeLimit(NESTING_LIMIT, f"MIME parts nested deeper than {MAX_DEPTH} levels"))
        self._open += 1
        super()._new_message()  # type: ignore[misc]  # not in typeshed: see the class docstring

    def _pop_message(self) -> MimePart:
        self._open -= 1
        part: MimePart = super()._pop_message()  # type: ignore[misc]
        return part


def parse(raw: bytes) -> tuple[MimePart, MimeLimit | None]:
    """The compat32 tree of `raw`; past a limit, its header block alone (the body one text) and the limit."""
    single = _single_part(raw)
    if single is not None:
        return single, None
    parser = _BoundedParser()
    try:
        parser.feed(raw)
        return parser.close(), None
    except _LimitReached as hit:
        return BytesParser(policy=compat32).parsebytes(raw, headersonly=True), hit.limit


def _single_part(raw: bytes) -> MimePart | None:
    """A large message that is one part (no multipart, no message/*), parsed as its header block with
    the body set as one text: the same tree the feed parser makes, without its object per line (48 MB
    of empty lines cost the feed parser about 2 GB). None when the fast way does not apply."""
    if len(raw) < SINGLE_PART_FAST:
        return None
    end = _header_end(raw)
    if end is None:
        return None
    head = BytesParser(policy=compat32).parsebytes(raw[:end], headersonly=True)
    if head.get_content_maintype() in ("multipart", "message") or any(
        isinstance(d, MissingHeaderBodySeparatorDefect) for d in head.defects
    ):
        return None
    # the feed parser reads bytes as ASCII with surrogate escapes and keeps a leaf's body as that text
    head.set_payload(raw[end:].decode("ascii", "surrogateescape"))
    return head


def _header_end(raw: bytes) -> int | None:
    """Where the body starts: after the first empty line (CRLF, CR or LF endings, as the parser reads
    them); None when the header block does not end within _HEADER_SCAN bytes."""
    pos = 0
    while pos < _HEADER_SCAN:
        eol = _EOL.search(raw, pos)
        if eol is None:
            return None
        if eol.start() == pos:
            return eol.end()
        pos = eol.end()
    return None


def parts(root: MimePart) -> Iterator[MimePart]:
    """Every part of the tree, `root` first, in the order `walk()` gives them."""
    todo = [root]
    while todo:
        part = todo.pop()
        yield part
        children = part.get_payload() if part.is_multipart() else None
        if isinstance(children, list):
            todo.extend(reversed([c for c in children if isinstance(c, MimePart)]))


def part_bytes(part: MimePart) -> bytes:
    """A parsed part as the bytes the parser read: header fields and bodies as they came, boundaries
    written anew. Never raises: the standard generator re-encodes bodies in their declared charset,
    and a hostile charset makes that fail."""
    out: list[bytes] = []
    todo: list[MimePart | str] = [part]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            out.append(item.encode("utf-8", "surrogateescape"))
        else:
            todo.extend(reversed(_pieces(item)))
    return b"".join(out)


def _pieces(part: MimePart) -> list[MimePart | str]:
    """A part's text in order: header block, then the body or the children between their boundaries."""
    head = "".join(f"{name}: {value}\n" for name, value in part.raw_items())
    pieces: list[MimePart | str] = [head + "\n"] if head else []
    body = _body(part)
    if isinstance(body, str):
        pieces.append(body)
    elif isinstance(body, list) and part.get_content_maintype() == "message":
        pieces.extend(child for child in body if isinstance(child, MimePart))
    elif isinstance(body, list):
        boundary = _boundary(part)
        if part.preamble:
            pieces.append(part.preamble + "\n")
        for child in body:
            if isinstance(child, MimePart):
                pieces += [f"--{boundary}\n", child, "\n"]
        pieces.append(f"--{boundary}--\n")
        if part.epilogue:
            pieces.append(part.epilogue)
    return pieces


def body_bytes(part: MimePart) -> bytes:
    """A leaf's body as it came, still transfer-encoded; b"" for a multipart or message part."""
    body = _body(part)
    return body.encode("utf-8", "surrogateescape") if isinstance(body, str) else b""


def _body(part: MimePart) -> object:
    # compat32 keeps a body as the text it read (8-bit bytes as surrogate escapes); get_payload()
    # decodes that in the declared charset first, which a hostile charset makes raise
    return vars(part).get("_payload")


def _boundary(part: MimePart) -> str:
    try:
        return part.get_boundary() or "=_boundary"
    except (LookupError, ValueError, UnicodeError):  # an RFC 2231 boundary in a hostile charset
        return "=_boundary"
