"""The server's hand-off to scanning processes: what happens when one of them dies."""

from __future__ import annotations

from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailwarden.ingest.spool import SpoolEntry
from mailwarden.model import Envelope
from mailwarden.service.pool import ScanningProcesses


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
    processes = ScanningProcesses.__new__(ScanningProcesses)  # only the hand-off is exercised: no runtime

    def restart() -> None:
        restarts.append(1)
        processes._executor = DyingPool("b", calls)

    processes._executor = DyingPool("b", calls)
    processes._restart = restart  # type: ignore[method-assign]
    results = await processes.scan([entry("a"), entry("b"), entry("c")])
    # the batch died; each entry was tried alone: the other two were scanned, the poison one was not
    assert calls == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert results[0] == "scanned a" and results[2] == "scanned c"
    assert isinstance(results[1], str) and "died twice" in results[1]
    assert len(restarts) == 2
