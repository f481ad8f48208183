"""The scan entry point, fuzzed: the product's whole filter order over hostile bytes never has a stage fail.

A stage that raises makes the verdict `scan_error`, and with `scan_error_action = deliver` that lets a
message through unscanned; so here an error of any stage is a failure, whatever the input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailwarden.model import Category, Direction, Domain, Envelope, Message, Organisation, Policy, Verdict
from mailwarden.service.config import load_config
from mailwarden.service.runtime import Runtime
from tests import hostile_mail
from tests.dnsserver import DnsServer
from tests.hostile_mail import FOUND_BY_FUZZING

ORG = Organisation("acme", (Domain("example.com"),))
ENVELOPE = Envelope(mail_from="partner@example.org", rcpt_to=("alice@example.com",), client_ip="198.51.100.7")
DEEP = b"From: a@example.org\r\nSubject: deep\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 1000 + b"\r\nhi\r\n"

Scan = Callable[[bytes, Direction], Verdict]


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    """The default inbound and outbound filter order, offline but for a DNS server on loopback."""
    dns = DnsServer().start()
    root: Path = tmp_path_factory.mktemp("scan")
    config = root / "mailwarden.toml"
    config.write_text(
        f'organisation = "acme"\n[paths]\ndata_dir = "var"\n'
        f'[dns]\nnameservers = ["127.0.0.1"]\nport = {dns.port}\ntimeout = 1.0\n'
    )
    rt = Runtime(load_config(config, environ={}))
    rt.db.migrate()
    loop = asyncio.new_event_loop()
    pipeline = rt.pipeline

    def run(raw: bytes, direction: Direction) -> Verdict:
        work = pipeline.scan(Message(raw), ENVELOPE, Policy(), organisation=ORG, direction=direction)
        return loop.run_until_complete(work)

    try:
        yield run
    finally:
        loop.run_until_complete(pipeline.close())
        loop.close()
        rt.close()
        dns.stop()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(raw=FOUND_BY_FUZZING[0])
@example(raw=FOUND_BY_FUZZING[1])
@example(raw=FOUND_BY_FUZZING[2])
@example(raw=FOUND_BY_FUZZING[3])
@example(raw=DEEP)
@given(raw=st.one_of(hostile_mail.messages(), st.binary(max_size=600)))
def test_no_input_makes_a_stage_fail(scan: Scan, raw: bytes) -> None:
    for direction in (Direction.INBOUND, Direction.OUTBOUND):
        verdict = scan(raw, direction)
        assert verdict.scan_errors == (), verdict.scan_errors


@pytest.mark.parametrize("raw", [*FOUND_BY_FUZZING, DEEP], ids=["lookup", "encode", "decode", "nul", "deep"])
def test_what_fuzzing_found_is_malware_not_a_scan_error(scan: Scan, raw: bytes) -> None:
    assert scan(raw, Direction.INBOUND).category is Category.MALWARE
