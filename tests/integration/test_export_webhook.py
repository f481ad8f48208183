"""The webhook sink against a loopback HTTPS receiver (a private CA from tests/fakes/tls) that checks every
request the way a SIEM's receiver would: the HMAC signature over the raw body and the timestamp window."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socket import socket
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from mailwarden.export.event import ExportEvent
from mailwarden.export.sink import Sink, SinkError
from mailwarden.export.sinks.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSink,
    verify_signature,
)
from mailwarden.ids import new_id
from tests.fakes import tls
from tests.integration.harness import free_port

pytestmark = pytest.mark.integration

SECRET = "whsec-" + secrets.token_hex(16)
PATH_TOKEN = secrets.token_hex(12)  # some receivers put a token in the URL's path


@dataclass
class Request:
    timestamp: str
    signature: str
    content_type: str
    body: bytes


@dataclass
class Receiver:
    """Answers 2xx only to a request whose signature verifies inside the window; `fail_next` makes the
    next requests answer 500 as an overloaded receiver would. `accepted` holds the events it kept."""

    pki: tls.TestPki
    requests: list[Request] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: Request) -> int:
        with self.lock:
            self.requests.append(request)
            if not verify_signature(SECRET, request.timestamp, request.body, request.signature):
                self.refused.append(401)
                return 401
            if self.fail_next:
                self.fail_next -= 1
                self.refused.append(500)
                return 500
            self.accepted += json.loads(request.body)
            return 204


def serve(receiver: Receiver) -> tuple[ThreadingHTTPServer, str]:
    context = receiver.pki.server_context()

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[socket, Any]:
            sock, address = super().get_request()
            return context.wrap_socket(sock, server_side=True), address

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = Request(
                self.headers.get(TIMESTAMP_HEADER, ""),
                self.headers.get(SIGNATURE_HEADER, ""),
                self.headers.get("Content-Type", ""),
                body,
            )
            self.send_response(receiver.answer(request))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()
    return server, f"https://127.0.0.1:{server.server_address[1]}/hooks/{PATH_TOKEN}"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Receiver, str]]:
    made = Receiver(tls.make_pki(tmp_path / "pki"))
    server, url = serve(made)
    yield made, url
    server.shutdown()
    server.server_close()


def events(count: int) -> list[ExportEvent]:
    made = []
    for n in range(count):
        uid = new_id()
        body = {"class_uid": 4009, "metadata": {"uid": uid, "version": "1.3.0"}, "n": n, "subject": "Grüße"}
        made.append(ExportEvent(n, uid, 4009, 1, datetime.now(UTC), body))
    return made


def sink_to(receiver: Receiver, url: str, **options: Any) -> WebhookSink:
    return WebhookSink("siem", url, SecretStr(SECRET), ca_file=receiver.pki.ca_file, timeout=5.0, **options)


async def test_every_request_is_signed_and_the_receiver_gets_every_event_in_order(
    receiver: tuple[Receiver, str],
) -> None:
    server, url = receiver
    sink = sink_to(server, url, max_batch=10)
    assert isinstance(sink, Sink)
    sent = events(25)
    try:
        await sink.send(sent[:5])
        await sink.send(sent[5:])
    finally:
        await sink.close()

    assert [len(json.loads(r.body)) for r in server.requests] == [5, 10, 10]
    assert server.refused == []
    assert all(r.content_type == "application/json" for r in server.requests)
    assert all(r.signature.startswith("v1=") and abs(int(r.timestamp) - time.time()) < 60 for r in server.requests)
    assert server.accepted == [event.body for event in sent]


async def test_a_500_fails_the_batch_naming_the_status_and_the_retry_is_acknowledged(
    receiver: tuple[Receiver, str],
) -> None:
    server, url = receiver
    sink = sink_to(server, url)
    batch = events(7)
    server.fail_next = 1
    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(SinkError) as failure:
            await sink.send(batch)
        assert server.accepted == []
        assert "500" in failure.value.reason
        await sink.send(batch)
    finally:
        await sink.close()
    assert server.accepted == [event.body for event in batch]
    shown = failure.value.reason + repr(logs) + repr(sink) + str(sink)
    assert SECRET not in shown and PATH_TOKEN not in shown
    assert any(entry.get("event") == "export_sink_failed" for entry in logs)


async def test_a_stale_timestamp_is_refused_by_the_receiver(receiver: tuple[Receiver, str]) -> None:
    server, url = receiver
    late = sink_to(server, url, clock=lambda: time.time() - 600)  # a request captured ten minutes ago
    try:
        with pytest.raises(SinkError, match="401"):
            await late.send(events(2))
    finally:
        await late.close()
    assert server.accepted == []


async def test_a_tampered_body_or_timestamp_fails_verification(receiver: tuple[Receiver, str]) -> None:
    server, url = receiver
    sink = sink_to(server, url)
    try:
        await sink.send(events(3))
    finally:
        await sink.close()
    (request,) = server.requests
    sent_at = int(request.timestamp)

    assert verify_signature(SECRET, request.timestamp, request.body, request.signature, now=sent_at + 299)
    tampered = request.body.replace(b'"n":0', b'"n":9')
    assert tampered != request.body
    assert not verify_signature(SECRET, request.timestamp, tampered, request.signature, now=sent_at)
    assert not verify_signature(SECRET, str(sent_at + 1), request.body, request.signature, now=sent_at)
    assert not verify_signature(SECRET + "x", request.timestamp, request.body, request.signature, now=sent_at)
    assert not verify_signature(SECRET, request.timestamp, request.body, request.signature, now=sent_at + 301)
    assert not verify_signature(SECRET, request.timestamp, request.body, request.signature, now=sent_at - 301)
    assert not verify_signature(SECRET, "yesterday", request.body, request.signature, now=sent_at)
    assert verify_signature(SECRET, request.timestamp, request.body, f"v1=00ff,{request.signature}", now=sent_at)
    assert not verify_signature(SECRET, request.timestamp, request.body, request.signature[3:], now=sent_at)


async def test_an_untrusted_certificate_or_a_closed_port_is_a_sink_error(receiver: tuple[Receiver, str]) -> None:
    server, url = receiver
    untrusted = WebhookSink("siem", url, SecretStr(SECRET), timeout=5.0)  # the system store only
    closed = WebhookSink("siem", f"https://127.0.0.1:{free_port()}/hooks", SecretStr(SECRET), timeout=5.0)
    for sink in (untrusted, closed):
        try:
            with pytest.raises(SinkError) as failure:
                await sink.send(events(1))
        finally:
            await sink.close()
        assert "siem" in failure.value.reason and SECRET not in failure.value.reason
    assert server.accepted == []
