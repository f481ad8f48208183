"""Our Received field on relayed mail, the client's confirmed name in it, and the hop count that stops loops."""

from __future__ import annotations

import asyncio
import base64
import re
import smtplib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailwarden.dns import DnsResolver
from mailwarden.ingest.config import SmtpConfig
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp import SessionInfo, SmtpServer
from mailwarden.ingest.spool import Spool, SpoolEntry
from mailwarden.ingest.trace import received_count, received_field
from mailwarden.mail.received import parse_received
from mailwarden.model import Envelope, TlsInfo
from tests.dnsserver import DnsServer

JOURNAL = {
    "name": "journal",
    "role": "journal",
    "port": 0,
    "journal_addresses": ["journal@example.com"],
    "allowed_networks": ["127.0.0.0/8"],
}
INBOUND = {"name": "mx", "role": "inbound", "port": 0}
StartServer = Callable[..., Awaitable[SmtpServer]]
BODY = b"From: partner@example.org\r\nSubject: hello\r\n\r\nHi.\r\n"
STAMP = r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000"


async def accept_all(listener: str, rcpt: str, session: SessionInfo) -> Reply | None:
    return None


@pytest.fixture
def spool(tmp_path: Path) -> Any:
    with Spool(tmp_path / "spool") as s:
        yield s


@pytest.fixture
async def start_server(spool: Spool) -> AsyncIterator[StartServer]:
    servers: list[SmtpServer] = []

    async def start(*listeners: dict[str, Any], resolver: DnsResolver | None = None, **smtp: Any) -> SmtpServer:
        config = SmtpConfig.model_validate({"hostname": "mx.test", "listeners": list(listeners), **smtp})
        server = SmtpServer(config, spool, accept_all, resolver=resolver)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(drain_timeout=1)


