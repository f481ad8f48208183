"""The Gmail API's batch format: many API calls in one `multipart/mixed` body of `application/http` parts,
and the answers in one `multipart/mixed` reply. Pure functions, no I/O, so they are tested without a server.

Each part carries its own `Authorization` header: with domain-wide delegation every mailbox has its own
access token, and a header in a part overrides the outer request's. Parts are paired with answers by
`Content-ID` (`<item-N>` out, `<response-item-N>` back), never by position: Google may answer in any order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.encoders import encode_noop
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from typing import Any

# Google accepts at most 100 calls in one batch and advises against more than 50 (rate limits).
MAX_BATCH = 100
# The compat32 policy with CRLF line ends: ten times faster than the modern policies on a 50-part body,
# and the parts are opaque bytes (no header in them needs the modern parsing).
WIRE = compat32.clone(linesep="\r\n", max_line_length=0)


@dataclass(frozen=True)
class ApiCall:
    """One Gmail API call on behalf of one mailbox; `path` starts at /gmail/v1 and includes the query."""

    mailbox: str
    method: str
    path: str
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ApiReply:
    """The answer to one call: status, headers with lower-case names, and the decoded JSON (or None)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


class BatchFormatError(ValueError):
    """The batch reply could not be read (not multipart, a part without its answer)."""


def _http_request(call: ApiCall, token: str) -> bytes:
    lines = [f"{call.method} {call.path} HTTP/1.1", f"Authorization: Bearer {token}"]
    payload = b""
    if call.body is not None:
        payload = json.dumps(call.body).encode()
        lines.append("Content-Type: application/json")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def encode_batch(calls: Sequence[tuple[ApiCall, str]]) -> tuple[bytes, str]:
    """The body and Content-Type of one batch request for `(call, access token)` pairs; part N has
    Content-ID `<item-N>`."""
    if not 0 < len(calls) <= MAX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH} calls, not {len(calls)}")
    root = MIMEMultipart("mixed", policy=WIRE)
    for n, (call, token) in enumerate(calls):
        part = MIMEApplication(_http_request(call, token), "http", _encoder=encode_noop, policy=WIRE)
        del part["MIME-Version"]
        part["Content-Transfer-Encoding"] = "binary"
        part["Content-ID"] = f"<item-{n}>"
        root.attach(part)
    raw = root.as_bytes(policy=WIRE)
    _, _, body = raw.partition(b"\r\n\r\n")
    return body, str(root["Content-Type"])


def _decode_http_response(raw: bytes) -> ApiReply:
    head, sep, payload = raw.partition(b"\r\n\r\n")
    if not sep:
        head, _, payload = raw.partition(b"\n\n")
    status_line, _, header_block = head.partition(b"\n")
    words = status_line.split()
    if len(words) < 2 or not words[0].startswith(b"HTTP/") or not words[1].isdigit():
        raise BatchFormatError("a batch part without an HTTP status line")
    headers = BytesHeaderParser(policy=WIRE).parsebytes(header_block.lstrip(b"\r\n") + b"\r\n")
    text = payload.strip()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = text.decode("utf-8", "replace")
    return ApiReply(int(words[1]), {k.lower(): str(v) for k, v in headers.items()}, body)


def decode_batch(body: bytes, content_type: str, count: int) -> list[ApiReply]:
    """The `count` answers of a batch reply, in the order of the calls that `encode_batch` numbered."""
    message = BytesParser(policy=WIRE).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    parts = message.get_payload() if message.is_multipart() else None
    if not isinstance(parts, list):
        raise BatchFormatError(f"a batch reply of type {message.get_content_type()}, not multipart/mixed")
    replies: dict[int, ApiReply] = {}
    for part in parts:
        if not isinstance(part, Message):
            raise BatchFormatError("a batch reply with a part that is not a message")
        content_id = str(part.get("Content-ID", "")).strip().strip("<>")
        number = content_id.rpartition("item-")[2]
        raw = part.get_payload(decode=True)
        if not number.isdigit() or not isinstance(raw, bytes):
            raise BatchFormatError(f"a batch part with Content-ID {content_id!r}")
        replies[int(number)] = _decode_http_response(raw)
    missing = [n for n in range(count) if n not in replies]
    if missing:
        raise BatchFormatError(f"no answer for {len(missing)} of {count} calls in the batch")
    return [replies[n] for n in range(count)]
