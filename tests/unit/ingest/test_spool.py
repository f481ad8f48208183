from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailwarden.ingest.spool import CorruptSpoolFile, Spool, SpoolEntry, SpoolError
from mailwarden.model import Envelope, TlsInfo
from tests.factories import build_message

RAW = build_message() + b"8-bit \xe9 and a lone dot line\r\n.\r\nstill the message\r\n"


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool") as s:
        yield s


def _envelope(**overrides: object) -> Envelope:
    values: dict[str, object] = {
        "mail_from": "alice@example.org",
        "rcpt_to": ("journal@example.com", "bob@example.com"),
        "client_ip": "2001:db8::25",
        "helo": "mail.example.org",
        "tls": TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
        "received_at": datetime(2025, 10, 14, 9, 15, 1, 123000, tzinfo=UTC),
        "authenticated_as": "relay-user",
    }
    values.update(overrides)
    return Envelope(**values)  # type: ignore[arg-type]


def test_put_then_pending_round_trips_exact_bytes_and_envelope(spool: Spool) -> None:
    envelope = _envelope()
    entry = spool.put("journal", envelope, RAW)

    [loaded] = list(spool.pending())

    assert loaded == SpoolEntry(entry.id, "journal", envelope, RAW, entry.path)
    assert loaded.raw == RAW
    assert entry.path.read_bytes().endswith(RAW)


def test_null_sender_and_no_tls_round_trip(spool: Spool) -> None:
    envelope = _envelope(mail_from="", tls=None, authenticated_as=None, helo=None)
    spool.put("inbound", envelope, b"")
    [loaded] = list(spool.pending())
    assert loaded.envelope == envelope
    assert loaded.raw == b""


def test_pending_is_oldest_first(spool: Spool) -> None:
    late = spool.put("j", _envelope(received_at=datetime(2025, 10, 14, 10, 0, tzinfo=UTC)), b"late")
    early = spool.put("j", _envelope(received_at=datetime(2025, 10, 14, 9, 0, tzinfo=UTC)), b"early")
    assert [e.id for e in spool.pending()] == [early.id, late.id]


