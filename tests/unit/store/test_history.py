from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from mailwarden.errors import NotFoundError
from mailwarden.ids import new_id
from mailwarden.model import Action, Category, Direction, Mode
from mailwarden.model.trace import EventRecord, EventType, RecipientRecord, RecipientStatus
from mailwarden.store import History, HistoryQuery, HistoryQueryError

from .records import T0, MakeRecord


def test_record_and_get_round_trip(history: History, make_record: MakeRecord) -> None:
    rec = make_record(
        sender="Alice@Sender.Example",
        recipients=("Bob@Corp.Example", "carol@corp.example"),
        subject="Invoice 42",
        internet_message_id="abc@sender.example",
        category=Category.SPAM,
        action=Action.JUNK,
        mode=Mode.MONITOR,
        scl=6,
    )
    history.record(rec, [EventRecord(EventType.RECEIVE, "from mx.sender.example", at=T0)])

    detail = history.get(rec.id)
    s = detail.summary
    assert s.id == rec.id
    assert s.received_at == rec.received_at and s.received_at.tzinfo is not None
    assert (s.sender, s.from_address) == ("alice@sender.example", "alice@sender.example")
    assert s.recipients == ["bob@corp.example", "carol@corp.example"]
    assert s.internet_message_id == "<abc@sender.example>"
    assert (s.category, s.scl, s.action, s.mode, s.applied) == (Category.SPAM, 6, Action.JUNK, Mode.MONITOR, False)
    assert s.direction is Direction.INBOUND and s.organisation == "corp"
    assert detail.verdict == rec.verdict.as_dict()
    assert detail.sha256 == rec.sha256 and detail.client_ip == "192.0.2.10"
    assert [(r.address, r.field, r.status) for r in detail.recipients] == [
        ("bob@corp.example", "to", RecipientStatus.PENDING),
        ("carol@corp.example", "to", RecipientStatus.PENDING),
    ]
    assert [(e.type, e.detail, e.at) for e in detail.events] == [(EventType.RECEIVE, "from mx.sender.example", T0)]


def test_recording_the_same_id_twice_is_a_no_op(history: History, make_record: MakeRecord) -> None:
    rec = make_record(subject="first")
    history.record(rec, [EventRecord(EventType.RECEIVE)])
    replay = make_record(subject="replayed after crash")
    replay.id = rec.id
    history.record(replay, [EventRecord(EventType.RECEIVE), EventRecord(EventType.DELIVER)])
    detail = history.get(rec.id)
    assert detail.summary.subject == "first"
    assert [e.type for e in detail.events] == [EventType.RECEIVE]
    assert len(history.search(HistoryQuery()).items) == 1


def test_record_is_one_transaction(history: History, make_record: MakeRecord) -> None:
    rec = make_record()
    broken = EventRecord(EventType.SCAN, detail=None)  # type: ignore[arg-type]  # NOT NULL in the database
    with pytest.raises(IntegrityError):
        history.record(rec, [EventRecord(EventType.RECEIVE, at=T0), broken])
    assert not history.exists(rec.id)
    assert history.search(HistoryQuery()).items == []


def test_naive_times_are_refused_before_anything_is_written(history: History, make_record: MakeRecord) -> None:
    rec = make_record()
    with pytest.raises(ValueError, match="time zone"):
        history.record(rec, [EventRecord(EventType.RECEIVE, at=T0.replace(tzinfo=None))])
    assert not history.exists(rec.id)


def test_duplicate_recipients_in_one_record_are_kept_once(history: History, make_record: MakeRecord) -> None:
    rec = make_record(recipients=("bob@corp.example", "BOB@corp.example", "eve@corp.example"))
    history.record(rec)
    assert history.get(rec.id).summary.recipients == ["bob@corp.example", "eve@corp.example"]


def test_events_are_ordered_by_time_then_insertion(history: History, make_record: MakeRecord) -> None:
    rec = make_record()
    history.record(
        rec,
        [
            EventRecord(EventType.SCAN, "second", at=T0 + timedelta(seconds=2)),
            EventRecord(EventType.RECEIVE, "first", at=T0),
        ],
    )
    history.add_event(rec.id, EventRecord(EventType.DELIVER, "third", at=T0 + timedelta(seconds=2)))
    history.add_event(rec.id, EventRecord(EventType.DEFER, "earliest", at=T0 - timedelta(seconds=1)))
    events = history.get(rec.id).events
    assert [e.detail for e in events] == ["earliest", "first", "second", "third"]


