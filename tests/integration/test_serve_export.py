"""The event feed through `mailwarden serve`, with real peers: NATS JetStream (the machine's, behind a proxy
the test cuts), rsyslog over TLS (RFC 5424 with the OCSF JSON, and CEF), a webhook receiver that verifies
every signature, a JSON-lines file. Every event of a run reaches every sink once after de-duplication by uid,
in feed order — through a NATS outage and a SIGKILL of the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import smtplib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nats
import pytest

from mailwarden.export.ocsf import render
from mailwarden.export.sinks.webhook import verify_signature
from mailwarden.store.outbox import Outbox
from tests.integration.harness import Mailwarden, eventually, free_port, organisation
from tests.integration.rsyslog import PrivateRsyslog, private_rsyslog
from tests.integration.tcpproxy import TcpProxy
from tests.services import unavailable

pytestmark = pytest.mark.integration
NATS_PORT = 4222
WEBHOOK_SECRET = "feed-webhook-secret-5f1e"


@dataclass
class Receiver:
    """A webhook receiver: keeps the events of every POST whose signature and timestamp verify."""

    events: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    server: ThreadingHTTPServer | None = None


def _receiver() -> Receiver:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = verify_signature(
                WEBHOOK_SECRET.encode(), self.headers.get("X-Mailwarden-Timestamp", ""), body,
                self.headers.get("X-Mailwarden-Signature", ""),
            )  # fmt: skip
            if ok:
                got.events.extend(json.loads(body))
            else:
                got.refused += 1
            self.send_response(204 if ok else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    got.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=got.server.serve_forever, daemon=True).start()
    return got


@dataclass
class Feed:
    mw: Mailwarden
    proxy: TcpProxy
    rsyslog: PrivateRsyslog
    webhook: Receiver
    stream: str
    subject: str
    jsonl: Path


@pytest.fixture
def feed(mw: Mailwarden, tmp_path: Path) -> Iterator[Feed]:
    tag = secrets.token_hex(5)
    stream, subject = f"mw_feed_{tag}", f"mwfeed.{tag}"
    try:
        asyncio.run(_stream(stream, subject, create=True))
    except Exception as exc:
        unavailable(f"NATS JetStream at 127.0.0.1:{NATS_PORT}: {exc}")
    proxy = TcpProxy(NATS_PORT)
    webhook = _receiver()
    assert webhook.server is not None
    with private_rsyslog() as rsyslog:
        mw.listeners = {"journal": free_port()}
        mw.extra_config = (
            "[export]\npoll_seconds = 0.2\nhousekeeping_seconds = 3600\n"  # nothing pruned: the test reads the outbox
            f'[[export.sinks]]\ntype = "nats"\nname = "lake"\nservers = ["nats://127.0.0.1:{proxy.port}"]\n'
            f'subject = "{subject}.{{class_uid}}"\nstream = "{stream}"\n'
            f'[[export.sinks]]\ntype = "syslog"\nname = "siem"\nhost = "127.0.0.1"\nport = {rsyslog.tls_port}\n'
            f'transport = "tls"\nformat = "json"\nca_file = "{rsyslog.pki.ca_file}"\n'
            f'[[export.sinks]]\ntype = "syslog"\nname = "siem-cef"\nhost = "127.0.0.1"\nport = {rsyslog.tls_port}\n'
            f'transport = "tls"\nformat = "cef"\nca_file = "{rsyslog.pki.ca_file}"\n'
            f'[[export.sinks]]\ntype = "webhook"\nname = "soar"\nurl = "http://127.0.0.1:{webhook.server.server_port}/"\n'
            f'secret = "{WEBHOOK_SECRET}"\n'
            f'[[export.sinks]]\ntype = "file"\nname = "shipper"\npath = "{tmp_path / "events.jsonl"}"\n'
        )
        mw.write_config()
        mw.import_organisation(organisation(monitor_only=True, domains=[{"name": "example.com"}]))
        mw.start()
        try:
            yield Feed(mw, proxy, rsyslog, webhook, stream, subject, tmp_path / "events.jsonl")
        finally:
            if mw.process is not None:
                mw.stop()
            proxy.close()
            webhook.server.shutdown()
            webhook.server.server_close()
            asyncio.run(_stream(stream, subject, create=False))


async def _stream(name: str, subject: str, *, create: bool) -> None:
    nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}", connect_timeout=3)
    try:
        js = nc.jetstream()
        if create:
            await js.add_stream(name=name, subjects=[f"{subject}.>"])
        else:
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
    finally:
        await nc.close()


async def _consume(stream: str, subject: str) -> list[dict[str, Any]]:
    nc = await nats.connect(f"nats://127.0.0.1:{NATS_PORT}")
    try:
        sub = await nc.jetstream().pull_subscribe(f"{subject}.>", durable=f"r{secrets.token_hex(4)}", stream=stream)
        got: list[dict[str, Any]] = []
        while True:
            try:
                batch = await sub.fetch(500, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):
                return got
            for msg in batch:
                await msg.ack()
                got.append(json.loads(msg.data))
    finally:
        await nc.close()


def journal(feed: Feed, n: int, tag: str) -> None:
    with smtplib.SMTP("127.0.0.1", feed.mw.listeners["journal"], timeout=30) as client:
        for i in range(n):
            msg = EmailMessage()
            msg["From"] = "partner@example.org"
            msg["To"] = "alice@example.com, bob@example.com"
            msg["Subject"] = f"{tag} {i} 四半期の報告"
            msg["Message-ID"] = f"<{tag}-{i}@example.org>"
            msg.set_content(f"See https://files.example.org/{tag}/{i}\n")
            client.sendmail("partner@example.org", [feed.mw.journal_address], msg.as_bytes(policy=SMTP))


def expected(feed: Feed) -> list[str]:
    """Every event the outbox holds, in feed order (the truth the sinks are compared with)."""
    rt = feed.mw.runtime()
    try:
        rows = Outbox(rt.db).after(0, limit=100_000)
    finally:
        rt.close()
    return [e.uid for r in rows for e in render(r.seq, r.uid, r.kind, r.at, r.payload)]


def once_in_order(uids: list[str]) -> list[str]:
    seen: set[str] = set()
    return [u for u in uids if not (u in seen or seen.add(u))]  # type: ignore[func-returns-value]


def file_uids(feed: Feed) -> list[str]:
    if not feed.jsonl.exists():
        return []
    return [json.loads(line)["metadata"]["uid"] for line in feed.jsonl.read_text().splitlines() if line]


def everywhere(feed: Feed, want: list[str]) -> None:
    """Every sink has every event once after de-duplication by uid, in feed order."""
    try:
        eventually(lambda: once_in_order(file_uids(feed)) == want, timeout=30)
    except AssertionError:
        got = once_in_order(file_uids(feed))
        missing = [u for u in want if u not in got]
        extra = [u for u in got if u not in want]
        raise AssertionError(
            f"file: {len(got)} of {len(want)}; missing {missing[:5]}; extra {extra[:5]}; {feed.mw.log()[-3000:]}"
        ) from None
    eventually(lambda: once_in_order([e["metadata"]["uid"] for e in feed.webhook.events]) == want, timeout=30)
    lake = once_in_order([e["metadata"]["uid"] for e in asyncio.run(_consume(feed.stream, feed.subject))])
    assert lake == want
    records = feed.rsyslog.wait_for_records(2 * len(want), timeout=30)
    as_json = [json.loads(r["msg"])["metadata"]["uid"] for r in records if r["msg"].lstrip().startswith("{")]
    as_cef = [r["msg"] for r in records if r["msg"].startswith("CEF:0|")]
    assert once_in_order(as_json) == want
    assert len(once_in_order(as_cef)) == len(want) and all(
        f"externalId={u}" in c for u, c in zip(want, once_in_order(as_cef), strict=True)
    )
    assert feed.webhook.refused == 0


def test_every_event_reaches_every_sink_once_in_order_through_a_nats_outage_and_a_kill(feed: Feed) -> None:
    journal(feed, 4, "first")
    eventually(lambda: len(feed.mw.messages()) == 4, timeout=30)
    everywhere(feed, expected(feed))

    feed.proxy.blackhole()  # NATS goes away: the other sinks go on, mail goes on
    journal(feed, 3, "outage")
    eventually(lambda: len(feed.mw.messages()) == 7, timeout=30)
    eventually(lambda: len(file_uids(feed)) == len(expected(feed)), timeout=30)
    feed.proxy.fill()

    journal(feed, 5, "killed")
    feed.mw.kill()  # SIGKILL mid-run: the outbox resumes where the acknowledgements stopped
    feed.mw.start()
    eventually(lambda: len(feed.mw.messages()) == 12, timeout=60)
    everywhere(feed, expected(feed))
