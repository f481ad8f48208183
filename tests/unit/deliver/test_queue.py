from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from mailwarden.deliver import DeliveryConfig, DeliveryJob, DeliveryQueue, JobKind, Route, list_queued, parse_next_hop
from mailwarden.deliver.queue import FinishedEvent
from tests.unit.deliver.helpers import MESSAGE, make_job


def test_enqueued_job_reads_back_exactly(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path)
    job = make_job(2525, recipients=("bob@example.com", "carol@example.com"), message=MESSAGE + b"\xff 8-bit\r\n")
    queue.enqueue(job)
    assert queue.pending_count() == 1
    (read,) = queue.due(datetime.now(UTC))
    assert read == job
    assert read.message == MESSAGE + b"\xff 8-bit\r\n"


def test_due_returns_only_jobs_whose_time_has_come_earliest_first(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path)
    now = datetime.now(UTC)
    late, early, future = make_job(25), make_job(25), make_job(25)
    queue.enqueue(late)
    queue.reschedule(late, "451 later", now - timedelta(seconds=1))
    queue.enqueue(early)
    queue.reschedule(early, "451 later", now - timedelta(seconds=10))
    queue.enqueue(future)
    queue.reschedule(future, "451 later", now + timedelta(minutes=5))
    assert [j.id for j in queue.due(now)] == [early.id, late.id]
    assert queue.next_due_at() == now - timedelta(seconds=10)
    assert queue.next_due_at(exclude={early.id, late.id}) == now + timedelta(minutes=5)


def test_reschedule_counts_the_attempt_and_keeps_the_remaining_recipients(tmp_path: Path) -> None:
    from dataclasses import replace

    queue = DeliveryQueue(tmp_path)
    job = make_job(25, recipients=("a@example.com", "b@example.com"))
    queue.enqueue(job)
    later = datetime.now(UTC) + timedelta(minutes=1)
    queue.reschedule(replace(job, recipients=("b@example.com",)), "451 4.7.1 try later", later)
    stored = DeliveryQueue(tmp_path).get(job.id)
    assert stored is not None
    assert stored.attempts == 1
    assert stored.recipients == ("b@example.com",)
    assert stored.last_reply == "451 4.7.1 try later"
    assert stored.next_attempt_at == later


def test_queue_survives_a_restart(tmp_path: Path) -> None:
    first = DeliveryQueue(tmp_path)
    jobs = [make_job(25), make_job(26, mail_from="")]
    for job in jobs:
        first.enqueue(job)
    first.remove(jobs[0].id)
    again = DeliveryQueue(tmp_path)
    assert again.pending_count() == 1
    assert again.due(datetime.now(UTC)) == [jobs[1]]


def test_remove_is_idempotent(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path)
    job = make_job(25)
    queue.enqueue(job)
    queue.remove(job.id)
    queue.remove(job.id)
    assert queue.pending_count() == 0
    assert list(tmp_path.glob("*.job")) == []


def test_corrupt_job_file_is_moved_aside_with_its_reason(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path)
    good, damaged = make_job(25), make_job(25)
    queue.enqueue(good)
    queue.enqueue(damaged)
    path = tmp_path / f"{damaged.id}.job"
    path.write_bytes(path.read_bytes()[:-5])  # truncated, as by a full disk
    (tmp_path / "01JX0000000000000000000000.job").write_bytes(b"not json at all\n")

    restarted = DeliveryQueue(tmp_path)
    assert [j.id for j in restarted.due(datetime.now(UTC))] == [good.id]
    assert restarted.pending_count() == 1
    assert not path.exists()
    moved = sorted(p.name for p in (tmp_path / "corrupt").iterdir())
    assert len(moved) == 4  # two files, each with a .reason beside it
    reasons = "".join(p.read_text() for p in (tmp_path / "corrupt").glob("*.reason"))
    assert "header says" in reasons
    assert "not JSON" in reasons


def test_leftover_temporary_file_of_an_interrupted_write_is_removed(tmp_path: Path) -> None:
    (tmp_path / ".tmp-abc123").write_bytes(b"half a job")
    queue = DeliveryQueue(tmp_path)
    assert queue.pending_count() == 0
    assert not (tmp_path / ".tmp-abc123").exists()


def test_job_refuses_addresses_that_would_break_the_smtp_command() -> None:
    with pytest.raises(ValueError, match="envelope address"):
        make_job(25, recipients=("bob@example.com>\r\nRCPT TO:<eve@evil.test",))
    with pytest.raises(ValueError, match="at least one recipient"):
        make_job(25, recipients=())


def test_new_job_is_due_now_and_expires_after_its_lifetime() -> None:
    now = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
    job = DeliveryJob.create(
        message_id="M",
        mail_from="",
        recipients=["a@example.com"],
        route=Route(),
        message=b"x",
        lifetime=timedelta(days=2),
        kind=JobKind.DSN,
        now=now,
    )
    assert job.next_attempt_at == now
    assert job.expires_at == now + timedelta(days=2)
    assert job.attempts == 0


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("smarthost.example.net", "smarthost.example.net", 25),
        ("smarthost.example.net:587", "smarthost.example.net", 587),
        ("[192.0.2.1]:2525", "192.0.2.1", 2525),
        ("[2001:db8::1]:26", "2001:db8::1", 26),
        ("[192.0.2.1]", "192.0.2.1", 25),
    ],
)
def test_next_hop_strings(text: str, host: str, port: int) -> None:
    route = parse_next_hop(text, pool="high_risk")
    assert (route.host, route.port, route.pool) == (host, port, "high_risk")


