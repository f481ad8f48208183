"""Messages scanned the way the server scans them (the real processor, the malware, rules and spam stages,
no sockets), and their history records shaped into outbox payloads as the lead's outbox writes them
(/work/briefs/export-common.md)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailwarden.ids import new_id
from mailwarden.ingest.spool import SpoolEntry
from mailwarden.model import Envelope
from mailwarden.model.envelope import domain_of
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.trace import EventRecord, MessageRecord
from mailwarden.service.config import load_config
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.processor import Processor
from mailwarden.service.runtime import Runtime

ENFORCED = "example.com"  # a gateway domain: verdicts are applied
WATCHED = "watch.example.com"  # a journaled domain: verdicts are only recorded (monitor mode)
CARD_RULE = {
    "name": "Cards",
    "conditions": {"sensitive_info": [{"type": "credit_card"}]},
    "actions": {"quarantine": True},
}


@contextlib.contextmanager
def processor_in(tmp: Path) -> Iterator[Processor]:
    """The processor over a fresh runtime in `tmp` (benches use it too)."""
    path = tmp / "mailwarden.toml"
    path.write_text(
        'organisation = "acme"\n[paths]\ndata_dir = "var"\n'
        '[delivery]\nhostname = "mw.example.com"\n'
        '[pipeline]\ninbound = ["malware", "rules", "spam"]\noutbound = ["malware", "rules", "spam"]\n'
    )
    rt = Runtime(load_config(path, environ={}))
    rt.db.migrate()
    document = {
        "name": "acme",
        "monitor_only": False,
        "domains": [
            {"name": ENFORCED, "mode": "gateway", "next_hop": "10.0.0.25"},
            {"name": WATCHED, "mode": "journal"},
        ],
        "policy": {"rules": [CARD_RULE]},
    }
    rt.policies.import_document(parse_organisation_document(document))
    try:
        yield Processor(
            rt, None, OrgDirectory(rt.policies, refresh_seconds=0), roles={"inbound": "inbound", "journal": "journal"}
        )
    finally:
        rt.close()


@pytest.fixture(scope="module")
def scanner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processor]:
    with processor_in(tmp_path_factory.mktemp("scan")) as processor:
        yield processor


def scan(
    processor: Processor, raw: bytes, *, to: str, sender: str = "partner@example.org", listener: str = "inbound"
) -> tuple[MessageRecord, list[EventRecord]]:
    """The history record and first timeline events of `raw` arriving on the inbound (or journal) listener."""
    entry = SpoolEntry(new_id(), listener, Envelope(sender, (to,), client_ip="192.0.2.1"), raw, Path("/nonexistent"))
    ((record, events),) = asyncio.run(processor.process(entry)).records
    return record, events


def message_payload(record: MessageRecord, events: list[EventRecord]) -> dict[str, Any]:
    """The outbox payload of kind "message" for a record, as export-common.md specifies it."""
    action = record.verdict.disposition.action.value
    return {
        "message": {
            "id": record.id,
            "organisation": record.organisation,
            "received_at": record.received_at.isoformat(),
            "direction": record.direction.value,
            "mode": record.mode.value,
            "source": record.source,
            "sender": record.sender,
            "sender_domain": domain_of(record.sender) or "",
            "from_address": record.from_address,
            "subject": record.subject,
            "internet_message_id": record.internet_message_id,
            "size": record.size,
            "sha256": record.sha256,
            "client_ip": record.client_ip,
            "category": record.verdict.category.value,
            "scl": record.verdict.scl,
            "bcl": record.verdict.bcl,
            "phish": record.verdict.phish.value,
            "action": action,
            "applied": record.applied,
            "verdict": record.verdict.as_dict(),
        },
        "recipients": [dataclasses.asdict(r) | {"status": r.status.value} for r in record.recipients],
        "events": [event_dict(e) for e in events],
        "artifacts": record.artifacts,
    }


def event_dict(event: EventRecord) -> dict[str, Any]:
    return {
        "at": (event.at or datetime.now(UTC)).isoformat(),
        "type": event.type.value,
        "recipient": event.recipient,
        "detail": event.detail,
        "smtp_reply": event.smtp_reply,
    }


def event_payload(record: MessageRecord, event: EventRecord) -> dict[str, Any]:
    """The outbox payload of kind "event": a timeline event added after the record."""
    return {
        "event": event_dict(event),
        "message": {
            "id": record.id,
            "organisation": record.organisation,
            "sender": record.sender,
            "subject": record.subject,
            "internet_message_id": record.internet_message_id,
            "direction": record.direction.value,
            "mode": record.mode.value,
        },
    }
