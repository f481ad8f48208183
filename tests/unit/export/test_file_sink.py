"""The JSON-lines file sink: on disk when `send` returns, rotated by size and age, never half a line."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from mailwarden.errors import ConfigError
from mailwarden.export.event import ExportEvent
from mailwarden.export.sink import Sink, SinkError
from mailwarden.export.sinks import file as file_sink
from mailwarden.export.sinks.file import JsonLinesSink, json_line
from tests.export_events import email_activity


def _events(first: int, count: int, **kwargs: Any) -> list[ExportEvent]:
    return [email_activity(n, **kwargs) for n in range(first, first + count)]


def _uids(path: Path) -> list[str]:
    """The uids in a file, failing on anything but whole JSON lines."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path.name} ends in half a line"
    return [json.loads(line)["metadata"]["uid"] for line in data.splitlines()]


async def test_every_event_is_one_line_on_disk_when_send_returns(tmp_path: Path) -> None:
    path = tmp_path / "feed" / "events.jsonl"
    sink = JsonLinesSink("lake", path)
    assert isinstance(sink, Sink)
    events = _events(1, 3, subject="line one\nline two 請求書")
    await sink.send(events)
    assert _uids(path) == [e.uid for e in events]  # read while the sink still has the file open
    assert [json.loads(line) for line in path.read_bytes().splitlines()] == [e.body for e in events]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    await sink.close()


async def test_size_rotation_keeps_batches_whole_and_drops_the_oldest_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line = len(json_line(email_activity(10)))
    sink = JsonLinesSink("lake", path, max_bytes=int(line * 2.5), keep=2)
    batches = [_events(10 + 2 * i, 2) for i in range(4)]
    for batch in batches:
        await sink.send(batch)
    await sink.close()
    assert _uids(path) == [e.uid for e in batches[3]]
    assert _uids(tmp_path / "events.jsonl.1") == [e.uid for e in batches[2]]
    assert _uids(tmp_path / "events.jsonl.2") == [e.uid for e in batches[1]]
    assert not (tmp_path / "events.jsonl.3").exists()


async def test_a_batch_bigger_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonLinesSink("lake", path, max_bytes=100, keep=3)
    await sink.send(_events(1, 1))
    await sink.send(_events(2, 5))
    await sink.close()
    assert _uids(tmp_path / "events.jsonl.1") == [e.uid for e in _events(1, 1)]
    assert _uids(path) == [e.uid for e in _events(2, 5)]


async def test_age_rotation_starts_a_new_file_once_the_current_one_is_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(file_sink.time, "monotonic", lambda: clock[0])
    path = tmp_path / "events.jsonl"
    sink = JsonLinesSink("lake", path, max_age_seconds=3600, keep=5)
    await sink.send(_events(1, 1))
    clock[0] += 3599
    await sink.send(_events(2, 1))
    clock[0] += 1
    await sink.send(_events(3, 1))
    await sink.close()
    assert _uids(tmp_path / "events.jsonl.1") == [e.uid for e in _events(1, 2)]
    assert _uids(path) == [e.uid for e in _events(3, 1)]


async def test_a_failed_write_leaves_no_half_line_and_the_retry_writes_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonLinesSink("lake", path)
    await sink.send(_events(1, 2))
    real_write = os.write
    calls = []

    def disk_fills_up(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, data[: len(data) // 2])  # half the batch fits ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then the disk is full

    monkeypatch.setattr(file_sink.os, "write", disk_fills_up)
    with pytest.raises(SinkError, match="No space left on device"):
        await sink.send(_events(3, 3))
    assert _uids(path) == [e.uid for e in _events(1, 2)]
    monkeypatch.setattr(file_sink.os, "write", real_write)
    await sink.send(_events(3, 3))  # the exporter sends the failed batch again
    await sink.close()
    assert _uids(path) == [e.uid for e in _events(1, 5)]


async def test_a_file_moved_away_by_someone_else_is_followed_by_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonLinesSink("lake", path)
    await sink.send(_events(1, 1))
    path.rename(tmp_path / "moved.jsonl")  # logrotate without copytruncate
    await sink.send(_events(2, 1))
    await sink.close()
    assert _uids(tmp_path / "moved.jsonl") == [e.uid for e in _events(1, 1)]
    assert _uids(path) == [e.uid for e in _events(2, 1)]


async def test_a_directory_that_cannot_be_written_fails_the_batch(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    sink = JsonLinesSink("lake", tmp_path / "not-a-dir" / "events.jsonl")
    with pytest.raises(SinkError, match="not-a-dir"):
        await sink.send(_events(1, 1))
    await sink.close()


@pytest.mark.parametrize(("setting", "value"), [("max_bytes", 0), ("max_age_seconds", 0), ("keep", 0)])
def test_settings_out_of_range_are_refused_naming_the_field(tmp_path: Path, setting: str, value: int) -> None:
    with pytest.raises(ConfigError, match=setting):
        JsonLinesSink("lake", tmp_path / "e.jsonl", **{setting: value})
