"""The feed's outbox: written in the transaction of what it reports, read in order, pruned and trimmed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailwarden.model.trace import EventRecord, EventType
from mailwarden.store import Database, History
from mailwarden.store.audit import write_entry
from mailwarden.store.outbox import Outbox

from .records import MakeRecord


def test_a_message_its_later_events_and_an_admin_change_each_become_a_row(
    db: Database, history: History, make_record: MakeRecord
) -> None:
    rec = make_record(internet_message_id="<a@b.example>", recipients=("bob@corp.example", "eve@corp.example"))
    history.record_many([(rec, [EventRecord(EventType.RECEIVE, "from 192.0.2.10")])])
    history.add_event(rec.id, EventRecord(EventType.DELIVER, "250 ok", recipient="bob@corp.example"))
    with db.session() as s:
        write_entry(s, at=datetime.now(UTC), actor="ann", action="policy.put", obj="organisation:corp",
                    before={"a": 1}, after={"a": 2})  # fmt: skip
    rows = Outbox(db).after(0, limit=10)
    assert [r.kind for r in rows] == ["message", "event", "audit"]
    message = rows[0].payload
    assert message["message"]["id"] == rec.id and message["message"]["internet_message_id"] == "<a@b.example>"
    assert [r["address"] for r in message["recipients"]] == ["bob@corp.example", "eve@corp.example"]
    assert [e["type"] for e in message["events"]] == ["receive"]
    event = rows[1].payload
    assert event["event"]["type"] == "deliver" and event["message"]["subject"] == rec.subject
    assert rows[2].payload["actor"] == "ann" and rows[2].payload["after"] == {"a": 2}
    assert len({r.uid for r in rows}) == 3 and [r.seq for r in rows] == sorted(r.seq for r in rows)


def test_nothing_of_a_failed_transaction_reaches_the_outbox(
    db: Database, history: History, make_record: MakeRecord
) -> None:
    history.record(make_record())
    with pytest.raises(RuntimeError), db.session() as s:
        write_entry(s, at=datetime.now(UTC), actor="ann", action="x", obj="y", before=None, after=None)
        raise RuntimeError("the change fails after its audit entry was added")
    assert [r.kind for r in Outbox(db).after(0, limit=10)] == ["message"]


def test_cursors_pruning_and_a_bounded_backlog(db: Database, history: History, make_record: MakeRecord) -> None:
    box = Outbox(db)
    for _ in range(5):
        history.record(make_record())
    assert box.cursor("nats", start_at=0) == 0
    first_three = box.after(0, limit=3)
    box.advance("nats", first_three[-1].seq)
    assert box.cursor("nats", start_at=0) == first_three[-1].seq
    assert box.prune(below=first_three[-1].seq, older_than=datetime.now(UTC) - timedelta(days=7)) == 3
    assert box.count() == 2
    for _ in range(4):
        history.record(make_record())
    assert box.trim(3) == 3 and box.count() == 3
