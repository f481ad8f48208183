"""The trace header mailwarden puts on mail it relays (RFC 5321 §4.4), the hop count, the client's name.

Every MTA that relays a message prepends a `Received:` field; the number of them is how a mail loop
is noticed (RFC 5321 §6.3). mailwarden adds one to mail accepted on inbound and outbound listeners,
in the form Postfix uses, which the Received parsers of this and other products read:

    Received: from HELO (client-name [IP])
            (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)
            by OUR-HOST (mailwarden) with ESMTPS id SPOOL-ID
            for <rcpt>; Tue, 14 Oct 2025 09:15:01 +0000

`client-name` is the client's reverse-DNS name confirmed by a forward look-up, else `unknown`;
`for` is written only when there is one recipient (more would disclose Bcc recipients to each other).
"""

from __future__ import annotations

import ipaddress
import re
from email.utils import format_datetime

from mailwarden.dns import DnsError, Resolver
from mailwarden.model import Envelope

HEADER_SCAN = 1024 * 1024  # bytes of a message searched for Received fields: loops add them at the top
_RECEIVED_FIELD = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)
_NOT_IN_TOKEN = re.compile(r"[^A-Za-z0-9.:_\[\]-]")  # what a HELO name may keep in the header
_NAMES_TRIED = 3  # PTR names checked by a forward look-up


def received_field(
    envelope: Envelope, *, entry_id: str, by: str, client_name: str | None, extended: bool, utf8: bool
) -> bytes:
    """Our whole `Received:` field for a message accepted with `envelope`, folded, CRLF-terminated.

    `extended`: the client said EHLO; `utf8`: MAIL carried SMTPUTF8.
    """
    source = _token(envelope.helo or "") or "unknown"
    if envelope.client_ip is not None:
        source += f" ({client_name or 'unknown'} {_address_literal(envelope.client_ip)})"
    lines = [f"Received: from {source}"]
    if envelope.tls is not None:
        lines.append(f"(using {_token(envelope.tls.version)} with cipher {_token(envelope.tls.cipher)})")
    protocol = _protocol(extended, utf8, envelope.tls is not None, envelope.authenticated_as is not None)
    lines.append(f"by {by} (mailwarden) with {protocol} id {entry_id}")
    stamp = format_datetime(envelope.received_at)
    if len(envelope.rcpt_to) == 1:
        lines.append(f"for <{_address(envelope.rcpt_to[0])}>; {stamp}")
    else:
        lines[-1] += f"; {stamp}"
    return ("\r\n\t".join(lines) + "\r\n").encode("utf-8")


def _protocol(extended: bool, utf8: bool, tls: bool, authenticated: bool) -> str:
    """The `with` keyword of RFC 3848 / RFC 6531: SMTP, ESMTP or UTF8SMTP, then S for TLS, A for AUTH."""
    if not (utf8 or extended):
        return "SMTP"
    return ("UTF8SMTP" if utf8 else "ESMTP") + ("S" if tls else "") + ("A" if authenticated else "")


def received_count(message: bytes | bytearray, *, stop_at: int) -> int:
    """How many `Received:` fields the message's header carries (counting stops at `stop_at`)."""
    end = 0 if message.startswith(b"\r\n") else message.find(b"\r\n\r\n", 0, HEADER_SCAN)
    end = HEADER_SCAN if end < 0 else end
    count = 0
    for _ in _RECEIVED_FIELD.finditer(message, 0, end):
        count += 1
        if count >= stop_at:
            break
    return count


async def confirmed_name(resolver: Resolver, ip: str) -> str | None:
    """The client's reverse-DNS name when a forward look-up of it gives the address back; else None."""
    try:
        address = ipaddress.ip_address(ip)
        names = (await resolver.query(address.reverse_pointer, "PTR")).records
        for name in names[:_NAMES_TRIED]:
            host = name.rstrip(".").lower()
            forward = await resolver.query(host, "A" if address.version == 4 else "AAAA")
            if any(_same_address(record, address) for record in forward.records):
                return _token(host) or None
    except (DnsError, ValueError):
        return None
    return None


def _same_address(record: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(record) == address
    except ValueError:
        return False


def _address_literal(ip: str) -> str:
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


def _token(text: str) -> str:
    """`text` safe inside the field: what a client chose (its HELO) cannot add a clause or a line."""
    return _NOT_IN_TOKEN.sub("?", text[:255])


def _address(address: str) -> str:
    return "".join(ch for ch in address if ch.isprintable() and ch not in "<> \t")[:512]
