"""The clawback API: who may claw back, restore, delete for good and manage connectors; secrets never
come back; a campaign is previewed and refused when its count changed; progress while a job runs."""

from __future__ import annotations

import types

import pytest
from pydantic import BaseModel, SecretStr

from mailwarden.clawback import registry
from mailwarden.ids import new_id
from mailwarden.model import Category, Mode
from mailwarden.model.trace import MessageRecord, RecipientRecord
from tests.unit.api.conftest import NOW, World
from tests.unit.clawback.memory import MemoryMailboxes
from tests.unit.store.records import build_record

SECRET = "app-secret-value-9f8e7d"
MID = "<api-wave@bad.example>"


class _Settings(BaseModel):
    host: str = "mail.corp.example"


class _Secret(BaseModel):
    password: SecretStr


@pytest.fixture
def boxes(monkeypatch: pytest.MonkeyPatch) -> MemoryMailboxes:
    b = MemoryMailboxes()
    module = types.SimpleNamespace(KIND="imap", Settings=_Settings, Secret=_Secret, connect=lambda s, k: b)
    monkeypatch.setattr(registry, "_module", lambda kind: module)
    return b


def _journaled(world: World, *recipients: str) -> MessageRecord:
    rec = build_record(
        at=NOW, mode=Mode.MONITOR, source="journal", internet_message_id=MID, sender="wave@bad.example",
        recipients=recipients, category=Category.PHISH,
    )  # fmt: skip
    rec.id = new_id(NOW)
    rec.recipients = [RecipientRecord(r, field="to") for r in recipients]
    world.rt.history.record(rec)
    return rec


def _connector(world: World) -> None:
    body = {"kind": "imap", "domains": ["corp.example"], "settings": {}, "secret": {"password": SECRET}}
    r = world.client.put("/api/v1/organisations/corp/connectors/mail", json=body, headers=world.as_("root"))
    assert r.status_code == 200, r.text


def test_connectors_are_admin_only_and_the_secret_never_comes_back(world: World, boxes: MemoryMailboxes) -> None:
    body = {"kind": "imap", "settings": {}, "secret": {"password": SECRET}}
    assert (
        world.client.put("/api/v1/organisations/corp/connectors/m", json=body, headers=world.as_("ana")).status_code
        == 403
    )
    _connector(world)
    listed = world.client.get("/api/v1/organisations/corp/connectors", headers=world.as_("root"))
    assert listed.status_code == 200 and listed.json()[0]["settings"] == {"host": "mail.corp.example"}
    audit = world.client.get("/api/v1/audit", headers=world.as_("root"))
    for response in (listed, audit):
        assert SECRET not in response.text


def test_roles_for_one_message(world: World, boxes: MemoryMailboxes) -> None:
    _connector(world)
    rec = _journaled(world, "alice@corp.example")
    url = f"/api/v1/messages/{rec.id}/clawback"
    assert world.client.post(url, json={}, headers=world.as_("alice")).status_code == 403
    assert world.client.post(url, json={"action": "delete"}, headers=world.as_("ana")).status_code == 403
    assert world.client.post(url, json={}, headers=world.as_("carl")).status_code == 404  # another organisation
    r = world.client.post(url, json={"action": "trash", "reason": "phish"}, headers=world.as_("ana"))
    assert r.status_code == 202 and r.json()["total"] == 1 and r.json()["running"]
    assert world.client.post(url, json={"action": "delete"}, headers=world.as_("root")).status_code == 202


def test_a_campaign_is_previewed_then_started_and_its_job_shows_each_recipient(
    world: World, boxes: MemoryMailboxes
) -> None:
    _connector(world)
    _journaled(world, "alice@corp.example", "bob@corp.example")
    filters = {"sender": "wave@bad.example", "action": "junk", "reason": "wave"}
    preview = world.client.post("/api/v1/clawback/campaigns/preview", json=filters, headers=world.as_("ana")).json()
    assert preview == {"messages": 1, "recipient_count": 2, "recipients": ["alice@corp.example", "bob@corp.example"]}
    stale = world.client.post("/api/v1/clawback/campaigns", json=filters | {"expect": 3}, headers=world.as_("ana"))
    assert stale.status_code == 422 and "not 3" in stale.text
    started = world.client.post("/api/v1/clawback/campaigns", json=filters | {"expect": 1}, headers=world.as_("ana"))
    assert started.status_code == 202
    job = world.client.get(f"/api/v1/clawback/jobs/{started.json()['id']}", headers=world.as_("ana")).json()
    assert job["kind"] == "campaign" and {i["status"] for i in job["items"]} == {"pending"}
    assert world.client.get(f"/api/v1/clawback/jobs/{job['id']}", headers=world.as_("carl")).status_code == 404
