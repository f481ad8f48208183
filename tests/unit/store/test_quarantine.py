"""The quarantine's tables on SQLite: entries added once, listed and paged, changed with their audit entry
and trace events, digest state and used link tokens."""

from __future__ import annotations

from datetime import timedelta

from mailwarden.model import Policy
from mailwarden.model.quarantine import Reason, Status, new_entries
from mailwarden.model.trace import EventRecord, EventType, RecipientStatus
from mailwarden.store import Database, History
from mailwarden.store.audit import AuditLog
from mailwarden.store.quarantine import QuarantineQuery, QuarantineStore

from .records import T0, MakeRecord


def quarantined(history: History, make_record: MakeRecord, *recipients: str, minutes: float = 0) -> str:
    """A message in history with an entry per recipient; its id."""
    rec = make_record(recipients=recipients, minutes=minutes)
    history.record(rec)
    entries = new_entries(
        message_id=rec.id,
        organisation="corp",
        recipients=recipients,
        reason=Reason.SPAM,
        sender=rec.sender,
        subject=rec.subject,
        received_at=rec.received_at,
        policy=Policy(),
        would_have=False,
        blob_key=f"blob-{rec.id}",
        sha256="ab" * 32,
        size=10,
    )
    store = QuarantineStore(history.db)
    assert store.record(entries) == len(recipients)
    assert store.record(entries) == 0  # a replayed spool entry adds nothing
    return rec.id


def test_entries_are_added_once_and_paged_newest_first(db: Database, history: History, make_record: MakeRecord) -> None:
    store = QuarantineStore(db)
    for n in range(3):
        quarantined(history, make_record, "bob@corp.example", minutes=n)
    first = store.page(QuarantineQuery(limit=2))
    rest = store.page(QuarantineQuery(limit=2, cursor=first.next_cursor))
    assert len(first.items) == 2 and len(rest.items) == 1 and rest.next_cursor is None
    assert [e.received_at for e in first.items + rest.items] == [T0 + timedelta(minutes=n) for n in (2, 1, 0)]
    assert store.page(QuarantineQuery(), recipient="carol@corp.example").items == []


def test_a_release_is_audited_and_its_dispatch_traced(db: Database, history: History, make_record: MakeRecord) -> None:
    store = QuarantineStore(db)
    message_id = quarantined(history, make_record, "bob@corp.example", "carol@corp.example")
    bob, carol = store.of_message(message_id)
    store.release([bob], by="admin", at=T0)
    assert store.get(bob.id).status is Status.RELEASED and store.get(carol.id).status is Status.HELD
    entry = AuditLog(db).newest(limit=1)[0]
    assert (entry["action"], entry["object"], entry["after"]) == (
        "quarantine.release",
        f"quarantine/{bob.id}",
        {"status": "released", "released_by": "admin"},
    )
    assert [e.id for e in store.undispatched_releases()] == [bob.id]
    store.dispatched([store.get(bob.id)], "job-1", [EventRecord(EventType.RELEASE, "queued", recipient=bob.recipient)])
    assert store.undispatched_releases() == []
    detail = history.get(message_id)
    assert [e.type for e in detail.events] == [EventType.RELEASE]
    assert {r.address: r.status for r in detail.recipients}["bob@corp.example"] is RecipientStatus.PENDING


def test_removed_entries_take_their_events_and_free_their_blobs(
    db: Database, history: History, make_record: MakeRecord
) -> None:
    store = QuarantineStore(db)
    message_id = quarantined(history, make_record, "bob@corp.example", "carol@corp.example")
    bob, carol = store.of_message(message_id)
    assert store.blobs_needed({bob.blob_key or ""}) == {bob.blob_key}
    assert store.blobs_needed({bob.blob_key or ""}, leaving={bob.id, carol.id}) == set()
    store.remove([bob], [(bob, EventRecord(EventType.EXPIRE, "expired", recipient=bob.recipient))])
    assert [e.id for e in store.of_message(message_id)] == [carol.id]
    assert [e.type for e in history.get(message_id).events] == [EventType.EXPIRE]


def test_digest_state_and_link_tokens(db: Database, history: History, make_record: MakeRecord) -> None:
    store = QuarantineStore(db)
    message_id = quarantined(history, make_record, "bob@corp.example")
    (bob,) = store.held_unnotified()
    assert store.last_digests({"bob@corp.example"}) == {}
    store.digest_sent("bob@corp.example", [bob], T0)
    assert store.held_unnotified() == [] and store.of_message(message_id)[0].id == bob.id
    assert store.last_digests({"bob@corp.example"}) == {"bob@corp.example": T0}
    assert store.use_token("t1", at=T0, expires_at=T0 + timedelta(hours=1))
    assert not store.use_token("t1", at=T0, expires_at=T0 + timedelta(hours=1))  # a link works once
    store.forget_tokens(T0 + timedelta(hours=2))
    assert store.use_token("t1", at=T0, expires_at=T0 + timedelta(hours=1))
