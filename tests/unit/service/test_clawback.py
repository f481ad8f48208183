"""Clawback jobs through the service, with mailboxes in memory behind the connector interface: who may do
what, the automatic policy, idempotence, a restart in the middle, the timeline and the audit log."""

from __future__ import annotations

import types
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr
from sqlalchemy import select

from mailwarden.clawback import registry
from mailwarden.errors import ConfigError
from mailwarden.model import Category, Mode, Policy
from mailwarden.model.accounts import Principal, Role
from mailwarden.model.clawback import ClawbackAction, ItemStatus, JobKind
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.quarantine import PermissionDeniedError
from mailwarden.model.trace import EventType, MessageRecord
from mailwarden.service.clawback import Clawback, ClawbackError
from mailwarden.service.config import Config
from mailwarden.service.runtime import Runtime
from mailwarden.store import HistoryQuery
from mailwarden.store.schema import AuditRow, MailboxConnectorRow
from tests.unit.clawback.memory import MemoryMailboxes
from tests.unit.store.records import build_record

SECRET = "s3cret-Pa55word-never-shown"
ANN = Principal("ann", Role.ANALYST, None, None)
ROOT = Principal("root", Role.ADMIN, None, None)
USER = Principal("bob", Role.USER, "bob@corp.example", "corp")


class _Settings(BaseModel):
    label: str = "memory"


class _Secret(BaseModel):
    password: SecretStr


@dataclass
class World:
    rt: Runtime
    clawback: Clawback
    boxes: MemoryMailboxes

    def record(self, **kw: object) -> MessageRecord:
        now = datetime.now(UTC) - timedelta(minutes=5)
        rec = build_record(at=now, mode=Mode.MONITOR, source="journal", **kw)  # type: ignore[arg-type]
        self.rt.history.record(rec)
        return rec


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    boxes = MemoryMailboxes()
    module = types.SimpleNamespace(KIND="imap", Settings=_Settings, Secret=_Secret, connect=lambda s, k: boxes)
    monkeypatch.setattr(registry, "_module", lambda kind: module)
    rt = Runtime(Config.model_validate({"paths": {"data_dir": str(tmp_path)}}))
    rt.db.migrate()
    doc = {"name": "corp", "domains": [{"name": "corp.example"}, {"name": "corp2.example"}]}
    rt.policies.import_document(parse_organisation_document(doc), actor="test")
    c = Clawback(rt)
    c.put_connector(
        "corp", "mail", kind="imap", domains=["corp.example"], settings={}, secret={"password": SECRET}, actor="root"
    )
    yield World(rt, c, boxes)
    rt.close()


async def drain(c: Clawback) -> None:
    while await c.run_round():
        pass


def test_the_secret_is_sealed_at_rest_and_in_no_listing_or_audit(world: World) -> None:
    with world.rt.db.session() as s:
        stored = s.scalars(select(MailboxConnectorRow.secret)).one()
        audit = [str((a.before, a.after)) for a in s.scalars(select(AuditRow))]
    assert SECRET not in stored and SECRET not in str(world.clawback.list_connectors())
    assert not [a for a in audit if SECRET in a]
    assert world.clawback.box.open(stored) == {"password": SECRET}


def test_a_domain_of_another_organisation_is_refused(world: World) -> None:
    with pytest.raises(ClawbackError, match="not a domain of organisation corp"):
        world.clawback.put_connector(
            "corp", "x", kind="imap", domains=["evil.example"], settings={}, secret={"password": "p"}, actor="root"
        )


async def test_one_message_every_recipient_status_and_timeline(world: World) -> None:
    mid = "<m1@bad.example>"
    rec = world.record(internet_message_id=mid, recipients=("bob@corp.example", "eve@corp.example", "x@corp2.example"))
    world.boxes.put("bob@corp.example", mid)
    world.boxes.boxes["eve@corp.example"] = {}
    job = world.clawback.message(rec.id, ANN, action=ClawbackAction.TRASH, reason="reported by bob")
    assert job.kind is JobKind.MESSAGE and job.total == 3 and job.running
    await drain(world.clawback)
    done = world.clawback.jobs.job(job.id)
    assert not done.running
    status = {i.recipient: i.status for i in done.items}
    assert status == {
        "bob@corp.example": ItemStatus.MOVED,
        "eve@corp.example": ItemStatus.NOT_FOUND,
        "x@corp2.example": ItemStatus.NO_CONNECTOR,  # the connector serves corp.example only
    }
    events = world.rt.history.get(rec.id).events
    assert any(e.type is EventType.CLAWBACK and e.recipient == "bob@corp.example" for e in events)
    assert any(e.type is EventType.CLAWBACK_FAILED and e.recipient == "x@corp2.example" for e in events)
    with world.rt.db.session() as s:
        audit = s.scalars(select(AuditRow).where(AuditRow.action == "clawback.trash")).one()
    assert audit.actor == "ann" and audit.after is not None and audit.after["reason"] == "reported by bob"


