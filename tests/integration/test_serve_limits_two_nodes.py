"""The sending limit holds across two `mailwarden serve` nodes sharing one PostgreSQL and one Redis: two
messages through each node from one sender with a limit of three restricts that sender on both."""

from __future__ import annotations

import secrets
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.dnsserver import DnsServer
from tests.integration.conftest import database_beside
from tests.integration.harness import Mailwarden, Sink, eventually, free_port
from tests.services import unavailable

pytestmark = pytest.mark.integration
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def shared(postgres_url: str) -> Iterator[str]:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        unavailable(f"Redis is not reachable at {REDIS_URL}: {exc}")
    with database_beside(postgres_url, "two_nodes") as url:
        yield url


def node(root: Path, dns: DnsServer, db_url: str, sink: Sink) -> Mailwarden:
    root.mkdir()
    mw = Mailwarden(root, dns_port=dns.port)
    mw.listeners = {"outbound": free_port()}
    mw.extra_config = f'[store]\nurl = "{db_url}"\n[outbound]\nredis_url = "{REDIS_URL}"\n'
    mw.write_config(smart_host=f"127.0.0.1:{sink.port}")
    return mw


def send(mw: Mailwarden, sender: str, rcpt: str) -> int:
    with smtplib.SMTP("127.0.0.1", mw.listeners["outbound"], timeout=30) as client:
        client.ehlo("mail.example")
        code, _ = client.mail(sender)
        if code != 250:
            return code
        client.rcpt(rcpt)
        client.data(f"From: {sender}\r\nTo: {rcpt}\r\nSubject: hi\r\n\r\nhello\r\n".encode())
        return 250


def test_the_limit_holds_across_two_nodes(shared: str, sink: Sink, tmp_path: Path) -> None:
    domain = f"n{secrets.token_hex(4)}.example"
    sender = f"bob@{domain}"
    dns = DnsServer().start()
    nodes = [node(tmp_path / name, dns, shared, sink) for name in ("a", "b")]
    try:
        nodes[0].import_organisation({
            "name": f"org-{domain}", "monitor_only": False,
            "domains": [{"name": domain, "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
            "policy": {"outbound_spam": {"external_per_hour": 3, "action_at_limit": "block_user"}},
        })  # fmt: skip
        for mw in nodes:
            mw.start()
        assert [send(nodes[i % 2], sender, f"p{i}@else.example") for i in range(3)] == [250, 250, 250]
        eventually(lambda: len(nodes[0].messages()) == 3, timeout=30)
        assert send(nodes[1], sender, "p3@else.example") == 250  # the fourth, over the limit counted on both
        for mw in nodes:  # both refuse from now on
            eventually(lambda mw=mw: send(mw, sender, "p4@else.example") == 550, timeout=20)
        # released on one node: both take the sender's mail at once, and its counts in Redis start afresh,
        # so two more recipients do not restrict it again
        nodes[0].cli("sender", "release", f"org-{domain}", sender)
        assert [send(mw, sender, f"p{5 + i}@else.example") for i, mw in enumerate(nodes)] == [250, 250]
        for rcpt in ("p5@else.example", "p6@else.example"):
            eventually(lambda rcpt=rcpt: nodes[0].messages(recipient=rcpt), timeout=30)
        time.sleep(1)  # the guard restricts after the record; give it the moment it would take
        assert sender not in nodes[0].cli("sender", "list").stdout
    finally:
        for mw in nodes:
            if mw.process is not None:
                mw.stop()
        dns.stop()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"mailwarden:out:*{domain}*"):
            client.delete(key)
