"""The server's hand-off to scanning processes: what happens when one of them dies."""

from __future__ import annotations

from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailwarden import processing
from mailwarden.config import load_config
from mailwarden.directory import OrgDirectory
from mailwarden.ingest.spool import Spool, SpoolEntry
from mailwarden.model import Direction, Envelope
from mailwarden.pipeline.engine import Pipeline
from mailwarden.processing import Processor
from mailwarden.runtime import Runtime
from tests.unit.deliver.helpers import eventually


class DyingPool(Executor):
    """Stands in for the scanning processes: a batch holding `poison` kills its process."""

    def __init__(self, poison: str, calls: list[list[str]]) -> None:
        self.poison = poison
        self.calls = calls

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        batch: list[SpoolEntry] = args[0]
        self.calls.append([e.id for e in batch])
        future: Future[Any] = Future()
        if any(e.id == self.poison for e in batch):
            future.set_exception(BrokenProcessPool("a scanning process terminated abruptly"))
        else:
            future.set_result([f"scanned {e.id}" for e in batch])
        return future


def entry(entry_id: str) -> SpoolEntry:
    envelope = Envelope(mail_from="a@example.org", rcpt_to=("journal@example.com",), received_at=datetime.now(UTC))
    return SpoolEntry(entry_id, "journal", envelope, b"Subject: x\r\n\r\nx\r\n", Path("/nonexistent"))


async def test_a_message_that_kills_its_scanning_process_holds_up_no_other() -> None:
    calls: list[list[str]] = []
    restarts: list[int] = []
    processor = Processor.__new__(Processor)  # only the hand-off is exercised: no runtime needed

    def restart() -> None:
        restarts.append(1)
        processor._pool = DyingPool("b", calls)

    processor._pool = DyingPool("b", calls)
    processor._restart_pool = restart  # type: ignore[method-assign]
    results = await processor._scan_batch([entry("a"), entry("b"), entry("c")])
    # the batch died; each entry was tried alone: the other two were scanned, the poison one was not
    assert calls == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert results[0] == "scanned a" and results[2] == "scanned c"
    assert isinstance(results[1], str) and "died twice" in results[1]
    assert len(restarts) == 2


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
