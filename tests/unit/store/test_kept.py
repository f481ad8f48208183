"""Messages kept for retro-hunt: rows, compressed blobs, sizes, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from mailwarden.errors import NotFoundError
from mailwarden.model import Envelope, TlsInfo
from mailwarden.store import Database, History, LocalBlobStore
from mailwarden.store.kept import KeptMessage, KeptStore, Window, blob_key, compress
from mailwarden.store.schema import MessageRow

from .records import MakeRecord

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RAW = b"From: a@example.org\r\nSubject: kept\r\n\r\n" + b"the same line again and again\r\n" * 200


@pytest.fixture
def kept(db: Database, tmp_path: Path) -> KeptStore:
    return KeptStore(db, LocalBlobStore(tmp_path / "blobs"))


def keep(store: KeptStore, history: History, make_record: MakeRecord, *, at: datetime, days: float = 7) -> KeptMessage:
    """A recorded message kept at `at` for `days`, written in the crash-safe order: blob, then row."""
    record = make_record(at=at)
    history.record(record)
    data = compress(RAW, 3)
    key = blob_key(record.id)
    store.blobs.put(key, data)
    item = KeptMessage(
        message_id=record.id,
        organisation=record.organisation,
        kept_at=at,
        expires_at=at + timedelta(days=days),
        spool_id=record.id,
        listener="journal",
        envelope=Envelope(
            "a@example.org",
            ("bob@corp.example",),
            client_ip="192.0.2.1",
            tls=TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
            received_at=at,
        ),
        raw_size=len(RAW),
        stored_size=len(data),
        blob_key=key,
    )
    with store.db.session() as session:
        store.record([item], session=session)
    return item


def test_a_kept_message_comes_back_byte_for_byte_with_its_envelope(
    kept: KeptStore, history: History, make_record: MakeRecord
) -> None:
    item = keep(kept, history, make_record, at=NOW)
    back = kept.get(item.message_id)
    assert back == item
    assert kept.raw(back) == RAW
    assert back.stored_size < back.raw_size / 10  # zstd on repetitive text


def test_totals_count_messages_and_both_sizes_per_organisation(
    kept: KeptStore, history: History, make_record: MakeRecord
) -> None:
    assert kept.totals() == (0, 0, 0)
    first = keep(kept, history, make_record, at=NOW)
    keep(kept, history, make_record, at=NOW + timedelta(minutes=1))
    assert kept.totals() == (2, 2 * len(RAW), 2 * first.stored_size)
    assert kept.totals("corp") == kept.totals()
    assert kept.totals("elsewhere") == (0, 0, 0)


def test_expiry_removes_blob_and_row_of_what_is_past_its_retention_and_keeps_the_rest(
    kept: KeptStore, history: History, make_record: MakeRecord
) -> None:
    old = keep(kept, history, make_record, at=NOW - timedelta(days=8))
    recent = keep(kept, history, make_record, at=NOW - timedelta(days=6))
    assert kept.expire(NOW) == 1
    assert not kept.blobs.exists(old.blob_key)
    with pytest.raises(NotFoundError):
        kept.get(old.message_id)
    assert kept.raw(kept.get(recent.message_id)) == RAW
    assert kept.expire(NOW) == 0  # running again finds nothing more
    assert history.exists(old.message_id)  # the record stays: only the kept copy goes


def test_a_window_pages_in_time_order_and_filters_by_organisation(
    kept: KeptStore, history: History, make_record: MakeRecord
) -> None:
    items = [keep(kept, history, make_record, at=NOW + timedelta(hours=h)) for h in range(5)]
    window = Window(since=NOW + timedelta(hours=1), until=NOW + timedelta(hours=3))
    assert kept.count(window) == 3
    first = kept.page(window, limit=2)
    rest = kept.page(window, after=first[-1].message_id, limit=2)
    assert [k.message_id for k in first + rest] == [k.message_id for k in items[1:4]]
    assert kept.count(Window(organisation="elsewhere")) == 0


def test_keeping_a_message_twice_leaves_the_first_row(
    kept: KeptStore, history: History, make_record: MakeRecord
) -> None:
    item = keep(kept, history, make_record, at=NOW)
    with kept.db.session() as session:
        kept.record([item], session=session)  # another node recorded it too: no error, no second row
    assert kept.totals()[0] == 1


def test_a_row_whose_record_is_deleted_goes_with_it(kept: KeptStore, history: History, make_record: MakeRecord) -> None:
    item = keep(kept, history, make_record, at=NOW)
    with kept.db.session() as session:
        session.execute(delete(MessageRow).where(MessageRow.id == item.message_id))
    assert kept.totals() == (0, 0, 0)
