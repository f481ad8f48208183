"""The quarantine service: release paths, requests and decisions, deletion, expiry, listing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from mailwarden.errors import NotFoundError
from mailwarden.model.quarantine import Actor, PermissionDeniedError, QuarantineError, Reason, Role, Status
from mailwarden.model.trace import EventType, RecipientStatus
from mailwarden.store.quarantine import QuarantineQuery
from mailwarden.store.schema import AuditRow
from tests.factories import build_message

from .world import T0, World

ADMIN = Actor("root@corp.example", Role.ADMIN)
ANALYST = Actor("ana@corp.example", Role.ANALYST)


def user(address: str) -> Actor:
    return Actor(address, Role.USER, address)


def test_release_to_all_queues_the_original_bytes_once_and_traces_it(world: World) -> None:
    raw = build_message(to="bob@corp.example, carol@corp.example", subject="Win a prize")
    bob, _ = world.quarantined(recipients=("bob@corp.example", "carol@corp.example"), raw=raw)

    released = world.quarantine.release(bob.id, ADMIN)

    assert {e.recipient for e in released} == {"bob@corp.example", "carol@corp.example"}
    assert all(e.status is Status.RELEASED and e.released_by == ADMIN.name for e in released)
    ((message_id, mail_from, recipients, sent),) = world.dispatched.calls
    assert (message_id, mail_from) == (bob.message_id, "spammer@bad.example")
    assert set(recipients) == {"bob@corp.example", "carol@corp.example"}
    assert sent == raw  # no re-filtering, no change
    detail = world.history.get(bob.message_id)
    releases = [e for e in detail.events if e.type is EventType.RELEASE]
    assert {e.recipient for e in releases} == {"bob@corp.example", "carol@corp.example"}
    assert {r.status for r in detail.recipients} == {RecipientStatus.PENDING}
    assert world.quarantine.dispatch_releases() == 0  # already queued: never twice


def test_release_to_chosen_recipients_leaves_the_others_held(world: World) -> None:
    bob, carol = world.quarantined(recipients=("bob@corp.example", "carol@corp.example"))

    world.quarantine.release(bob.id, ADMIN, recipients=["Carol@Corp.example"])

    assert world.dispatched.calls[0][2] == ("carol@corp.example",)
    assert world.quarantine.get(bob.id).status is Status.HELD
    assert world.quarantine.get(carol.id).status is Status.RELEASED
    with pytest.raises(QuarantineError, match="not a quarantined recipient"):
        world.quarantine.release(bob.id, ADMIN, recipients=["mallory@corp.example"])


def test_a_user_releases_only_their_own_copy(world: World) -> None:
    bob, carol = world.quarantined(recipients=("bob@corp.example", "carol@corp.example"))

    released = world.quarantine.release(bob.id, user("bob@corp.example"))

    assert [e.recipient for e in released] == ["bob@corp.example"]
    assert world.quarantine.get(carol.id).status is Status.HELD
    with pytest.raises(NotFoundError):  # someone else's entry does not exist for a user
        world.quarantine.release(carol.id, user("bob@corp.example"), recipients=["carol@corp.example"])


def test_malware_is_released_by_administrators_only(world: World) -> None:
    (entry,) = world.quarantined(reason=Reason.MALWARE)

    with pytest.raises(PermissionDeniedError):
        world.quarantine.release(entry.id, ANALYST)
    with pytest.raises(NotFoundError):  # default policy: users do not even see malware
        world.quarantine.release(entry.id, user("bob@corp.example"))
    assert world.dispatched.calls == []
    assert world.quarantine.release(entry.id, ADMIN)[0].status is Status.RELEASED


def test_request_then_approve_releases(world: World) -> None:
    (entry,) = world.quarantined(reason=Reason.PHISH)  # default: users may only request phish
    bob = user("bob@corp.example")

    with pytest.raises(PermissionDeniedError):
        world.quarantine.release(entry.id, bob)
    requested = world.quarantine.request_release(entry.id, bob)
    assert (requested.status, requested.requested_by) == (Status.RELEASE_REQUESTED, bob.name)
    with pytest.raises(QuarantineError):
        world.quarantine.request_release(entry.id, bob)  # asked already

    (approved,) = world.quarantine.approve(entry.id, ADMIN)

    assert approved.status is Status.RELEASED
    assert approved.decided_by == ADMIN.name
    assert world.dispatched.calls[0][2] == ("bob@corp.example",)


def test_request_then_deny_keeps_the_message(world: World) -> None:
    (entry,) = world.quarantined(reason=Reason.PHISH)
    world.quarantine.request_release(entry.id, user("bob@corp.example"))

    with pytest.raises(PermissionDeniedError):
        world.quarantine.deny(entry.id, ANALYST)  # analysts decide on spam and bulk only
    denied = world.quarantine.deny(entry.id, ADMIN)

    assert denied.status is Status.DENIED and denied.decided_by == ADMIN.name
    assert world.dispatched.calls == []
    assert world.blobs.exists(entry.blob_key or "")
    with pytest.raises(QuarantineError):
        world.quarantine.approve(entry.id, ADMIN)  # no request pending any more


def test_delete_removes_the_blob_only_when_no_entry_needs_it(world: World) -> None:
    bob, carol = world.quarantined(recipients=("bob@corp.example", "carol@corp.example"))
    key = bob.blob_key or ""

    world.quarantine.delete(bob.id, user("bob@corp.example"))
    assert world.blobs.exists(key)  # Carol's copy is still held
    assert world.quarantine.get(bob.id).status is Status.DELETED

    world.quarantine.delete(carol.id, ADMIN)
    assert not world.blobs.exists(key)
    with pytest.raises(QuarantineError):
        world.quarantine.preview(carol.id)
    with pytest.raises(QuarantineError):
        world.quarantine.release(carol.id, ADMIN)


def test_actions_are_audited(world: World) -> None:
    (entry,) = world.quarantined()
    world.quarantine.release(entry.id, ADMIN)
    with world.db.session() as session:
        rows = list(session.scalars(select(AuditRow)))
    assert [(r.actor, r.action, r.object) for r in rows] == [
        (ADMIN.name, "quarantine.release", f"quarantine/{entry.id}")
    ]
    assert rows[0].before is not None and rows[0].before["status"] == "held"


def test_expire_deletes_entry_and_blob_and_writes_an_expire_event(world: World) -> None:
    (old,) = world.quarantined(at=T0)
    (young,) = world.quarantined(at=T0 + timedelta(days=10))

    assert world.quarantine.expire(T0 + timedelta(days=15, seconds=1)) == 1

    with pytest.raises(NotFoundError):
        world.quarantine.get(old.id)
    assert not world.blobs.exists(old.blob_key or "")
    assert world.blobs.exists(young.blob_key or "")
    events = world.history.get(old.message_id).events
    assert [e.type for e in events if e.type is EventType.EXPIRE] == [EventType.EXPIRE]
    assert world.quarantine.expire(T0 + timedelta(days=15, seconds=1)) == 0  # running twice is harmless


def test_malware_is_kept_thirty_days(world: World) -> None:
    (entry,) = world.quarantined(reason=Reason.MALWARE)
    assert entry.expires_at == T0 + timedelta(days=30)
    assert world.quarantine.expire(T0 + timedelta(days=29)) == 0


def test_monitor_mode_entries_cannot_be_released_or_previewed(world: World) -> None:
    (entry,) = world.quarantined(would_have=True)

    assert entry.would_have and entry.blob_key is None
    with pytest.raises(QuarantineError, match="monitor mode"):
        world.quarantine.release(entry.id, ADMIN)
    with pytest.raises(QuarantineError):
        world.quarantine.preview(entry.id, ADMIN)
    assert world.dispatched.calls == []


def test_release_without_a_queue_is_queued_later_by_the_server_job(world: World) -> None:
    (entry,) = world.quarantined()
    dispatcher, world.quarantine.dispatcher = world.quarantine.dispatcher, None
    world.quarantine.release(entry.id, "cli")
    world.quarantine.dispatcher = dispatcher

    assert world.dispatched.calls == []
    assert world.quarantine.dispatch_releases() == 1
    assert world.dispatched.calls[0][2] == ("bob@corp.example",)
    assert world.quarantine.dispatch_releases() == 0


def test_record_is_idempotent(world: World) -> None:
    (entry,) = world.quarantined()
    page = world.quarantine.list(QuarantineQuery(message_id=entry.message_id))
    assert len(page.items) == 1


def test_list_filters_and_pages(world: World) -> None:
    for n in range(5):
        world.quarantined(at=T0 + timedelta(minutes=n), subject=f"Offer number {n}")
    world.quarantined(reason=Reason.BULK, recipients=("carol@corp.example",), sender="news@list.example")

    first = world.quarantine.list(QuarantineQuery(reason=Reason.SPAM, limit=2))
    second = world.quarantine.list(QuarantineQuery(reason=Reason.SPAM, limit=2, cursor=first.next_cursor))
    third = world.quarantine.list(QuarantineQuery(reason=Reason.SPAM, limit=2, cursor=second.next_cursor))
    subjects = [e.subject for e in first.items + second.items + third.items]
    assert subjects == [f"Offer number {n}" for n in (4, 3, 2, 1, 0)]
    assert third.next_cursor is None
    assert [e.subject for e in world.quarantine.list(QuarantineQuery(subject="number 3")).items] == ["Offer number 3"]
    assert len(world.quarantine.list(QuarantineQuery(sender="@list.example")).items) == 1
    assert len(world.quarantine.list(QuarantineQuery(recipient="CAROL@corp.example")).items) == 1
    window = QuarantineQuery(start=T0 + timedelta(minutes=1), end=T0 + timedelta(minutes=2, seconds=1))
    assert len(world.quarantine.list(window).items) == 2


def test_a_user_lists_only_what_they_may_see(world: World) -> None:
    world.quarantined(recipients=("bob@corp.example",))
    world.quarantined(reason=Reason.MALWARE, recipients=("bob@corp.example",))
    world.quarantined(recipients=("carol@corp.example",))

    page = world.quarantine.list(QuarantineQuery(), user("bob@corp.example"))

    assert [(e.recipient, e.reason) for e in page.items] == [("bob@corp.example", Reason.SPAM)]