def test_event_without_time_is_stamped_now(history: History, make_record: MakeRecord) -> None:
    rec = make_record()
    history.record(rec)
    history.add_event(rec.id, EventRecord(EventType.RELEASE, "released by admin"))
    (event,) = history.get(rec.id).events
    assert event.at is not None and event.at > T0 and event.at.utcoffset() == timedelta(0)


def test_add_recipients_is_a_union(history: History, make_record: MakeRecord) -> None:
    rec = make_record(recipients=("bob@corp.example",))
    history.record(rec)
    added = history.add_recipients(
        rec.id,
        [
            RecipientRecord("BOB@corp.example", field="bcc"),
            RecipientRecord("dave@corp.example", field="bcc", expanded_from="team@corp.example"),
            RecipientRecord("dave@corp.example"),
        ],
    )
    assert added == 1
    recipients = history.get(rec.id).recipients
    assert [(r.address, r.field, r.expanded_from) for r in recipients] == [
        ("bob@corp.example", "to", None),
        ("dave@corp.example", "bcc", "team@corp.example"),
    ]
    assert history.add_recipients(rec.id, [RecipientRecord("dave@corp.example")]) == 0


def test_set_recipient_status(history: History, make_record: MakeRecord) -> None:
    rec = make_record(recipients=("bob@corp.example", "carol@corp.example"))
    history.record(rec)
    history.set_recipient_status(rec.id, "Bob@Corp.Example", RecipientStatus.DELIVERED)
    statuses = {r.address: r.status for r in history.get(rec.id).recipients}
    assert statuses == {"bob@corp.example": RecipientStatus.DELIVERED, "carol@corp.example": RecipientStatus.PENDING}
    with pytest.raises(NotFoundError, match=r"no recipient mallory@corp\.example"):
        history.set_recipient_status(rec.id, "mallory@corp.example", RecipientStatus.DELIVERED)


def test_unknown_message_is_not_found(history: History) -> None:
    missing = new_id(T0)
    assert not history.exists(missing)
    with pytest.raises(NotFoundError, match=missing):
        history.get(missing)
    with pytest.raises(NotFoundError):
        history.add_event(missing, EventRecord(EventType.DELIVER))
    with pytest.raises(NotFoundError):
        history.add_recipients(missing, [RecipientRecord("a@b.example")])
    with pytest.raises(NotFoundError):
        history.set_recipient_status(missing, "a@b.example", RecipientStatus.DELIVERED)


def test_find_by_internet_message_id(history: History, make_record: MakeRecord) -> None:
    old = make_record(minutes=-60 * 24 * 3, internet_message_id="<dup@x.example>")
    recent = make_record(minutes=0, internet_message_id="<dup@x.example>")
    newest = make_record(minutes=5, internet_message_id="dup@x.example")
    other_org = make_record(minutes=6, internet_message_id="<dup@x.example>", organisation="other")
    no_org = make_record(minutes=7, internet_message_id="<dup@x.example>", organisation=None)
    for rec in (old, recent, newest, other_org, no_org):
        history.record(rec)
    since = T0 - timedelta(days=1)
    assert history.find_by_internet_message_id("<dup@x.example>", organisation="corp", since=since) == [
        newest.id,
        recent.id,
    ]
    assert history.find_by_internet_message_id("dup@x.example", organisation=None, since=since) == [no_org.id]
    assert history.find_by_internet_message_id("<none@x.example>", organisation="corp", since=since) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"cursor": "not-an-id"}, "cursor"),
        ({"start": T0, "end": T0 - timedelta(seconds=1)}, "start is after end"),
        ({"start": T0.replace(tzinfo=None)}, "time zone"),
    ],
)
def test_bad_queries_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(HistoryQueryError, match=message):
        HistoryQuery(**kwargs)  # type: ignore[arg-type]


def test_record_many_writes_a_batch_once(history: History, make_record: MakeRecord) -> None:
    first, second = make_record(subject="one"), make_record(subject="two")
    assert history.record_many([(first, [EventRecord(EventType.RECEIVE)]), (second, [])]) == 2
    # replaying the same batch after a crash writes nothing twice
    assert history.record_many([(first, []), (second, [])]) == 0
    assert history.get(first.id).summary.subject == "one"
    assert [e.type for e in history.get(first.id).events] == [EventType.RECEIVE]