@pytest.mark.parametrize("text", ["host:99999", "host:", "2001:db8::1", "[192.0.2.1", "bad host", "[x]y", ""])
def test_bad_next_hop_strings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="next hop"):
        parse_next_hop(text)


def test_config_defaults_and_validation() -> None:
    config = DeliveryConfig()
    assert config.pools == {"default": ""}
    assert config.first_retry == timedelta(minutes=1)
    assert config.max_retry == timedelta(hours=1)
    assert config.max_queue_lifetime == timedelta(days=2)
    with_pools = DeliveryConfig.model_validate(
        {"pools": {"default": "relay.example.net:25", "high_risk": "[192.0.2.9]:2525"}, "max_queue_lifetime": "P1D"}
    )
    assert with_pools.max_queue_lifetime == timedelta(days=1)
    for bad in ({"pools": {"high_risk": ""}}, {"pools": {"default": "a b"}}, {"unknown": 1}, {"first_retry": 0}):
        with pytest.raises(ValidationError):
            DeliveryConfig.model_validate(bad)


def test_a_held_job_is_invisible_to_the_agent_until_released(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path)
    job = make_job(2525)
    queue.hold(job)
    assert queue.due(datetime.now(UTC) + timedelta(days=1)) == [] and queue.pending_count() == 0
    assert DeliveryQueue(tmp_path).held() == {job.id: job.message_id}  # still there after a restart
    queue.release([job.id])
    assert [j.id for j in queue.due(datetime.now(UTC))] == [job.id]
    assert queue.held() == {}
    queue.release([job.id])  # released already (say, before a crash): nothing happens
    assert queue.pending_count() == 1


def test_held_jobs_of_a_message_never_recorded_are_discarded(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path)
    job = make_job(2525)
    queue.hold(job)
    queue.discard_held([job.id])
    assert DeliveryQueue(tmp_path).held() == {} and queue.pending_count() == 0


def test_a_finished_job_keeps_its_events_until_they_are_reported(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path)
    job = make_job(2525)
    queue.enqueue(job)
    event = FinishedEvent(job.message_id, "deliver", "bob@example.com", "delivered to 127.0.0.1", "250 ok")
    queue.finish(job.id, [event])
    # a crash now: the job is not sent again, its events are still to be reported
    again = DeliveryQueue(tmp_path)
    assert again.due(datetime.now(UTC) + timedelta(days=1)) == []
    assert again.finished() == {job.id: [event]} and again.pending_count() == 1
    again.forget(job.id)
    assert DeliveryQueue(tmp_path).finished() == {} and again.pending_count() == 0


def test_a_crash_between_the_finish_record_and_the_job_removal_does_not_send_it_again(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path)
    job = make_job(2525)
    queue.enqueue(job)
    (tmp_path / f"{job.id}.done").write_text("[]")  # the record was written, the job file not yet removed
    again = DeliveryQueue(tmp_path)
    assert again.due(datetime.now(UTC) + timedelta(days=1)) == []
    assert not (tmp_path / f"{job.id}.job").exists()


def test_a_listing_beside_the_owner_reads_headers_and_moves_nothing(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path)
    early = make_job(2525)
    late = make_job(2525, recipients=("carol@example.com",))
    queue.enqueue(late)
    queue.reschedule(late, "451 4.7.1 later", datetime.now(UTC) + timedelta(hours=1))
    queue.enqueue(early)
    damaged = tmp_path / "01ZZZZZZZZZZZZZZZZZZZZZZZZ.job"
    damaged.write_bytes(b"not a header\n")
    in_progress = tmp_path / ".tmp-01ZZZZZZZZZZZZZZZZZZZZZZZY.job"
    in_progress.write_bytes(b"half")
    jobs, total = list_queued(tmp_path)
    assert [(j.id, j.attempts, j.last_reply) for j in jobs] == [(early.id, 0, ""), (late.id, 1, "451 4.7.1 later")]
    assert total == 2 and jobs[1].recipients == ("carol@example.com",) and jobs[0].size == len(early.message)
    assert damaged.exists() and in_progress.exists()  # the owner's to deal with, not the reader's


def test_retry_at_moves_the_next_attempt_and_keeps_the_rest(tmp_path: Path) -> None:
    queue = DeliveryQueue(tmp_path)
    job = make_job(2525)
    queue.enqueue(job)
    later = queue.reschedule(job, "451 busy", datetime.now(UTC) + timedelta(hours=1))
    now = datetime.now(UTC)
    assert not queue.is_due(job.id, now)
    retried = queue.retry_at(job.id, now)
    assert retried is not None and (retried.attempts, retried.last_reply) == (later.attempts, "451 busy")
    assert queue.is_due(job.id, now) and DeliveryQueue(tmp_path).get(job.id) == retried  # on disk too
    assert queue.retry_at("01ZZZZZZZZZZZZZZZZZZZZZZZZ", now) is None
