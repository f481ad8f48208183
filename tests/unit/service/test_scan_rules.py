"""What a scanned message's outcome (`enforce/outcome.py`) does with transport rules: incident report
jobs, delivery pool routes, rule trace rows and rule-added recipients. No sockets: SQLite in a temporary
directory and a pipeline of the rules stage alone."""

from __future__ import annotations

import asyncio
import email
from collections.abc import Iterator
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from mailwarden.deliver import JobKind, Route
from mailwarden.ids import new_id
from mailwarden.ingest.spool import SpoolEntry
from mailwarden.model import Direction, Envelope
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.trace import EventType
from mailwarden.pipeline import Pipeline
from mailwarden.pipeline.rules.stage import TransportRules
from mailwarden.service.config import load_config
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.processor import Processor
from mailwarden.service.runtime import Runtime
from mailwarden.service.scan import Outcome
from tests.factories import build_message

ORG_HOP = Route(host="10.0.0.25", port=25)


@pytest.fixture
def processor(tmp_path: Path) -> Iterator[Processor]:
    path = tmp_path / "mailwarden.toml"
    path.write_text(
        'organisation = "acme"\n[paths]\ndata_dir = "var"\n'
        '[delivery]\nhostname = "mw.example.com"\npools = { default = "", secure = "[192.0.2.9]:2525" }\n'
    )
    rt = Runtime(load_config(path, environ={}))
    rt.db.migrate()
    rt.__dict__["pipeline"] = Pipeline({Direction.INBOUND: [TransportRules()], Direction.OUTBOUND: [TransportRules()]})
    directory = OrgDirectory(rt.policies, refresh_seconds=0)
    yield Processor(rt, None, directory, roles={"inbound": "inbound", "outbound": "outbound"})
    rt.close()


def use(proc: Processor, *rules: dict[str, Any]) -> None:
    document = {
        "name": "acme",
        "monitor_only": False,
        "domains": [{"name": "example.com", "mode": "gateway", "next_hop": "10.0.0.25"}],
        "policy": {"rules": list(rules)},
    }
    proc.rt.policies.import_document(parse_organisation_document(document))


def process(proc: Processor, listener: str, sender: str, rcpts: tuple[str, ...], **message: Any) -> Outcome:
    env = Envelope(sender, rcpts, client_ip="192.0.2.1")
    entry = SpoolEntry(new_id(), listener, env, build_message(**message), Path("/nonexistent"))
    return asyncio.run(proc.process(entry))


def test_incident_report_is_a_null_sender_job_to_the_admin_through_the_org_route(processor: Processor) -> None:
    use(
        processor,
        {
            "name": "Cards",
            "conditions": {"sensitive_info": [{"type": "credit_card"}]},
            "actions": {"quarantine": True, "incident_report_to": ["secops@example.com"]},
        },
    )
    out = process(processor, "inbound", "p@example.org", ("bob@example.com",), text="card 4111 1111 1111 1111")
    ((record, events),) = out.records
    (job,) = out.jobs  # quarantined: the report is the only job
    assert (job.mail_from, job.recipients, job.kind) == ("", ("secops@example.com",), JobKind.MESSAGE)
    assert job.route == ORG_HOP
    report = email.message_from_bytes(job.message, policy=default)
    assert report["Subject"] == "Incident report: Cards: Quarterly numbers"
    assert "4111 1111 1111 1111" not in job.message.decode()
    assert [e.detail for e in events if e.type is EventType.NOTIFY] == ["incident report to secops@example.com"]
    assert out.blobs[0][0] == f"quarantine-{record.id}.eml"


def test_outbound_rule_pool_routes_internet_recipients_only(processor: Processor) -> None:
    use(
        processor,
        {"name": "Secure", "direction": "outbound", "actions": {"delivery_pool": "secure"}},
        {
            "name": "Nowhere",
            "direction": "outbound",
            "conditions": {"subject_contains": ["x"]},
            "actions": {"delivery_pool": "unknown"},
        },
    )
    out = process(processor, "outbound", "alice@example.com", ("bob@partner.example", "carol@example.com"))
    routes = {job.recipients: job.route for job in out.jobs}
    # the organisation's own recipient still goes to its mail server
    assert routes == {("bob@partner.example",): Route(pool="secure"), ("carol@example.com",): ORG_HOP}
    other = process(processor, "outbound", "alice@example.com", ("bob@partner.example",), subject="x")
    # a pool that [delivery] pools does not have: the default pool (the message is still delivered)
    assert [job.route for job in other.jobs] == [Route(pool="default")]
    ((_, events),) = other.records
    notes = [e.detail for e in events if e.type is EventType.RULE]
    assert "delivery pool 'unknown' is not in [delivery] pools: the default pool is used" in notes


def test_rule_trace_rows_enforce_as_rule_audit_as_record(processor: Processor) -> None:
    use(
        processor,
        {"name": "Tag", "actions": {"add_header": [{"name": "X-Tag", "value": "1"}], "add_bcc": ["a@example.com"]}},
        {"name": "Trial", "mode": "audit", "actions": {"delete": True}},
    )
    out = process(processor, "inbound", "p@example.org", ("bob@example.com",))
    ((record, events),) = out.records
    rules = [(e.type, e.detail) for e in events if "rule" in e.detail]
    assert (EventType.RULE, "rule 'Tag': header X-Tag added") in rules
    assert any(t is EventType.RULE and d.startswith("transport rule Tag (enforce): ") for t, d in rules)
    assert any(t is EventType.RECORD and d.startswith("transport rule Trial (audit: would have): ") for t, d in rules)
    assert not any(e.type is EventType.DROP for e in events)
    assert [(r.address, r.field) for r in record.recipients] == [
        ("bob@example.com", "envelope"),
        ("a@example.com", "bcc"),
    ]
    (job,) = out.jobs
    assert job.recipients == ("bob@example.com", "a@example.com") and b"X-Tag: 1" in job.message
