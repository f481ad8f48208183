"""The operations API: staff read the spool, the queue and what was given up; administrators retry a job
now or delete it (audited); a job in flight answers 409; a process that does not deliver answers 503."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from mailwarden.console import web_app
from mailwarden.deliver import DeliveryJob, DeliveryQueue, Route
from mailwarden.store.audit import AuditLog
from tests.unit.api.conftest import World
from tests.unit.service.ops_world import Live, live

__all__ = ["live"]  # the fixture, used by name


Api = tuple[TestClient, dict[str, dict[str, str]]]


@pytest.fixture
def api(live: Live) -> Iterator[Api]:
    app = web_app(live.rt, accounts=live.accounts)
    app.state.operations = live.ops
    tokens = {name: live.accounts.create_token(name, name="t", actor="test")[1] for name in ("admin", "analyst")}
    with TestClient(app) as client:
        yield client, {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}


def test_staff_read_the_queue_with_the_last_reply(live: Live, api: Api) -> None:
    client, auth = api
    job = live.job()
    body = client.get("/api/v1/operations", headers=auth["analyst"]).json()
    [queued] = body["queue"]
    assert (queued["id"], queued["state"], queued["attempts"]) == (job.id, "deferred", 1)
    assert queued["last_reply"] == "451 4.2.0 mailbox busy" and queued["route"] == "mx.corp.example:25"
    assert body["spool"] == {"waiting": 0, "oldest_at": None} and body["live"] is True


def test_an_admin_retries_and_deletes_an_analyst_may_not(live: Live, api: Api) -> None:
    client, auth = api
    job = live.job(due_in=timedelta(hours=2))
    refused = client.post(f"/api/v1/operations/queue/{job.id}/retry", headers=auth["analyst"])
    assert refused.status_code == 403
    retried = client.post(f"/api/v1/operations/queue/{job.id}/retry", headers=auth["admin"])
    assert retried.status_code == 200
    assert datetime.fromisoformat(retried.json()["next_attempt_at"]) <= datetime.now(UTC)
    other = live.job(due_in=timedelta(hours=2), message_id="01TESTMESSAGE0000000000001")
    assert client.delete(f"/api/v1/operations/queue/{other.id}", headers=auth["admin"]).status_code == 204
    assert live.queue.get(other.id) is None
    assert client.delete(f"/api/v1/operations/queue/{other.id}", headers=auth["admin"]).status_code == 404
    actions = [(e["actor"], e["action"]) for e in AuditLog(live.rt.db).newest(limit=2)]
    assert actions == [("admin", "queue.delete"), ("admin", "queue.retry")]


def test_a_job_in_flight_answers_409(live: Live, api: Api) -> None:
    client, auth = api
    live.relay.hold = threading.Event()
    job = live.job(due_in=timedelta(0))
    assert live.relay.started.wait(5)
    answer = client.delete(f"/api/v1/operations/queue/{job.id}", headers=auth["admin"])
    assert answer.status_code == 409 and "being delivered" in answer.json()["message"]
    assert client.get("/api/v1/operations", headers=auth["admin"]).json()["queue"][0]["state"] == "delivering"


def test_without_the_delivering_process_reads_work_and_changes_answer_503(world: World) -> None:
    body = world.client.get("/api/v1/operations", headers=world.as_("root")).json()
    assert body["live"] is False and body["queue"] == []
    answer = world.client.post("/api/v1/operations/queue/01ABCDEFGHJKMNPQRSTVWXYZ00/retry", headers=world.as_("root"))
    assert answer.status_code == 404  # nothing queued by that id
    assert world.client.get("/api/v1/operations", headers=world.as_("bob")).status_code == 403
    job = DeliveryJob.create(message_id="01TESTMESSAGE0000000000000", mail_from="", recipients=["x@corp.example"],
                             route=Route(), message=b"x", lifetime=timedelta(days=1))  # fmt: skip
    DeliveryQueue(world.rt.config.paths.queue_dir).enqueue(job)
    assert [j["id"] for j in world.client.get("/api/v1/operations", headers=world.as_("root")).json()["queue"]] == [
        job.id
    ]
    answer = world.client.post(f"/api/v1/operations/queue/{job.id}/retry", headers=world.as_("root"))
    assert answer.status_code == 503 and "mailwarden serve" in answer.json()["message"]
