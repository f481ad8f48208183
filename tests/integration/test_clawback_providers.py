"""Clawback jobs end to end for each provider (a real Dovecot, the Graph fake, the Gmail fake), through the
service with its production connectors: one message, a campaign, monitor-mode quarantine entries, restore,
idempotence, a restart in the middle, throttling, and secrets that show up nowhere."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from structlog.testing import capture_logs

from mailwarden.ids import new_id
from mailwarden.model import Action, Category, Direction, Disposition, Mode, Verdict
from mailwarden.model.accounts import Principal, Role
from mailwarden.model.clawback import ClawbackAction, ItemStatus, JobView
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.quarantine import NewEntry, Reason
from mailwarden.model.trace import EventType, MessageRecord, RecipientRecord
from mailwarden.service.clawback import Clawback
from mailwarden.service.config import Config
from mailwarden.service.runtime import Runtime
from mailwarden.store import HistoryQuery
from mailwarden.store.quarantine import QuarantineStore
from mailwarden.store.schema import ClawbackItemRow
from tests.integration.mailboxes import DOMAIN, PROVIDERS, Mailboxes

ANN = Principal("ann", Role.ANALYST, None, None)


@dataclass
class World:
    rt: Runtime
    clawback: Clawback
    boxes: Mailboxes

    def journaled(
        self, rcpts: list[str], *, sender: str = "wave@bad.example", category: Category = Category.PHISH
    ) -> MessageRecord:
        """A journal copy recorded in history, its message delivered to the mailboxes."""
        mid = f"<{secrets.token_hex(8)}@bad.example>"
        self.boxes.put(rcpts, mid)
        now = datetime.now(UTC)
        record = MessageRecord(
            id=new_id(now), organisation="corp", received_at=now, direction=Direction.INBOUND, mode=Mode.MONITOR,
            source="journal", sender=sender, from_address=sender, subject="invoice", internet_message_id=mid,
            size=100, sha256="ab" * 32, client_ip=None, applied=False,
            verdict=Verdict(direction=Direction.INBOUND, category=category, disposition=Disposition(Action.QUARANTINE)),
            recipients=[RecipientRecord(r, field="to") for r in rcpts],
        )  # fmt: skip
        self.rt.history.record(record)
        return record

    async def run(self, job: JobView) -> JobView:
        return await self.clawback.until_done(job.id, patience=60)


@pytest.fixture(params=sorted(PROVIDERS), scope="module")
def boxes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailboxes]:
    with PROVIDERS[request.param](tmp_path_factory.mktemp(request.param), 12) as b:
        yield b


@pytest.fixture
def world(boxes: Mailboxes, tmp_path: Path) -> Iterator[World]:
    rt = Runtime(Config.model_validate({"paths": {"data_dir": str(tmp_path)}, "clawback": {"retry_first_seconds": 1}}))
    rt.db.migrate()
    doc = {"name": "corp", "domains": [{"name": DOMAIN}]}
    rt.policies.import_document(parse_organisation_document(doc), actor="test")
    c = Clawback(rt)
    c.put_connector(
        "corp", "mail", kind=boxes.kind, domains=[], settings=boxes.settings, secret=boxes.secret, actor="root"
    )
    yield World(rt, c, boxes)
    rt.close()


def statuses(job: JobView) -> dict[str, ItemStatus]:
    return {i.recipient: i.status for i in job.items}


async def test_one_message_restore_and_twice(world: World) -> None:
    a, b = world.boxes.addresses[:2]
    rec = world.journaled([a, b])
    mid = rec.internet_message_id
    assert mid is not None
    done = await world.run(world.clawback.message(rec.id, ANN, action=ClawbackAction.TRASH, reason="phish"))
    assert statuses(done) == {a: ItemStatus.MOVED, b: ItemStatus.MOVED}
    assert world.boxes.where(a, mid) == ["trash"] and world.boxes.where(b, mid) == ["trash"]
    again = await world.run(world.clawback.message(rec.id, ANN, action=ClawbackAction.TRASH))
    assert statuses(again) == {a: ItemStatus.ALREADY, b: ItemStatus.ALREADY}
    restored = await world.run(world.clawback.message(rec.id, ANN, action=ClawbackAction.RESTORE, recipients=[a]))
    assert statuses(restored) == {a: ItemStatus.RESTORED}
    assert world.boxes.where(a, mid) == ["inbox"] and world.boxes.where(b, mid) == ["trash"]
    timeline = world.rt.history.get(rec.id).events
    assert [e.recipient for e in timeline if e.type is EventType.RESTORE] == [a]
    assert {e.recipient for e in timeline if e.type is EventType.CLAWBACK} == {a, b}


async def test_a_campaign_from_a_trace_search(world: World) -> None:
    users = world.boxes.addresses[2:8]
    sender = f"campaign-{secrets.token_hex(3)}@bad.example"
    records = [world.journaled(users[i : i + 3], sender=sender) for i in (0, 3)]
    preview = world.clawback.preview(HistoryQuery(sender=sender), ANN)
    assert preview.messages == 2 and list(preview.recipients) == sorted(users)
    job = world.clawback.campaign(HistoryQuery(sender=sender), ANN, action=ClawbackAction.JUNK, reason="wave", expect=2)
    done = await world.run(job)
    assert set(statuses(done).values()) == {ItemStatus.MOVED} and done.total == 6
    for rec in records:
        assert rec.internet_message_id is not None
        for r in rec.recipients:
            assert world.boxes.where(r.address, rec.internet_message_id) == ["junk"]


async def test_monitor_mode_quarantine_entries(world: World) -> None:
    a, b = world.boxes.addresses[8:10]
    rec = world.journaled([a, b], category=Category.MALWARE)
    store = QuarantineStore(world.rt.db)
    store.record([
        NewEntry(message_id=rec.id, organisation="corp", recipient=r, reason=Reason.MALWARE, sender=rec.sender,
                 subject=rec.subject, received_at=rec.received_at, expires_at=rec.received_at + timedelta(days=30),
                 would_have=True, blob_key=None, sha256=rec.sha256, size=rec.size)
        for r in (a, b)
    ])  # fmt: skip
    entries = [e.id for e in store.of_message(rec.id)]
    done = await world.run(world.clawback.quarantine(entries[:1], ANN, action=ClawbackAction.RECOVERABLE, reason=""))
    assert list(statuses(done).values()) == [ItemStatus.MOVED]
    assert rec.internet_message_id is not None
    moved = [r for r in (a, b) if world.boxes.where(r, rec.internet_message_id) != ["inbox"]]
    assert len(moved) == 1


async def test_a_restart_mid_campaign_loses_no_recipient_and_repeats_none(world: World) -> None:
    users = world.boxes.addresses[:10]
    rec = world.journaled(users, sender=f"restart-{secrets.token_hex(3)}@bad.example")
    job = world.clawback.message(rec.id, ANN, action=ClawbackAction.TRASH)
    taken = world.clawback.jobs.claim(limit=4, lease_seconds=600)  # a server that dies holding four
    assert len(taken) == 4
    with world.rt.db.session() as s:  # ... and is restarted after its lease ran out
        s.execute(update(ClawbackItemRow).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))
    fresh = Clawback(world.rt)
    with capture_logs() as logs:
        done = await fresh.until_done(job.id, patience=60)
    await fresh.aclose()
    assert done.total == 10 and set(statuses(done).values()) == {ItemStatus.MOVED}
    assert rec.internet_message_id is not None
    assert all(world.boxes.where(u, rec.internet_message_id) == ["trash"] for u in users)
    assert not [e for e in logs if e.get("log_level") == "error"]


async def test_throttling_is_waited_out(world: World) -> None:
    """Graph and Gmail answer 429 with Retry-After (IMAP has no such answer: its busy server is a
    retryable error, tested with the connector)."""
    if world.boxes.throttle is None:
        assert world.boxes.kind == "imap"
        return
    a = world.boxes.addresses[10]
    rec = world.journaled([a])
    world.boxes.throttle(2, 1.0)
    done = await world.run(world.clawback.message(rec.id, ANN, action=ClawbackAction.TRASH))
    assert statuses(done) == {a: ItemStatus.MOVED}


async def test_the_secret_shows_up_nowhere(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    a = world.boxes.addresses[11]
    rec = world.journaled([a])
    with capture_logs() as logs:
        done = await world.run(world.clawback.message(rec.id, ANN, action=ClawbackAction.TRASH))
        await world.clawback.aclose()
    shown = [
        caplog.text, repr(logs), repr(done), repr(world.clawback.list_connectors()),
        repr(world.rt.audit.newest(limit=100)), repr(world.rt.history.get(rec.id)),
    ]  # fmt: skip
    assert all(world.boxes.secret_text not in text for text in shown)
    assert statuses(done) == {a: ItemStatus.MOVED}
