"""Transport rules' changes to a message that is delivered: headers, recipients, subject, disclaimer.

Pure: bytes in, bytes and notes out. Header changes touch only the header block. A disclaimer changes
the body, which breaks a DKIM signature over it: that is noted for the trace. A message that is signed
or encrypted end to end (S/MIME, PGP) gets no disclaimer, because appending one would break it.
"""

from __future__ import annotations

import email
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message as MimePart
from email.policy import compat32

from mailwarden.mail import rewrite
from mailwarden.model.message import content_charset
from mailwarden.model.verdict import Modification, ModificationKind

_SEALED = frozenset({"multipart/signed", "multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime"})


@dataclass
class Modified:
    raw: bytes
    recipients: list[tuple[str, str]] = field(default_factory=list)  # added recipients: (address, To/Cc/Bcc)
    pool: str | None = None
    notes: list[str] = field(default_factory=list)


def apply_modifications(raw: bytes, mods: Sequence[Modification]) -> Modified:
    """Apply every content change in order; incident reports are sent by the caller."""
    out = Modified(raw)
    for mod in mods:
        match mod.kind:
            case ModificationKind.REMOVE_HEADER:
                out.raw = rewrite.remove_headers(out.raw, [mod.name])
                out.notes.append(f"rule {mod.rule!r}: header {mod.name} removed")
            case ModificationKind.SET_HEADER:
                out.raw = rewrite.set_header(out.raw, mod.name, mod.value)
                out.notes.append(f"rule {mod.rule!r}: header {mod.name} set")
            case ModificationKind.ADD_HEADER:
                out.raw = rewrite.add_headers(out.raw, [(mod.name, mod.value)])
                out.notes.append(f"rule {mod.rule!r}: header {mod.name} added")
            case ModificationKind.ADD_RECIPIENT:
                if mod.name in ("To", "Cc"):
                    out.raw = _add_address(out.raw, mod.name, mod.value)
                out.recipients.append((mod.value, mod.name))
                out.notes.append(f"rule {mod.rule!r}: {mod.value} added as {mod.name} recipient")
            case ModificationKind.PREPEND_SUBJECT:
                out.raw = rewrite.prepend_subject(out.raw, mod.value)
                out.notes.append(f"rule {mod.rule!r}: subject prefixed with {mod.value.strip()!r}")
            case ModificationKind.DISCLAIMER:
                out.raw, note = append_disclaimer(out.raw, mod.value, mod.html)
                out.notes.append(f"rule {mod.rule!r}: {note}")
            case ModificationKind.DELIVERY_POOL:
                out.pool = mod.value
                out.notes.append(f"rule {mod.rule!r}: leaves through delivery pool {mod.value!r}")
            case ModificationKind.INCIDENT_REPORT:
                pass
    first: dict[str, str] = {}
    for address, header in out.recipients:
        first.setdefault(address, header)  # an address added twice keeps the field it was first added in
    out.recipients = list(first.items())
    return out


def _add_address(raw: bytes, name: str, address: str) -> bytes:
    msg = email.message_from_bytes(rewrite.split_head(raw)[0] + b"\r\n\r\n", policy=compat32)
    values = [str(v) for v in msg.get_all(name, [])]
    joined = ", ".join(" ".join(v.split()) for v in values if v.strip())
    return rewrite.set_header(raw, name, f"{joined}, {address}" if joined else address)


def append_disclaimer(raw: bytes, text: str, html_text: str = "") -> tuple[bytes, str]:
    """The message with the disclaimer at the end of every text and HTML body part, and a trace note."""
    msg = email.message_from_bytes(raw, policy=compat32)
    if msg.get_content_type() in _SEALED or any(p.get_content_type() in _SEALED for p in msg.walk()):
        return raw, "disclaimer not appended: the message is signed or encrypted end to end"
    nl = rewrite.newline_of(raw).decode("ascii")
    changed = 0
    for part in msg.walk():
        if part.is_multipart() or _is_attachment(part):
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            changed += _append(part, nl + nl + nl.join(text.splitlines()) + nl)
        elif ctype == "text/html":
            changed += _append(part, html_text or "<p>" + html.escape(text).replace("\n", "<br>") + "</p>", html=True)
    if not changed:
        return raw, "disclaimer not appended: no text or HTML body"
    head, sep, _ = rewrite.split_head(raw)
    policy = compat32.clone(linesep=rewrite.newline_of(raw).decode("ascii"))
    if msg.is_multipart():
        # only the body changed: the header block stays byte for byte
        result = head + sep + rewrite.split_head(msg.as_bytes(policy=policy))[2]
    else:
        # the one part is the message: its Content-Transfer-Encoding and charset changed with it
        result = msg.as_bytes(policy=policy)
    note = f"disclaimer appended to {changed} body part(s)"
    if b"dkim-signature:" in head.lower():
        note += "; this breaks the sender's DKIM signature over the body"
    return result, note


def _append(part: MimePart, addition: str, *, html: bool = False) -> int:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return 0
    charset = content_charset(part) or "utf-8"
    try:
        body = payload.decode(charset)
    except (LookupError, UnicodeDecodeError, ValueError):  # ValueError: a NUL in the charset name
        return 0
    if html:
        lowered = body.lower()
        at = lowered.rfind("</body>")
        body = body[:at] + addition + body[at:] if at >= 0 else body + addition
    else:
        body = body + addition
    del part["Content-Transfer-Encoding"]
    if body.isascii():
        part.set_payload(body)
        part.set_param("charset", "us-ascii")
        part["Content-Transfer-Encoding"] = "7bit"
    else:
        part.set_payload(body, "utf-8")  # sets charset and base64 transfer encoding
    return 1


def _is_attachment(part: MimePart) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";", 1)[0].strip().lower()
    return disposition == "attachment" or part.get_filename() is not None
