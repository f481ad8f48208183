"""The processor behind the spool: retries, giving up, and one message never holding up another."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from mailwarden import metrics
from mailwarden.ingest.spool import Spool, SpoolEntry
from mailwarden.model import Direction, Envelope
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.quarantine import NewEntry, Reason
from mailwarden.model.trace import EventType
from mailwarden.pipeline.engine import Pipeline
from mailwarden.quarantine import Quarantine
from mailwarden.service import processor as processing
from mailwarden.service.config import load_config
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.processor import Processor
from mailwarden.service.runtime import Runtime
from mailwarden.store.quarantine import QuarantineQuery
from tests.unit.deliver.helpers import eventually


async def test_a_message_whose_processing_failed_is_tried_again_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "mailwarden.toml"
    config.write_text('organisation = "acme"\n[paths]\ndata_dir = "var"\n[processing]\nscan_processes = 0\n')
    rt = Runtime(load_config(config, environ={}))
    rt.db.migrate()
    rt.__dict__["pipeline"] = Pipeline({Direction.INBOUND: [], Direction.OUTBOUND: []})
    monkeypatch.setattr(processing, "RETRY_DELAY_SECONDS", 0.05)
    with Spool(tmp_path / "spool", fsync=False) as spool:
        processor = Processor(rt, spool, OrgDirectory(rt.policies), roles={"journal": "journal"})
        calls: list[str] = []
        real = processor.process

        async def flaky(item: SpoolEntry) -> Any:
            calls.append(item.id)
            if len(calls) == 1:
                raise OSError("database is locked")  # a passing trouble
            return await real(item)

        monkeypatch.setattr(processor, "process", flaky)
        await processor.start()
        try:
            envelope = Envelope(mail_from="partner@example.org", rcpt_to=("journal@mw.test",))
            raw = b"From: partner@example.org\r\nTo: alice@example.com\r\nSubject: retry\r\n\r\nhello\r\n"
            committed = await spool.put_async("journal", envelope, raw)
            # recorded on the second attempt; the spool entry is removed only after the history write
            await eventually(lambda: rt.history.exists(committed.id) and spool.backlog == 0, within=20)
            assert calls == [committed.id, committed.id]
        finally:
            await processor.stop(drain_timeout=5)
            rt.close()


def _runtime(tmp_path: Path) -> Runtime:
    config = tmp_path / "mailwarden.toml"
    config.write_text(
        'organisation = "acme"\n[paths]\ndata_dir = "var"\n'
        "[processing]\nscan_processes = 0\nbatch_delay_ms = 50\n"
        '[delivery]\nhostname = "mw.example.com"\n'
    )
    rt = Runtime(load_config(config, environ={}))
    rt.db.migrate()
    rt.__dict__["pipeline"] = Pipeline({Direction.INBOUND: [], Direction.OUTBOUND: []})
    rt.policies.import_document(
        parse_organisation_document(
            {
                "name": "acme",
                "monitor_only": False,
                "domains": [{"name": "example.com", "mode": "gateway", "next_hop": "10.0.0.25"}],
            }
        )
    )
    return rt


async def test_a_message_that_always_fails_is_given_up_on_recorded_with_the_error_and_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = _runtime(tmp_path)
    monkeypatch.setattr(processing, "RETRY_DELAY_SECONDS", 0.01)
    given_up_before = _sample("mailwarden_processing_given_up_total")
    with Spool(tmp_path / "spool", fsync=False) as spool:
        processor = Processor(rt, spool, OrgDirectory(rt.policies, refresh_seconds=0), roles={"mx": "inbound"})

        async def broken(item: SpoolEntry) -> Any:
            raise RecursionError("maximum recursion depth exceeded")

        monkeypatch.setattr(processor, "process", broken)
        await processor.start()
        try:
            envelope = Envelope(mail_from="partner@example.org", rcpt_to=("alice@example.com",))
            raw = b"From: partner@example.org\r\nTo: alice@example.com\r\nSubject: poison\r\n\r\nhello\r\n"
            with capture_logs() as logs:
                committed = await spool.put_async("mx", envelope, raw)
                await eventually(lambda: rt.history.exists(committed.id) and spool.backlog == 0)
        finally:
            await processor.stop(drain_timeout=5)
        detail = rt.history.get(committed.id)
        assert (detail.summary.category.value, detail.summary.action.value) == ("scan_error", "quarantine")
        assert detail.summary.subject == "poison" and detail.summary.size == len(raw)
        scan = next(e.detail for e in detail.events if e.type is EventType.SCAN)
        assert "processing failed 3 times: RecursionError: maximum recursion depth exceeded" in scan
        held = Quarantine(rt.db, rt.blobs, rt.history).list(QuarantineQuery(message_id=committed.id)).items
        assert [e.recipient for e in held] == ["alice@example.com"]  # held, releasable by an admin
        assert rt.blobs.get(held[0].blob_key or "") == raw
        # logged once per attempt, not in a loop
        names = [e["event"] for e in logs]
        assert names.count("processing_retry_scheduled") == 3 and names.count("processing_given_up") == 1
        assert _sample("mailwarden_processing_given_up_total") == given_up_before + 1
        rt.close()


async def test_an_outcome_that_cannot_be_written_holds_up_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = _runtime(tmp_path)
    monkeypatch.setattr(processing, "RETRY_DELAY_SECONDS", 60.0)  # the failing one waits; the others must not
    with Spool(tmp_path / "spool", fsync=False) as spool:
        processor = Processor(rt, spool, OrgDirectory(rt.policies, refresh_seconds=0), roles={"journal": "journal"})
        real = processor.process

        async def one_bad(item: SpoolEntry) -> Any:
            outcome = await real(item)
            if b"Subject: bad" in item.raw:  # a quarantine entry for a message history does not have
                outcome.quarantine.append(_orphan_entry())
            return outcome

        monkeypatch.setattr(processor, "process", one_bad)
        await processor.start()
        try:
            envelope = Envelope(mail_from="partner@example.org", rcpt_to=("journal@mw.test",))
            entries = []
            for subject in ("good-1", "bad", "good-2"):
                raw = f"From: partner@example.org\r\nTo: alice@example.com\r\nSubject: {subject}\r\n\r\nx\r\n".encode()
                entries.append(await spool.put_async("journal", envelope, raw))
            good = [entries[0].id, entries[2].id]
            await eventually(lambda: all(rt.history.exists(i) for i in good) and spool.backlog == 1)
            assert not rt.history.exists(entries[1].id)  # waiting for its next try, in the spool
        finally:
            await processor.stop(drain_timeout=5)
        rt.close()


def _orphan_entry() -> NewEntry:
    now = datetime.now(UTC)
    return NewEntry(
        message_id="01ZZZZZZZZZZZZZZZZZZZZZZZZ",
        organisation=None,
        recipient="alice@example.com",
        reason=Reason.MALWARE,
        sender="partner@example.org",
        subject="bad",
        received_at=now,
        expires_at=now,
        would_have=True,
        blob_key=None,
        sha256="0" * 64,
        size=1,
    )


def _sample(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0