async def converse(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    try:
        return await asyncio.wait_for(reader.read(-1), 10)
    finally:
        writer.close()


def inbound(body: bytes, *rcpts: bytes) -> bytes:
    to = b"".join(b"RCPT TO:<" + rcpt + b">\r\n" for rcpt in rcpts or (b"bob@example.com",))
    head = b"EHLO client.example.org\r\nMAIL FROM:<partner@example.org>\r\n"
    return head + to + b"DATA\r\n" + body + b".\r\nQUIT\r\n"


def with_hops(count: int) -> bytes:
    hops = b"".join(
        b"Received: from relay%d.example.org (relay%d.example.org [192.0.2.%d])\r\n\tby relay%d.example.org with ESMTP;"
        b" Tue, 14 Oct 2025 09:15:01 +0000\r\n" % (n, n, n + 1, n + 1)
        for n in range(count)
    )
    return hops + BODY


def our_field(entry: SpoolEntry) -> str:
    field, _, rest = entry.raw.partition(b"\r\n" + BODY[:5])
    assert rest, "the message follows our field"
    return field.decode()


# ---- the Received field ------------------------------------------------------------------------
async def test_inbound_mail_gets_our_received_field_on_top(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(INBOUND)
    reply = await converse(server.bound_ports()["mx"], inbound(BODY))
    [entry] = list(spool.pending())
    assert f"250 2.0.0 OK: queued as {entry.id}".encode() in reply
    assert entry.raw.endswith(BODY)
    assert re.fullmatch(
        rf"Received: from client\.example\.org \(unknown \[127\.0\.0\.1\]\)\r\n"
        rf"\tby mx\.test \(mailwarden\) with ESMTP id {entry.id}\r\n"
        rf"\tfor <bob@example\.com>; {STAMP}",
        our_field(entry),
    )
    # the connection filter and every other reader of the chain see the client we saw
    hop = parse_received(our_field(entry).removeprefix("Received:"))
    assert (hop.helo, hop.ip, hop.by) == ("client.example.org", "127.0.0.1", "mx.test")


async def test_several_recipients_are_not_named_in_it(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(INBOUND)
    await converse(server.bound_ports()["mx"], inbound(BODY, b"bob@example.com", b"carol@example.com"))
    [entry] = list(spool.pending())
    assert "for <" not in our_field(entry)
    assert re.search(rf"with ESMTP id {entry.id}; {STAMP}$", our_field(entry))


async def test_tls_is_named_in_a_comment_and_in_the_protocol(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(INBOUND)
    port = server.bound_ports()["mx"]

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.starttls(context=ssl._create_unverified_context())
            client.ehlo("client.example.org")
            client.sendmail("partner@example.org", ["bob@example.com"], BODY)

    await asyncio.to_thread(send)
    [entry] = list(spool.pending())
    assert re.match(
        r"Received: from client\.example\.org \(unknown \[127\.0\.0\.1\]\)\r\n"
        r"\t\(using TLSv1\.[23] with cipher [A-Z0-9_-]+\)\r\n"
        r"\tby mx\.test \(mailwarden\) with ESMTPS id ",
        our_field(entry),
    )


async def test_journal_copies_are_kept_byte_for_byte(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(JOURNAL, max_hops=3)
    await converse(server.bound_ports()["journal"], inbound(with_hops(5), b"journal@example.com"))
    [entry] = list(spool.pending())  # never relayed: no field of ours, and no hop limit
    assert entry.raw == with_hops(5)


async def test_the_client_name_is_its_reverse_dns_name_when_that_name_points_back(
    start_server: StartServer, spool: Spool, dns_server: DnsServer, resolver: DnsResolver
) -> None:
    dns_server.add("1.0.0.127.in-addr.arpa", "PTR", "relay.partner.example.")
    dns_server.add("relay.partner.example", "A", "127.0.0.1")
    server = await start_server(INBOUND, resolver=resolver)
    await converse(server.bound_ports()["mx"], inbound(BODY))
    [entry] = list(spool.pending())
    assert our_field(entry).startswith("Received: from client.example.org (relay.partner.example [127.0.0.1])\r\n")


async def test_a_reverse_name_that_does_not_point_back_is_unknown(
    start_server: StartServer, spool: Spool, dns_server: DnsServer, resolver: DnsResolver
) -> None:
    dns_server.add("1.0.0.127.in-addr.arpa", "PTR", "mx.bank.example.")
    dns_server.add("mx.bank.example", "A", "192.0.2.1")
    server = await start_server(INBOUND, resolver=resolver)
    await converse(server.bound_ports()["mx"], inbound(BODY))
    [entry] = list(spool.pending())
    assert our_field(entry).startswith("Received: from client.example.org (unknown [127.0.0.1])\r\n")


async def test_a_dkim_signature_still_verifies_below_our_field(start_server: StartServer, spool: Spool) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    message = with_hops(1)
    signed = dkim.sign(message, b"s1", b"example.org", pem) + message
    server = await start_server(INBOUND)
    await converse(server.bound_ports()["mx"], inbound(signed))
    [entry] = list(spool.pending())
    assert entry.raw.startswith(b"Received: from client.example.org ") and entry.raw.endswith(signed)
    assert dkim.verify(entry.raw, dnsfunc=lambda name, timeout=5: record)


def test_what_a_client_chose_cannot_add_a_clause_or_a_line() -> None:
    envelope = Envelope(
        mail_from="a@example.org",
        rcpt_to=("bob@example.com",),
        client_ip="2001:db8::1",
        helo="evil (by x) with; for <y>",
        tls=TlsInfo(version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256"),
        received_at=datetime(2025, 10, 14, 9, 15, 1, tzinfo=UTC),
        authenticated_as="relay",
    )
    field = received_field(envelope, entry_id="01ID", by="mx.test", client_name=None, extended=True, utf8=False)
    assert field.decode() == (
        "Received: from evil??by?x??with??for??y? (unknown [IPv6:2001:db8::1])\r\n"
        "\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)\r\n"
        "\tby mx.test (mailwarden) with ESMTPSA id 01ID\r\n"
        "\tfor <bob@example.com>; Tue, 14 Oct 2025 09:15:01 +0000\r\n"
    )
    assert parse_received(field.decode().removeprefix("Received:")).ip == "2001:db8::1"


# ---- loops -----------------------------------------------------------------------------------
async def test_mail_that_passed_too_many_hops_is_refused(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(INBOUND, max_hops=3)
    port = server.bound_ports()["mx"]
    refused = await converse(port, inbound(with_hops(3)))
    assert b"554 5.4.6 Too many hops: mail forwarding loop" in refused
    assert list(spool.pending()) == []
    accepted = await converse(port, inbound(with_hops(2)))
    assert b"250 2.0.0 OK: queued as" in accepted
    [entry] = list(spool.pending())
    assert received_count(entry.raw, stop_at=100) == 3  # ours makes the third


def test_only_received_fields_of_the_header_count() -> None:
    header = b"Received: a\r\nreceived : b\r\nX-Received: c\r\nSubject: x\r\n received: folded\r\n"
    assert received_count(header + b"\r\nReceived: in the body\r\n", stop_at=50) == 2
    assert received_count(b"\r\nReceived: body only\r\n", stop_at=50) == 0
    assert received_count(b"Received: x\r\n" * 80, stop_at=50) == 50
