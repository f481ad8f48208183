"""A DMARC policy honoured through the real scan path: the runtime's default inbound pipeline (its
resolver on the loopback DNS server), the processor and the outcome of enforce and monitor mode."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailwarden.deliver import JobKind
from mailwarden.ids import new_id
from mailwarden.ingest.spool import SpoolEntry
from mailwarden.model import Action, Envelope
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.trace import EventType, MessageRecord
from mailwarden.service.config import load_config
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.processor import Processor
from mailwarden.service.runtime import Runtime
from mailwarden.service.scan import Outcome
from tests.dnsserver import DnsServer
from tests.factories import build_message


@pytest.fixture
def processor(tmp_path: Path, dns_server: DnsServer) -> Iterator[Processor]:
    # example.org sends from 192.0.2.0/24 and asks receivers to reject what fails DMARC
    dns_server.add("example.org", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    path = tmp_path / "mailwarden.toml"
    path.write_text(
        'organisation = "acme"\n[paths]\ndata_dir = "var"\n[delivery]\nhostname = "mw.example.com"\n'
        f'[dns]\nnameservers = ["127.0.0.1"]\nport = {dns_server.port}\ntimeout = 0.5\ncache_size = 0\n'
        "failure_ttl = 0\n"
    )
    rt = Runtime(load_config(path, environ={}))
    rt.db.migrate()
    directory = OrgDirectory(rt.policies, refresh_seconds=0)
    yield Processor(rt, None, directory, roles={"inbound": "inbound"})
    rt.close()


def use(proc: Processor, *, monitor_only: bool = False, **dmarc: Any) -> None:
    document = {
        "name": "acme",
        "monitor_only": monitor_only,
        "domains": [{"name": "example.com", "mode": "gateway", "next_hop": "10.0.0.25"}],
        "policy": {"dmarc": dmarc},
    }
    proc.rt.policies.import_document(parse_organisation_document(document))


def spoofed(proc: Processor) -> tuple[Outcome, MessageRecord, list[tuple[EventType, str]]]:
    """A message From example.org sent from an address its SPF does not list, unsigned."""
    env = Envelope("alice@example.org", ("bob@example.com",), client_ip="198.51.100.7")
    entry = SpoolEntry(new_id(), "inbound", env, build_message(), Path("/nonexistent"))
    out = asyncio.run(proc.process(entry))
    ((record, events),) = out.records
    return out, record, [(e.type, e.detail) for e in events]


def test_enforce_rejects_with_an_ndr_and_says_why(processor: Processor) -> None:
    use(processor)
    out, record, events = spoofed(processor)
    assert record.verdict.auth["dmarc"] == "fail"
    assert record.verdict.disposition.action is Action.REJECT and record.applied
    reason = "DMARC p=reject honoured: example.org failed DMARC"
    assert (EventType.REJECT, reason) in events
    (dsn,) = out.jobs
    assert dsn.kind is JobKind.DSN and dsn.recipients == ("alice@example.org",)
    assert b"5.7.26" in dsn.message


def test_monitor_mode_records_what_would_have_happened(processor: Processor) -> None:
    use(processor, monitor_only=True)
    out, record, events = spoofed(processor)
    assert not record.applied
    assert (EventType.RECORD, "would have: reject (DMARC p=reject honoured: example.org failed DMARC)") in events
    assert [job.kind for job in out.jobs] == [JobKind.MESSAGE]  # delivered unchanged


def test_honour_off_is_the_spam_verdict(processor: Processor) -> None:
    use(processor, honour_policy=False)
    out, record, _ = spoofed(processor)
    verdict = record.verdict
    assert verdict.category.value.endswith("spam") and verdict.disposition.action is Action.JUNK  # the policy's
    assert "DMARC" not in verdict.disposition.reason
    assert [job.kind for job in out.jobs] == [JobKind.MESSAGE]


def test_reject_action_quarantine(processor: Processor) -> None:
    use(processor, reject_action="quarantine")
    out, record, events = spoofed(processor)
    assert record.verdict.disposition.action is Action.QUARANTINE
    assert (EventType.QUARANTINE, "DMARC p=reject honoured: example.org failed DMARC") in events
    assert out.jobs == [] and out.quarantine


def test_policy_lookup_failure_is_no_reason_to_act(processor: Processor, dns_server: DnsServer) -> None:
    use(processor)
    dns_server.fail("_dmarc.example.org")
    _, record, _ = spoofed(processor)
    assert record.verdict.auth["dmarc"] == "temperror"
    assert record.verdict.disposition.action is Action.DELIVER