def test_entries_survive_reopening_the_spool(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as first:
        entry = first.put("journal", _envelope(), RAW)
    with Spool(tmp_path / "spool") as second:
        assert [e.id for e in second.pending()] == [entry.id]


def test_backlog_counts_committed_entries_until_done_also_after_reopening(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as spool:
        first = spool.put("journal", _envelope(), RAW)
        spool.put("journal", _envelope(), RAW)
        assert spool.backlog == 2
        spool.done(first.id)
        spool.done(first.id)  # idempotent: counted once
        assert spool.backlog == 1
    with Spool(tmp_path / "spool") as reopened:
        assert reopened.backlog == 1


def test_a_write_interrupted_before_its_rename_is_removed_on_recovery(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as first:
        kept = first.put("journal", _envelope(), RAW)
    # what a crash between write and rename leaves behind: a temp file that was never acknowledged
    leftover = tmp_path / "spool" / "tmp" / "01K7FZ0000000000000000000.tmp"
    leftover.write_bytes(b"MWSPOOL 1 half a messa")

    with Spool(tmp_path / "spool") as second:
        assert [e.id for e in second.pending()] == [kept.id]
        assert not leftover.exists()


def test_a_finished_entry_emptied_by_an_interrupted_clean_up_is_finished_not_corrupt(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool") as first:
        kept = first.put("journal", _envelope(), RAW)
        finished = first.put("journal", _envelope(), RAW)
    # what a kill in the middle of an older clean-up left: the finished entry's file emptied in queue/
    os.truncate(finished.path, 0)

    with Spool(tmp_path / "spool") as second:
        assert [e.id for e in second.pending()] == [kept.id] and second.backlog == 1
        assert list((tmp_path / "spool" / "corrupt").iterdir()) == []


def test_clean_up_moves_the_file_out_of_the_queue_before_emptying_it(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = spool.put("journal", _envelope(), RAW)

    def killed(path: object, length: int) -> None:
        raise KeyboardInterrupt("killed between the two steps")

    monkeypatch.setattr(os, "truncate", killed)
    with pytest.raises(KeyboardInterrupt):
        spool.done(entry.id)
    assert not entry.path.exists()  # nothing is left in queue/ to be mistaken for a message


def test_a_corrupt_committed_file_is_set_aside_and_the_rest_still_comes(spool: Spool, tmp_path: Path) -> None:
    first = spool.put("journal", _envelope(received_at=datetime(2025, 10, 14, 9, 0, tzinfo=UTC)), b"first")
    broken = spool.put("journal", _envelope(received_at=datetime(2025, 10, 14, 9, 1, tzinfo=UTC)), RAW)
    last = spool.put("journal", _envelope(received_at=datetime(2025, 10, 14, 9, 2, tzinfo=UTC)), b"last")
    data = broken.path.read_bytes()
    broken.path.write_bytes(data[:-10])  # truncated, as a disk failure would leave it

    assert [e.raw for e in spool.pending()] == [b"first", b"last"]

    corrupt = tmp_path / "spool" / "corrupt" / broken.path.name
    assert corrupt.read_bytes() == data[:-10]  # kept for a human, never silently deleted
    assert "truncated" in corrupt.with_name(corrupt.name + ".reason").read_text()
    assert [e.id for e in spool.pending()] == [first.id, last.id]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: b"garbage" + d, "not a mailwarden spool file"),
        (lambda d: d.replace(b"MWSPOOL 1", b"MWSPOOL 9", 1), "unsupported spool format version 9"),
        (lambda d: d[:-3] + b"XYZ", "SHA-256"),
        (lambda d: d[:30], "truncated header"),
    ],
)
def test_load_refuses_damaged_files_with_a_reason(spool: Spool, damage: object, reason: str) -> None:
    entry = spool.put("journal", _envelope(), RAW)
    entry.path.write_bytes(damage(entry.path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(CorruptSpoolFile, match=reason):
        spool.load(entry.path)
    assert not entry.path.exists()


def test_done_removes_the_entry_and_is_idempotent(spool: Spool) -> None:
    entry = spool.put("journal", _envelope(), RAW)
    spool.done(entry.id)
    assert list(spool.pending()) == []
    assert not entry.path.exists()
    spool.done(entry.id)


def test_finished_files_are_emptied_and_reused(spool: Spool, tmp_path: Path) -> None:
    first = spool.put("journal", _envelope(), RAW)
    inode = first.path.stat().st_ino
    spool.done(first.id)
    [kept] = (tmp_path / "spool" / "free").iterdir()
    assert kept.stat().st_size == 0  # no message bytes linger after done()

    second = spool.put("journal", _envelope(), b"short")
    assert second.path.stat().st_ino == inode
    assert [e.raw for e in spool.pending()] == [b"short"]


def test_done_refuses_something_that_is_not_an_id(spool: Spool) -> None:
    with pytest.raises(ValueError, match="not a spool entry id"):
        spool.done("../../etc/passwd")


def test_a_second_owner_of_the_directory_is_refused(spool: Spool, tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path / "spool")


def test_put_fsyncs_file_and_directory_before_returning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    with Spool(tmp_path / "spool") as spool:
        spool.put("journal", _envelope(), RAW)
        assert len(synced) == 2  # the message file, then the queue directory
    synced.clear()
    with Spool(tmp_path / "nosync", fsync=False) as spool:
        spool.put("journal", _envelope(), RAW)
        assert synced == []


async def test_put_async_commits_concurrent_messages_sharing_directory_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Spool(tmp_path / "spool") as spool:
        directory_syncs = 0
        real_fsync = os.fsync

        def counting_fsync(fd: int) -> None:
            nonlocal directory_syncs
            if fd == spool._queue_fd:
                directory_syncs += 1
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", counting_fsync)
        entries = await asyncio.gather(*(spool.put_async("journal", _envelope(), b"m%d" % i) for i in range(40)))

        assert sorted(e.raw for e in spool.pending()) == sorted(b"m%d" % i for i in range(40))
        assert len({e.id for e in entries}) == 40
        assert 1 <= directory_syncs < 40


async def test_entries_yields_backlog_then_new_commits_once_each(spool: Spool) -> None:
    backlog = spool.put("journal", _envelope(), b"backlog")
    seen: list[SpoolEntry] = []

    async def consume() -> None:
        async for entry in spool.entries():
            seen.append(entry)
            await spool.done_async(entry.id)
            if len(seen) == 3:
                return

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await spool.put_async("journal", _envelope(), b"new 1")
    await asyncio.to_thread(spool.put, "journal", _envelope(), b"new 2")  # a commit from another thread
    await asyncio.wait_for(consumer, 5)

    assert [e.raw for e in seen] == [b"backlog", b"new 1", b"new 2"]
    assert seen[0].id == backlog.id
    assert list(spool.pending()) == []


async def test_an_entry_handed_out_is_not_handed_out_again_before_done(spool: Spool) -> None:
    spool.put("journal", _envelope(), b"one")
    iterator = spool.entries().__aiter__()
    first = await iterator.__anext__()
    spool._announce(first.id)  # the same id announced twice (a commit racing the start-up listing)
    spool.put("journal", _envelope(), b"two")
    second = await asyncio.wait_for(iterator.__anext__(), 5)
    assert second.raw == b"two"
    await iterator.aclose()  # type: ignore[attr-defined]
