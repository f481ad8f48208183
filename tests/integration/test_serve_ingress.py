"""What `mailwarden serve` takes over SMTP and what it passes on: its Received field, loops, NUL bytes, memory.

Each test runs its own instance; the next hop is an aiosmtpd sink in this process.
"""

from __future__ import annotations

import re
import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwarden.mail.received import parse_received
from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation
from tests.integration.test_serve import simple

pytestmark = pytest.mark.integration

STAMP = rb"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000"


@pytest.fixture
def gateway(tmp_path: Path, dns_server: DnsServer, sink: Sink) -> Iterator[Mailwarden]:
    """An enforcing instance with one inbound listener relaying example.com to the sink."""
    mw = Mailwarden(tmp_path, dns_port=dns_server.port)
    mw.listeners = {"inbound": free_port()}
    mw.write_config()
    mw.import_organisation(
        organisation(
            monitor_only=False,
            domains=[{"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
        )
    )
    yield mw
    if mw.process is not None:
        mw.kill()


def smtp_settings(mw: Mailwarden, **keys: int) -> None:
    """Add keys to the instance's `[smtp]` table."""
    lines = "".join(f"{key} = {value}\n" for key, value in keys.items())
    text = mw.config_path.read_text()
    mw.config_path.write_text(text.replace("[smtp]\n", "[smtp]\n" + lines, 1))


def session(mw: Mailwarden) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", mw.listeners["inbound"], timeout=30, local_hostname="client.example.org")


def delivered(sink: Sink, subject: str) -> bytes:
    found = [raw for _, _, raw in sink.received if f"Subject: {subject}".encode() in raw]
    assert len(found) == 1
    return found[0]


def test_relayed_mail_carries_our_received_field(gateway: Mailwarden, sink: Sink, dns_server: DnsServer) -> None:
    dns_server.add("1.0.0.127.in-addr.arpa", "PTR", "relay.partner.example.")
    dns_server.add("relay.partner.example", "A", "127.0.0.1")
    gateway.start()
    raw = simple("trace me")
    with session(gateway) as client:
        client.sendmail("partner@example.org", ["alice@example.com"], raw)

    content = eventually(lambda: delivered(sink, "trace me"), timeout=30)
    [detail] = gateway.messages(subject="trace me")
    assert content.endswith(raw)  # the message as sent, below our field and the verdict headers above it
    field = content[content.index(b"Received: ") : -len(raw)]
    assert re.fullmatch(
        rb"Received: from client\.example\.org \(relay\.partner\.example \[127\.0\.0\.1\]\)\r\n"
        rb"\tby mailwarden\.test \(mailwarden\) with ESMTP id " + detail.summary.id.encode() + rb"\r\n"
        rb"\tfor <alice@example\.com>; " + STAMP + rb"\r\n",
        field,
    )
    hop = parse_received(field.decode().removeprefix("Received:"))
    assert (hop.rdns, hop.ip, hop.by) == ("relay.partner.example", "127.0.0.1", "mailwarden.test")


def test_mail_that_has_looped_is_refused(gateway: Mailwarden, sink: Sink) -> None:
    gateway.start()
    hops = b"".join(
        b"Received: from mx%d.example.net (mx%d.example.net [192.0.2.%d]) by mx%d.example.net with ESMTP id %d;"
        b" Tue, 14 Oct 2025 09:15:01 +0000\r\n" % (n, n, n, n + 1, n)
        for n in range(50)
    )
    with session(gateway) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("partner@example.org", ["alice@example.com"], hops + simple("round and round"))
        client.sendmail("partner@example.org", ["alice@example.com"], simple("straight through"))

    assert (refused.value.smtp_code, refused.value.smtp_error) == (554, b"5.4.6 Too many hops: mail forwarding loop")
    eventually(lambda: delivered(sink, "straight through"), timeout=30)
    assert not any(b"round and round" in raw for _, _, raw in sink.received)
    assert [d.summary.subject for d in gateway.messages()] == ["straight through"]


def test_nul_bytes_in_data_are_refused_and_never_relayed(gateway: Mailwarden, sink: Sink) -> None:
    gateway.start()
    with session(gateway) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("partner@example.org", ["alice@example.com"], simple("hidden end") + b"\r\n\x00.\r\n")
        client.sendmail("partner@example.org", ["alice@example.com"], simple("clean"))

    assert (refused.value.smtp_code, refused.value.smtp_error) == (
        550,
        b"5.6.0 NUL character in message data not allowed",
    )
    eventually(lambda: delivered(sink, "clean"), timeout=30)
    assert not any(b"\0" in raw or b"hidden end" in raw for _, _, raw in sink.received)
    assert [d.summary.subject for d in gateway.messages()] == ["clean"]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_floods_of_empty_lines_neither_grow_the_server_nor_hold_up_other_mail(gateway: Mailwarden, sink: Sink) -> None:
    flood_clients, flood_bytes = 6, 3_000_000
    smtp_settings(gateway, max_message_size=2 * 1024 * 1024)
    gateway.start()
    assert gateway.process is not None
    pid = gateway.process.pid
    with session(gateway) as warm_up:  # the server's steady state: one message taken and relayed
        warm_up.sendmail("partner@example.org", ["alice@example.com"], simple("warm up"))
    eventually(lambda: delivered(sink, "warm up"), timeout=30)
    before = rss_kib(pid)

    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], rss_kib(pid))

    def flood(replies: list[bytes]) -> None:
        with socket.create_connection(("127.0.0.1", gateway.listeners["inbound"]), timeout=120) as sock:
            sock.sendall(
                b"EHLO flood.example.net\r\nMAIL FROM:<f@example.net>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n"
                + b"\r\n" * (flood_bytes // 2)
                + b".\r\nQUIT\r\n"
            )
            replies.append(b"".join(iter(lambda: sock.recv(65536), b"")))

    replies: list[bytes] = []
    threads = [threading.Thread(target=watch)] + [
        threading.Thread(target=flood, args=(replies,)) for _ in range(flood_clients)
    ]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    with session(gateway) as client:  # an ordinary sender meanwhile
        client.sendmail("partner@example.org", ["alice@example.com"], simple("meanwhile"))
    waited = time.monotonic() - began
    for thread in threads[1:]:
        thread.join(120)
    done.set()
    threads[0].join()

    # each session holds its message up to the 2 MiB limit at most; a line each once cost about 45 MB per session
    assert (peak[0] - before) / 1024 < 80, f"RSS grew from {before} KiB to {peak[0]} KiB"
    assert waited < 5
    assert len(replies) == flood_clients
    assert all(b"552 5.3.4 Message size exceeds fixed maximum message size" in reply for reply in replies)
    eventually(lambda: delivered(sink, "meanwhile"), timeout=30)
