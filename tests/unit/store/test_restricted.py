"""Restricted senders: restricting twice keeps the earliest start and the longest end; release is audited;
"for today" ends at the next midnight UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailwarden.errors import NotFoundError
from mailwarden.model.outbound import RestrictedSender
from mailwarden.service.outbound import next_midnight_utc
from mailwarden.store import Database
from mailwarden.store.audit import AuditLog
from mailwarden.store.outbox import Outbox
from mailwarden.store.restricted import RestrictedSenders

T = datetime(2026, 12, 7, 23, 59, 59, tzinfo=UTC)


def test_today_ends_at_the_next_midnight_utc() -> None:
    assert next_midnight_utc(T) == datetime(2026, 12, 8, tzinfo=UTC)
    assert next_midnight_utc(datetime(2026, 12, 8, tzinfo=UTC)) == datetime(2026, 12, 9, tzinfo=UTC)
    tokyo = datetime(2026, 12, 8, 8, 0, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert next_midnight_utc(tokyo) == datetime(2026, 12, 9, tzinfo=UTC)


def test_restrictions_merge_expire_and_release_with_an_audit_trail(db: Database) -> None:
    store = RestrictedSenders(db)
    store.restrict(
        RestrictedSender("corp", "Bob@Corp.Example", "over the hourly limit", T, T + timedelta(seconds=1)),
        actor="policy",
    )
    merged = store.restrict(
        RestrictedSender("corp", "bob@corp.example", "sent spam", T + timedelta(hours=1), None), actor="policy"
    )
    assert merged.since == T and merged.until is None and merged.reason == "sent spam"  # until released
    assert merged.active(T + timedelta(days=30))
    assert not RestrictedSender("corp", "x@corp.example", "r", T, T + timedelta(seconds=1)).active(
        T + timedelta(seconds=1)
    )
    assert not RestrictedSender("corp", "x@corp.example", "r", T, None, would_have=True).active(T)
    store.release("corp", "bob@corp.example", actor="ann")
    assert store.list() == []
    with pytest.raises(NotFoundError):
        store.release("corp", "bob@corp.example", actor="ann")
    actions = [(e["action"], e["actor"]) for e in AuditLog(db).newest()]
    assert actions[:3] == [("sender.release", "ann"), ("sender.restrict", "policy"), ("sender.restrict", "policy")]
    assert [r.kind for r in Outbox(db).after(0, limit=10)] == ["audit", "audit", "audit"]  # the feed sees each
