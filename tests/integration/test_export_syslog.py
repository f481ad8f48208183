"""The syslog sink against a real rsyslogd: RFC 5424 over TLS with octet counting (JSON and CEF), plain TCP
and UDP; every event once and in order, whatever its subject holds; failures raise SinkError and the next
send recovers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailwarden.export.event import ExportEvent
from mailwarden.export.sink import Sink, SinkError
from mailwarden.export.sinks.syslog import SyslogSink, Transport
from tests.export_events import detection_finding, email_activity, email_file_activity, email_url_activity
from tests.fakes.tls import make_pki
from tests.integration.rsyslog import PrivateRsyslog, free_udp_port, private_rsyslog

pytestmark = pytest.mark.timeout(60)

SUBJECTS = [
    "Quarterly numbers",
    "line one\nline two\r\nline three",  # a raw line break would end a newline-framed message
    "請求書の送付について（至急）",  # Japanese: multi-byte UTF-8, the octet count is not the character count
    '{"looks": "like json"} | pipes = equals \\ backslash',
    "12 <34>1 fake frame inside",  # looks like the start of another octet-counted frame
    "x" * 20_000,  # far past rsyslog's default 8k: the collector must be told (maxMessageSize)
]
FACILITY_LOCAL3 = 19
SEVERITY_WARNING = 4  # OCSF medium


@pytest.fixture
def rsyslog() -> Iterator[PrivateRsyslog]:
    with private_rsyslog() as instance:
        yield instance


def _events(start: int = 1) -> list[ExportEvent]:
    mail = [email_activity(start + i, subject=s, severity_id=3) for i, s in enumerate(SUBJECTS)]
    n = start + len(mail)
    return [*mail, email_file_activity(n), email_url_activity(n + 1), detection_finding(n + 2)]


def _sink(rsyslog: PrivateRsyslog, transport: Transport = "tls", **kwargs: Any) -> SyslogSink:
    port = {"tls": rsyslog.tls_port, "tcp": rsyslog.tcp_port, "udp": rsyslog.udp_port}[transport]
    defaults: dict[str, Any] = {"ca_file": rsyslog.pki.ca_file, "hostname": "mw1.example.com", "facility": "local3"}
    return SyslogSink("siem", "127.0.0.1", port, transport=transport, **(defaults | kwargs))


def _uids_in(records: list[dict[str, Any]]) -> list[str]:
    return [json.loads(r["msg"])["metadata"]["uid"] for r in records]


@pytest.mark.parametrize("transport", ["tls", "tcp", "udp"])
async def test_rsyslog_receives_every_json_event_once_in_order(rsyslog: PrivateRsyslog, transport: Transport) -> None:
    sink = _sink(rsyslog, transport, sd_id="mailwarden@32473")
    assert isinstance(sink, Sink)
    events = _events()
    try:
        await sink.send(events[:4])
        await sink.send(events[4:])
    finally:
        await sink.close()
    records = rsyslog.wait_for_records(len(events))
    assert _uids_in(records) == [e.uid for e in events], rsyslog.log()
    for record, event in zip(records, events, strict=True):
        assert json.loads(record["msg"]) == event.body  # the whole body, newlines and Japanese intact
        assert record["version"] == "1"
        assert record["hostname"] == "mw1.example.com"
        assert record["app_name"] == "mailwarden"
        assert record["msgid"] == event.body["class_name"].replace(" ", "")
        assert record["sd"] == f'[mailwarden@32473 uid="{event.uid}"]'
        assert record["timestamp"].startswith(event.time.strftime("%Y-%m-%dT%H:%M:%S.%f"))
    assert int(records[0]["pri"]) == FACILITY_LOCAL3 * 8 + SEVERITY_WARNING


async def test_rsyslog_receives_cef_lines_over_tls(rsyslog: PrivateRsyslog) -> None:
    sink = _sink(rsyslog, format="cef")
    events = _events()
    try:
        await sink.send(events)
    finally:
        await sink.close()
    records = rsyslog.wait_for_records(len(events))
    assert len(records) == len(events), rsyslog.log()
    lines = [r["msg"] for r in records]
    assert all(line.startswith("CEF:0|mailwarden|mailwarden|") for line in lines)
    assert [line.split("externalId=")[1].split(" ")[0] for line in lines] == [e.uid for e in events]
    assert "msg=line one\\nline two\\r\\nline three cs1=" in lines[1]
    assert "msg=請求書の送付について（至急） cs1=" in lines[2]
    assert 'msg={"looks": "like json"} | pipes \\= equals \\\\ backslash cs1=' in lines[3]
    assert "|400902|Message received|5|" in lines[0]
    assert "fileHash=275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f" in lines[-3]
    assert "request=https://login.example.net/reset?a\\=1&b\\=2" in lines[-2]
    assert "|200401|Phishing: credential harvesting link|9|" in lines[-1]


async def test_a_dead_port_fails_the_batch_and_the_next_send_recovers() -> None:
    with private_rsyslog(started=False) as rsyslog:
        sink = _sink(rsyslog, timeout=3.0)
        events = _events()
        try:
            with pytest.raises(SinkError) as failed:
                await sink.send(events[:3])
            assert f"127.0.0.1:{rsyslog.tls_port}" in failed.value.reason
            await asyncio.to_thread(rsyslog.start)
            await sink.send(events[:3])  # the exporter sends the failed batch again
            await sink.send(events[3:])
        finally:
            await sink.close()
        records = rsyslog.wait_for_records(len(events))
    assert _uids_in(records) == [e.uid for e in events]


async def test_a_collector_that_went_away_fails_the_batch_until_it_is_back(rsyslog: PrivateRsyslog) -> None:
    sink = _sink(rsyslog, timeout=3.0)
    events = _events()
    try:
        await sink.send(events[:2])
        await asyncio.to_thread(rsyslog.stop)  # the event loop runs meanwhile, as it does in the service
        with pytest.raises(SinkError):
            await sink.send(events[2:5])
        await asyncio.to_thread(rsyslog.start)
        await sink.send(events[2:5])
        await sink.send(events[5:])
    finally:
        await sink.close()
    assert _uids_in(rsyslog.wait_for_records(len(events))) == [e.uid for e in events]


async def test_a_collector_restart_between_batches_loses_nothing(rsyslog: PrivateRsyslog) -> None:
    sink = _sink(rsyslog)
    events = _events()
    try:
        await sink.send(events[:4])
        await asyncio.to_thread(rsyslog.restart)
        await sink.send(events[4:])  # the closed connection is noticed before anything is written to it
    finally:
        await sink.close()
    assert _uids_in(rsyslog.wait_for_records(len(events))) == [e.uid for e in events]


async def test_a_collector_whose_certificate_the_ca_file_does_not_vouch_for_gets_nothing(
    rsyslog: PrivateRsyslog, tmp_path: Path
) -> None:
    other_ca = make_pki(tmp_path / "other").ca_file
    sink = _sink(rsyslog, ca_file=other_ca, timeout=3.0)
    try:
        with pytest.raises(SinkError, match="CERTIFICATE_VERIFY_FAILED"):
            await sink.send(_events()[:1])
    finally:
        await sink.close()
    assert rsyslog.wait_for_records(1, timeout=0.5) == []


async def test_udp_to_a_closed_port_is_reported_when_the_network_says_so() -> None:
    sink = SyslogSink("legacy", "127.0.0.1", free_udp_port(), transport="udp")
    try:
        with pytest.raises(SinkError, match="ConnectionRefused"):
            await sink.send(_events()[:3])  # loopback answers with ICMP port unreachable at once
    finally:
        await sink.close()


REPO = Path(__file__).resolve().parents[2]
SEND_THEN_DIE = """\
import asyncio, os, signal, sys
from mailwarden.export.sinks.syslog import SyslogSink
from tests.export_events import email_activity

