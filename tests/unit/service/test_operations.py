"""The operations service: an administrator retries a deferred job now or deletes it, each audited; a job
being delivered right now can be neither; a process that does not deliver only shows."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from mailwarden.errors import NotFoundError
from mailwarden.ids import new_id
from mailwarden.model.trace import EventRecord, EventType
from mailwarden.service.operations import JobBusyError, Operations, OperationsUnavailableError
from mailwarden.store.audit import AuditLog
from tests.unit.service.ops_world import Live, live
from tests.unit.store.records import build_record

__all__ = ["live"]  # the fixture, used by name


def _wait(condition: object, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_the_view_lists_a_deferred_job_with_its_last_reply_and_the_spool_backlog(live: Live) -> None:
    job = live.job()
    spool_queue = live.rt.config.paths.spool_dir / "queue"
    spool_queue.mkdir(parents=True, exist_ok=True)
    taken = datetime.now(UTC) - timedelta(minutes=12)
    (spool_queue / f"{new_id(taken)}.msg").write_bytes(b"x")
    view = live.ops.view()
    [entry] = view.jobs
    assert (entry.job.id, entry.deferred, entry.in_flight) == (job.id, True, False)
    assert entry.job.last_reply == "451 4.2.0 mailbox busy" and entry.job.recipients == ("b@corp.example",)
    assert view.spool_waiting == 1 and view.spool_oldest_at is not None
    assert abs((view.spool_oldest_at - taken).total_seconds()) < 1
    assert view.live


def test_retry_now_makes_the_job_due_wakes_the_agent_and_is_audited(live: Live) -> None:
    job = live.job(due_in=timedelta(hours=3))
    live.relay.accept = True
    retried = live.ops.retry(job.id, actor="admin")
    assert retried.next_attempt_at <= datetime.now(UTC)
    # the agent tried it at once (not in three hours) and, accepted, it left the queue
    assert _wait(lambda: job.id in live.relay.sent and live.queue.get(job.id) is None)
    [entry] = AuditLog(live.rt.db).newest(limit=1)
    assert (entry["actor"], entry["action"], entry["object"]) == ("admin", "queue.retry", f"queue/{job.id}")
    assert entry["before"]["recipients"] == ["b@corp.example"] and entry["before"]["attempts"] == 1


def test_delete_removes_the_job_for_good_and_is_audited(live: Live) -> None:
    job = live.job()
    live.ops.delete(job.id.lower(), actor="admin")  # ids are taken in either case
    assert live.queue.get(job.id) is None and live.ops.view().jobs == []
    assert live.queue.pending_count() == 0
    time.sleep(0.2)
    assert job.id not in live.relay.sent  # never attempted
    [entry] = AuditLog(live.rt.db).newest(limit=1)
    assert (entry["action"], entry["object"], entry["after"]) == ("queue.delete", f"queue/{job.id}", None)
    with pytest.raises(NotFoundError):
        live.ops.delete(job.id, actor="admin")


def test_a_job_being_delivered_can_be_neither_retried_nor_deleted(live: Live) -> None:
    live.relay.hold = threading.Event()
    job = live.job(due_in=timedelta(0))
    assert live.relay.started.wait(5)
    assert live.ops.view().jobs[0].in_flight
    with pytest.raises(JobBusyError):
        live.ops.delete(job.id, actor="admin")
    with pytest.raises(JobBusyError):
        live.ops.retry(job.id, actor="admin")
    live.relay.hold.set()  # the attempt ends (451): the job is deferred again, still queued, nothing audited
    assert _wait(lambda: not live.agent.is_in_flight(job.id))
    kept = live.queue.get(job.id)
    assert kept is not None and kept.attempts == 2
    assert [e for e in AuditLog(live.rt.db).newest() if e["action"].startswith("queue.")] == []


def test_another_organisations_job_is_not_there_for_a_bound_principal(live: Live) -> None:
    job = live.job()
    assert live.ops.view("other").jobs == []  # its message is in no organisation's history
    with pytest.raises(NotFoundError):
        live.ops.retry(job.id, actor="carl", organisation="other")
    assert live.queue.get(job.id) is not None


def test_a_process_that_does_not_deliver_shows_but_does_not_change(live: Live) -> None:
    job = live.job()
    paths = live.rt.config.paths
    alone = Operations(live.rt.db, spool_dir=paths.spool_dir, queue_dir=paths.queue_dir, queue_lifetime=timedelta(1))
    view = alone.view()
    assert [e.job.id for e in view.jobs] == [job.id] and not view.live
    with pytest.raises(OperationsUnavailableError):
        alone.retry(job.id, actor="admin")
    assert live.queue.get(job.id) is not None


def test_given_up_deliveries_are_listed_newest_first_expired_told_apart(live: Live) -> None:
    now = datetime.now(UTC)
    old = build_record(at=now - timedelta(days=20))  # failed long ago: outside the week
    refused = build_record(at=now - timedelta(hours=3), subject="Refused one")
    expired = build_record(at=now - timedelta(days=5), subject="Expired one")
    other = build_record(at=now - timedelta(hours=2), organisation="other")
    for record in (old, refused, expired, other):
        live.rt.history.record(record)
    live.rt.history.add_event(old.id, EventRecord(EventType.FAIL, "550 gone", at=now - timedelta(days=19)))
    live.rt.history.add_event(
        refused.id,
        EventRecord(EventType.FAIL, "user unknown", recipient="bob@corp.example", smtp_reply="550 5.1.1 no such user",
                    at=now - timedelta(hours=2)),
    )  # fmt: skip
    live.rt.history.add_event(
        expired.id,
        EventRecord(EventType.FAIL, "expired after 30 attempts: mailbox busy", recipient="bob@corp.example",
                    smtp_reply="451 4.2.0 busy", at=now - timedelta(hours=1)),
    )  # fmt: skip
    live.rt.history.add_event(other.id, EventRecord(EventType.FAIL, "x", at=now - timedelta(minutes=5)))
    live.rt.history.add_event(refused.id, EventRecord(EventType.DEFER, "later", at=now - timedelta(minutes=1)))
    view = live.ops.view("corp")
    assert [(g.subject, g.expired, g.reply) for g in view.given_up] == [
        ("Expired one", True, "451 4.2.0 busy"),
        ("Refused one", False, "550 5.1.1 no such user"),
    ]
    assert len(live.ops.view().given_up) == 3  # an unbound administrator sees every organisation's


def test_a_long_queue_lists_the_earliest_jobs_and_says_how_many_there_are(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mailwarden.service.operations.LISTED_JOBS", 2)
    jobs = [live.job(due_in=timedelta(hours=hours)) for hours in (3, 1, 2)]
    view = live.ops.view()
    assert [e.job.id for e in view.jobs] == [jobs[1].id, jobs[2].id] and view.jobs_total == 3


def test_a_job_id_that_is_not_one_is_not_found(live: Live) -> None:
    live.job()
    for job_id in ("../queue/x", "", "01TESTMESSAGE0000000000000/../x"):
        with pytest.raises(NotFoundError):
            live.ops.delete(job_id, actor="admin")
    assert len(live.ops.view().jobs) == 1
