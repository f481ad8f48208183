"""Byte-level edits of a message's header block that leave every other byte as it was.

Re-serialising a message with the email package rewrites folding, encodings and line endings and
breaks DKIM signatures; these helpers only insert, replace or drop header fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from email.header import Header

_FIELD_START = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)


def split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header block, the empty line that ends it, body). The first empty line of any style ends it."""
    candidates = []
    for pattern, sep in ((b"\n\n", b"\n"), (b"\r\n\r\n", b"\r\n"), (b"\n\r\n", b"\r\n")):
        index = raw.find(pattern)
        if index != -1:
            head_end = index + (2 if pattern == b"\r\n\r\n" else 1)
            candidates.append((index, head_end, sep, index + len(pattern)))
    if not candidates:
        return raw, b"", b""
    _, head_end, sep, body_start = min(candidates)
    return raw[:head_end], sep, raw[body_start:]


def newline_of(raw: bytes) -> bytes:
    first = raw.find(b"\n")
    return b"\r\n" if first > 0 and raw[first - 1 : first] == b"\r" else b"\n"


def _fields(head: bytes) -> list[tuple[str, bytes]]:
    """The header block as (lower-cased name, raw field bytes including folded lines and newline)."""
    out: list[tuple[str, bytes]] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and out:
            name, value = out[-1]
            out[-1] = (name, value + line)
            continue
        match = _FIELD_START.match(line)
        name = match.group(1).decode("ascii").lower() if match else ""
        out.append((name, line))
    return out


def encode_field(name: str, value: str, newline: bytes) -> bytes:
    """One header field; non-ASCII values as RFC 2047 encoded words, folded at 78 columns."""
    if value.isascii():
        text = f"{name}: {value}"
        if len(text) <= 998:
            return text.encode("ascii") + newline
    encoded = Header(value, "utf-8" if not value.isascii() else "us-ascii", header_name=name).encode(
        linesep=newline.decode("ascii")
    )
    return f"{name}: {encoded}".encode("ascii") + newline


def add_headers(raw: bytes, fields: Sequence[tuple[str, str]]) -> bytes:
    """Prepend fields at the top of the header block (where trace and filter headers belong)."""
    if not fields:
        return raw
    newline = newline_of(raw)
    return b"".join(encode_field(n, v, newline) for n, v in fields) + raw


def remove_headers(raw: bytes, names: Iterable[str]) -> bytes:
    """Drop every occurrence of the named fields (case-insensitive)."""
    drop = {n.lower() for n in names}
    head, sep, body = split_head(raw)
    kept = [value for name, value in _fields(head) if name not in drop]
    return b"".join(kept) + sep + body


def remove_matching(raw: bytes, name: str, matches: Callable[[str], bool]) -> bytes:
    """Drop the occurrences of a field whose (unfolded) value `matches` says yes to."""
    wanted = name.lower()
    head, sep, body = split_head(raw)
    kept = []
    for field_name, field in _fields(head):
        if field_name == wanted:
            value = field.split(b":", 1)[1].decode("utf-8", "replace")
            if matches(" ".join(value.split())):
                continue
        kept.append(field)
    return b"".join(kept) + sep + body


def set_header(raw: bytes, name: str, value: str) -> bytes:
    """Replace every occurrence of a field by one with the given value (added at the top if absent)."""
    return add_headers(remove_headers(raw, [name]), [(name, value)])


def prepend_subject(raw: bytes, prefix: str) -> bytes:
    """Put `prefix` in front of the Subject, keeping the original's encoding; no double prefixing."""
    head, sep, body = split_head(raw)
    newline = newline_of(raw)
    fields = _fields(head)
    for index, (name, field) in enumerate(fields):
        if name != "subject":
            continue
        original = field.split(b":", 1)[1].strip()
        if original.startswith(prefix.strip().encode("utf-8", "replace")):
            return raw
        if prefix.isascii():
            new = b"Subject: " + prefix.encode("ascii") + original + newline
        else:
            encoded = Header(prefix, "utf-8").encode()
            new = b"Subject: " + encoded.encode("ascii") + b" " + original + newline
        fields[index] = ("subject", new)
        return b"".join(f for _, f in fields) + sep + body
    return add_headers(raw, [("Subject", prefix.strip())])
