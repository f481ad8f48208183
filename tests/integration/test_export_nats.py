"""The JetStream sink against the machine's NATS server (127.0.0.1:4222, JetStream on), read back by a real
pull consumer; authentication and TLS against a private nats-server the test starts on a free port.

Every test makes its own stream (unique name and subjects) and deletes it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import nats.js.errors
import pytest
import structlog
from nats.aio.client import Client
from nats.js.api import ConsumerConfig
from pydantic import SecretStr

from mailwarden.export.event import ExportEvent
from mailwarden.export.sink import Sink, SinkError
from mailwarden.export.sinks.nats import JetStreamSink
from mailwarden.ids import new_id
from tests.fakes.tls import make_pki
from tests.integration.conftest import unavailable
from tests.integration.harness import free_port, wait_for_port
from tests.integration.tcpproxy import TcpProxy

pytestmark = pytest.mark.integration

NATS_HOST, NATS_PORT = "127.0.0.1", int(os.environ.get("MAILWARDEN_TEST_NATS_PORT", "4222"))
NATS_URL = f"nats://{NATS_HOST}:{NATS_PORT}"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
CLASSES = (4009, 4011, 4012, 2004)


@dataclass(frozen=True)
class Stream:
    name: str
    subject: str  # the sink's subject, with {class_uid}
    filter: str  # what a consumer subscribes to


def events(count: int, *, start: int = 0) -> list[ExportEvent]:
    """Feed-ordered events of several classes, each body naming its own uid and position."""
    made = []
    for n in range(start, start + count):
        uid = new_id()
        class_uid = CLASSES[n % len(CLASSES)]
        body = {"class_uid": class_uid, "metadata": {"uid": uid, "version": "1.3.0"}, "n": n}
        made.append(ExportEvent(n, uid, class_uid, 1, datetime.now(UTC), body))
    return made


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
async def admin() -> AsyncIterator[Client]:
    if not reachable(NATS_HOST, NATS_PORT):
        unavailable(f"NATS is not reachable at {NATS_URL}")
    nc = await nats.connect(NATS_URL)
    yield nc
    await nc.close()


@pytest.fixture
async def stream(admin: Client) -> AsyncIterator[Stream]:
    """A unique stream name and subject tree; the stream is deleted at the end (whoever created it)."""
    tag = secrets.token_hex(6)
    made = Stream(f"mw_test_{tag}", f"mwtest.{tag}.{{class_uid}}", f"mwtest.{tag}.>")
    yield made
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await admin.jetstream().delete_stream(made.name)


async def consume(admin: Client, stream: Stream) -> list[tuple[str, str, dict[str, object]]]:
    """Everything in the stream through a pull consumer, acknowledged: (subject, Nats-Msg-Id, body)."""
    js = admin.jetstream()
    subscription = await js.pull_subscribe(stream.filter, durable=f"reader_{secrets.token_hex(4)}", stream=stream.name)
    received = []
    while True:
        try:
            batch = await subscription.fetch(200, timeout=1)
        except (nats.errors.TimeoutError, TimeoutError):
            break
        for msg in batch:
            await msg.ack()
            received.append((msg.subject, (msg.headers or {}).get("Nats-Msg-Id", ""), _json(msg.data)))
    await subscription.unsubscribe()
    return received


def _json(data: bytes) -> dict[str, object]:
    value: dict[str, object] = json.loads(data)
    return value


def sink_for(stream: Stream, *, servers: list[str] | None = None, **options: object) -> JetStreamSink:
    return JetStreamSink(
        "lake",
        servers or [NATS_URL],
        stream.subject,
        stream=stream.name,
        create_stream=True,
        max_age=timedelta(hours=1),
        **options,  # type: ignore[arg-type]
    )


async def test_a_consumer_receives_every_event_once_in_order_with_one_subject_per_class(
    admin: Client, stream: Stream
) -> None:
    sink = sink_for(stream)
    assert isinstance(sink, Sink)
    sent = events(300)
    try:
        for start in range(0, len(sent), 64):
            await sink.send(sent[start : start + 64])
    finally:
        await sink.close()

    received = await consume(admin, stream)
    assert [uid for _, uid, _ in received] == [event.uid for event in sent]
    assert [body for _, _, body in received] == [event.body for event in sent]
    tag = stream.name.removeprefix("mw_test_")
    assert [subject for subject, _, _ in received] == [f"mwtest.{tag}.{event.class_uid}" for event in sent]
    info = await admin.jetstream().stream_info(stream.name)
    assert info.config.max_age == 3600
    assert info.config.subjects == [f"mwtest.{tag}.*"]


async def test_a_batch_sent_again_is_dropped_by_the_duplicate_window(admin: Client, stream: Stream) -> None:
    first, second = events(40), events(40, start=40)
    sink = sink_for(stream)
    try:
        await sink.send(first)
        await sink.send(second)
        await sink.send(second)  # the exporter's retry after an ack it never saw
        await sink.send(first[10:30])
    finally:
        await sink.close()

    info = await admin.jetstream().stream_info(stream.name)
    assert info.state.messages == 80
    received = await consume(admin, stream)
    assert [uid for _, uid, _ in received] == [event.uid for event in first + second]


async def test_nats_going_away_fails_the_batch_and_the_sink_recovers_when_it_returns(
    admin: Client, stream: Stream
) -> None:
    proxy = TcpProxy(NATS_PORT)
    sink = sink_for(stream, servers=[f"nats://127.0.0.1:{proxy.port}"], timeout=2.0)
    before, during, after = events(50), events(50, start=50), events(50, start=100)
    try:
        await sink.send(before)
        proxy.cut()
        for _ in range(2):  # the dropped connection, then a refused one
            with pytest.raises(SinkError) as failure:
                await sink.send(during)
            assert "lake" in failure.value.reason
        proxy.restore()
        await sink.send(during)  # the exporter's retry of the same batch
        await sink.send(after)
    finally:
        await sink.close()
        proxy.close()

    received = await consume(admin, stream)
    uids = [uid for _, uid, _ in received]
    assert len(set(uids)) == len(uids) == 150
    assert uids == [event.uid for event in before + during + after]


async def test_a_consumer_killed_mid_run_loses_nothing_and_a_de_duplicating_reader_processes_each_once(
    admin: Client, stream: Stream
) -> None:
    """The consumer side of the guarantee (docs/events.md): a durable consumer whose reader dies with
    messages unacknowledged gets them again; remembering processed uids makes that exactly-once."""
    sent = events(60)
    sink = sink_for(stream)
    try:
        await sink.send(sent)
    finally:
        await sink.close()
    durable, config = f"reader_{secrets.token_hex(4)}", ConsumerConfig(ack_wait=1.0)
    processed: dict[str, int] = {}  # uid -> stream sequence, in the order processed

    doomed = await nats.connect(NATS_URL)
    reader = await doomed.jetstream().pull_subscribe(stream.filter, durable=durable, stream=stream.name, config=config)
    for n, msg in enumerate(await reader.fetch(30, timeout=2)):
        processed.setdefault((msg.headers or {})["Nats-Msg-Id"], msg.metadata.sequence.stream)
        if n < 20:
            await msg.ack()
    await doomed.close()  # killed: ten processed but never acknowledged

    redelivered = 0
    reader = await admin.jetstream().pull_subscribe(stream.filter, durable=durable, stream=stream.name, config=config)
    while True:
        try:
            batch = await reader.fetch(50, timeout=2)
        except (nats.errors.TimeoutError, TimeoutError):
            break
        for msg in batch:
            uid = (msg.headers or {})["Nats-Msg-Id"]
            redelivered += uid in processed
            processed.setdefault(uid, msg.metadata.sequence.stream)
            await msg.ack()
    await reader.unsubscribe()

    assert redelivered == 10
    assert sorted(processed, key=processed.__getitem__) == [event.uid for event in sent]


async def test_a_closed_port_is_a_sink_error_and_the_same_sink_works_once_pointed_back(
    admin: Client, stream: Stream
) -> None:
    closed = free_port()
    sink = sink_for(stream, servers=[f"nats://127.0.0.1:{closed}"], timeout=2.0)
    batch = events(5)
    with pytest.raises(SinkError) as failure:
        await sink.send(batch)
    assert f"127.0.0.1:{closed}" in failure.value.reason
    sink.servers = [NATS_URL]
    try:
        await sink.send(batch)
    finally:
        await sink.close()
    assert [uid for _, uid, _ in await consume(admin, stream)] == [event.uid for event in batch]


async def test_a_subject_no_stream_listens_on_is_a_sink_error(admin: Client, stream: Stream) -> None:
    sink = JetStreamSink("lake", [NATS_URL], stream.subject, timeout=2.0)  # nobody created the stream
    try:
        with pytest.raises(SinkError, match="no stream listens"):
            await sink.send(events(3))
    finally:
        await sink.close()


# --- a private nats-server: TLS from a private CA, and a token or a user and password ---

SECRET = "s3cret-" + secrets.token_hex(8)
USER = "exporter"


@dataclass(frozen=True)
class Secured:
    url: str
    ca_file: Path
    auth: str  # "token" or "password"

    def credentials(self, secret: str) -> dict[str, object]:
        if self.auth == "token":
            return {"token": SecretStr(secret)}
        return {"user": USER, "password": SecretStr(secret)}


@pytest.fixture(params=["token", "password"])
def secured_nats(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Secured]:
    """nats-server with JetStream, TLS (a test CA) and a token or a user's password on a free loopback
    port. Stopped at the end."""
    if not Path(NATS_SERVER).exists():
        unavailable("nats-server is not installed")
    pki = make_pki(tmp_path / "pki")
    port = free_port()
    args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")]
    args += ["--tls", "--tlscert", str(pki.cert_file), "--tlskey", str(pki.key_file)]
    args += ["--auth", SECRET] if request.param == "token" else ["--user", USER, "--pass", SECRET]
    log = (tmp_path / "nats.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        yield Secured(f"tls://127.0.0.1:{port}", pki.ca_file, request.param)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


async def test_tls_with_a_private_ca_and_authentication_and_the_secret_never_shows(
    secured_nats: Secured, stream: Stream
) -> None:
    url, ca_file = secured_nats.url, secured_nats.ca_file
    good = sink_for(stream, servers=[url], ca_file=ca_file, timeout=3.0, **secured_nats.credentials(SECRET))
    wrong = sink_for(stream, servers=[url], ca_file=ca_file, timeout=3.0, **secured_nats.credentials(SECRET + "x"))
    untrusted = sink_for(stream, servers=[url], timeout=3.0, **secured_nats.credentials(SECRET))
    batch = events(10)
    with structlog.testing.capture_logs() as logs:
        try:
            await good.send(batch)
            for refused in (wrong, untrusted):
                with pytest.raises(SinkError) as failure:
                    await refused.send(batch)
                assert SECRET not in failure.value.reason
        finally:
            for sink in (good, wrong, untrusted):
                await sink.close()
    assert any(entry.get("event") == "export_sink_failed" for entry in logs)
    assert SECRET not in repr(logs) + repr(good) + str(good) + repr(vars(good))

    tls = ssl.create_default_context(cafile=str(ca_file))
    if secured_nats.auth == "token":
        nc = await nats.connect(url, token=SECRET, tls=tls)
    else:
        nc = await nats.connect(url, user=USER, password=SECRET, tls=tls)
    try:
        received = await consume(nc, stream)
    finally:
        await nc.close()
    assert [uid for _, uid, _ in received] == [event.uid for event in batch]