async def main() -> None:
    sink = SyslogSink("siem", "127.0.0.1", int(sys.argv[1]), ca_file=sys.argv[2])
    await sink.send([email_activity(n, subject="x" * 5000) for n in range(1, int(sys.argv[3]) + 1)])
    os.kill(os.getpid(), signal.SIGKILL)  # acknowledged: nothing of it may be lost now

asyncio.run(main())
"""


async def test_a_batch_acknowledged_just_before_a_sigkill_still_arrives_whole(rsyslog: PrivateRsyslog) -> None:
    count = 4000  # 20 MB: more than the kernel takes at once, so asyncio buffers some (drain() alone returns early)
    env = os.environ | {"PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SEND_THEN_DIE, str(rsyslog.tls_port), str(rsyslog.pki.ca_file), str(count), env=env
    )
    assert await asyncio.wait_for(process.wait(), 30) == -signal.SIGKILL
    records = rsyslog.wait_for_records(count)
    assert len(records) == count, rsyslog.log()
    assert [json.loads(r["msg"])["email"]["subject"] for r in records] == ["x" * 5000] * count


async def test_udp_sends_one_datagram_per_event_and_cuts_one_too_big_for_udp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(5)
        sink = SyslogSink("legacy", "127.0.0.1", collector.getsockname()[1], transport="udp")
        try:
            await sink.send([email_activity(1, subject="日本語" * 25_000), email_activity(2)])
        finally:
            await sink.close()
        first, second = collector.recv(70_000), collector.recv(70_000)
    assert len(first) <= 65_507 and first.startswith(b"<134>1 ")
    first.decode()  # cut at a character boundary, never inside one
    assert json.loads(second.partition(b" - ")[2])["metadata"]["uid"] == email_activity(2).uid