async def test_twice_finds_nothing_more_to_do_and_restore_brings_it_back(world: World) -> None:
    mid = "<m2@bad.example>"
    rec = world.record(internet_message_id=mid, recipients=("bob@corp.example",))
    world.boxes.put("bob@corp.example", mid)
    for _ in range(2):
        job = world.clawback.message(rec.id, ANN, action=ClawbackAction.RECOVERABLE)
        await drain(world.clawback)
    assert [i.status for i in world.clawback.jobs.job(job.id).items] == [ItemStatus.ALREADY]
    job = world.clawback.message(rec.id, ANN, action=ClawbackAction.RESTORE)
    await drain(world.clawback)
    assert [i.status for i in world.clawback.jobs.job(job.id).items] == [ItemStatus.RESTORED]
    assert world.boxes.folders("bob@corp.example", mid) == ["inbox"]


def test_roles(world: World) -> None:
    rec = world.record(internet_message_id="<m3@bad.example>")
    with pytest.raises(PermissionDeniedError, match="only administrators"):
        world.clawback.message(rec.id, ANN, action=ClawbackAction.DELETE)
    with pytest.raises(PermissionDeniedError):
        world.clawback.message(rec.id, USER, action=ClawbackAction.TRASH)
    assert world.clawback.message(rec.id, ROOT, action=ClawbackAction.DELETE).total == 1


def test_a_message_without_message_id_says_why(world: World) -> None:
    rec = world.record(internet_message_id=None)
    with pytest.raises(ClawbackError, match="no Message-ID"):
        world.clawback.message(rec.id, ANN)


def test_a_preview_covers_every_page_and_leaves_the_callers_search_as_it_was(world: World) -> None:
    """The console shows the search's page and previews the campaign from the same query object."""
    for n in range(3):
        world.record(internet_message_id=f"<p{n}@bad.example>", sender="pages@bad.example")
    query = HistoryQuery(sender="pages@bad.example", limit=2)
    first = world.rt.history.search(query)
    query.cursor = first.next_cursor  # the analyst is on the second page
    assert world.clawback.preview(query, ANN).messages == 3
    assert (query.limit, query.cursor, query.organisation) == (2, first.next_cursor, None)


async def test_a_restart_mid_campaign_loses_no_recipient_and_repeats_none(world: World) -> None:
    mid = "<wave@bad.example>"
    recipients = tuple(f"u{i}@corp.example" for i in range(30))
    for r in recipients:
        world.boxes.put(r, mid)
    world.record(internet_message_id=mid, sender="wave@bad.example", recipients=recipients)
    preview = world.clawback.preview(HistoryQuery(sender="wave@bad.example"), ANN)
    assert preview.messages == 1 and len(preview.recipients) == 30
    job = world.clawback.campaign(
        HistoryQuery(sender="wave@bad.example"), ANN, action=ClawbackAction.TRASH, reason="wave", expect=1
    )
    # a worker takes 10 recipients and dies before reporting: they come back once its lease has run out
    lost = world.clawback.jobs.claim(limit=10, lease_seconds=60)
    assert len(lost) == 10
    await drain(world.clawback)
    assert world.clawback.jobs.job(job.id).running  # the 10 are still leased
    later = datetime.now(UTC) + timedelta(seconds=61)
    again = world.clawback.jobs.claim(limit=100, lease_seconds=60, now=later)
    assert sorted(c.item_id for c in again) == sorted(c.item_id for c in lost)
    moves = [c for c in world.boxes.calls if c.startswith("move")]
    assert len(moves) == 20  # none of the finished 20 was taken again


def test_a_campaign_whose_count_changed_does_not_start(world: World) -> None:
    world.record(internet_message_id="<a@bad.example>", sender="wave@bad.example")
    with pytest.raises(ClawbackError, match="now finds 1 messages, not 5"):
        world.clawback.campaign(
            HistoryQuery(sender="wave@bad.example"), ANN, action=ClawbackAction.TRASH, reason="", expect=5
        )


def test_the_policy_claws_back_malware_once_and_leaves_the_rest(world: World) -> None:
    malware = world.record(internet_message_id="<mal@bad.example>", category=Category.MALWARE)
    spam = world.record(internet_message_id="<spam@bad.example>", category=Category.SPAM)
    enforced = world.record(internet_message_id="<e@bad.example>", category=Category.MALWARE)
    enforced = replace(enforced, mode=Mode.ENFORCE)
    old = world.record(internet_message_id="<old@bad.example>", category=Category.MALWARE)
    old = replace(old, received_at=datetime.now(UTC) - timedelta(hours=49))
    made = world.clawback.auto([malware, spam, enforced, old], lambda org: Policy())
    assert len(made) == 1
    assert world.clawback.auto([malware], lambda org: Policy()) == []  # a replay makes no second job
    job = world.clawback.jobs.job(made[0])
    assert job.kind is JobKind.AUTO and job.action is ClawbackAction.RECOVERABLE and job.requested_by == "policy"


def test_a_wrong_key_is_a_clear_error(world: World, tmp_path: Path) -> None:
    other = Clawback(Runtime(Config.model_validate({"paths": {"data_dir": str(tmp_path / "elsewhere")}})))
    sealed = world.clawback.connectors.get("corp", "mail").sealed_secret
    with pytest.raises(ConfigError, match="cannot be opened with the configured clawback key"):
        other.box.open(sealed)
    other.rt.close()
