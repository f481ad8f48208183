"""The exporter with sinks in memory: cursors advance only on acknowledgement, a failing sink repeats its
batch and holds up no other, filters apply, the outbox stays bounded and says so when it drops."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mailwarden.export.config import ExportConfig, FileSink
from mailwarden.export.event import ExportEvent
from mailwarden.export.sink import SinkError
from mailwarden.service.config import Config
from mailwarden.service.export import Exporter
from mailwarden.service.runtime import Runtime
from tests.unit.store.records import build_record


class MemorySink:
    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[ExportEvent] = []
        self.down = False

    async def send(self, events: Sequence[ExportEvent]) -> None:
        if self.down:
            raise SinkError(f"{self.name} is down")
        self.got.extend(events)

    async def close(self) -> None:
        return None


def cfg(name: str, **kw: object) -> FileSink:
    return FileSink.model_validate({"type": "file", "name": name, "path": "/dev/null", **kw})


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(Config.model_validate({"paths": {"data_dir": str(tmp_path)}}))
    runtime.db.migrate()
    yield runtime
    runtime.close()


async def drain(exporter: Exporter, c: FileSink, sink: MemorySink) -> None:
    cursor = exporter.outbox.cursor(c.name, start_at=0)
    while (moved := await exporter.step(c, sink, cursor)) is not None:
        cursor = moved


async def test_every_event_once_in_order_and_the_cursor_only_moves_on_ack(rt: Runtime) -> None:
    for i in range(5):
        rt.history.record(build_record(internet_message_id=f"<m{i}@x.example>"))
    a, b = MemorySink("a"), MemorySink("b")
    exporter = Exporter(rt.db, ExportConfig(), sinks=[(cfg("a"), a), (cfg("b"), b)])
    b.down = True
    await drain(exporter, cfg("a"), a)
    with pytest.raises(SinkError):
        await drain(exporter, cfg("b"), b)
    assert exporter.outbox.cursors()["b"][0] == 0  # nothing acknowledged, nothing passed
    b.down = False
    await drain(exporter, cfg("b"), b)
    uids = [e.uid for e in a.got]
    assert uids == [e.uid for e in b.got] and len(uids) == len(set(uids))
    assert [e.seq for e in a.got] == sorted(e.seq for e in a.got)
    emails = [e for e in a.got if e.class_uid == 4009]
    assert len(emails) == 5


async def test_a_filter_keeps_what_the_sink_wants(rt: Runtime) -> None:
    rt.history.record(build_record())
    only = MemorySink("only")
    exporter = Exporter(rt.db, ExportConfig(), sinks=[(cfg("only", classes=[4009]), only)])
    await drain(exporter, cfg("only", classes=[4009]), only)
    assert {e.class_uid for e in only.got} == {4009}


def test_housekeeping_prunes_what_all_passed_and_trims_loudly(rt: Runtime) -> None:
    for _ in range(3):
        rt.history.record(build_record())
    a = MemorySink("a")
    exporter = Exporter(rt.db, ExportConfig(max_backlog=1000), sinks=[(cfg("a"), a)])
    exporter.outbox.advance("a", 2)
    exporter.outbox.advance("gone", 0)  # a sink no longer configured holds nothing back
    pruned, dropped = exporter.housekeep()
    assert (pruned, dropped) == (2, 0) and "gone" not in exporter.outbox.cursors()
    rt.history.record_many([(build_record(), []) for _ in range(1005)])
    with capture_logs() as logs:
        assert exporter.housekeep() == (0, 6)  # 1,006 rows kept at most 1,000: the six oldest, unsent, go
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["outbox_dropping_oldest"]
