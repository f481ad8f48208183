"""The operations views' one service: the spool backlog, the delivery queue, the deliveries given up,
and an administrator's retry and delete of a queued job (docs/console.md, "Operations").

Reading works in any process: the spool and the queue are listed read-only from their directories.
Changing a job does not: only the process that delivers (`mailwarden serve`, which hands its delivery
agent in) may retry or delete, and it asks its agent to, on the agent's own event loop, so that a job
never changes under an attempt and the agent stays the only one that delivers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailwarden.deliver import DeliveryAgent, DeliveryJob, JobInFlightError, QueuedJob, list_queued, read_queued
from mailwarden.errors import MailwardenError, NotFoundError
from mailwarden.ids import id_time
from mailwarden.ingest.spool import waiting_ids
from mailwarden.service.runtime import Runtime
from mailwarden.store.db import Database
from mailwarden.store.operations import GivenUp, audit_operation, given_up, organisations_of

GIVEN_UP_DAYS = 7
LISTED_JOBS = 500
ACTION_TIMEOUT = 30.0  # seconds a page waits for the agent to make a change


class OperationsUnavailableError(MailwardenError):
    """This process does not deliver (the console runs without `mailwarden serve`): nothing to change."""


class JobBusyError(MailwardenError):
    """The job is being delivered right now."""


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A queued job as the operations view shows it."""

    job: QueuedJob
    in_flight: bool
    organisation: str | None

    @property
    def deferred(self) -> bool:
        """Tried at least once and waiting for its next attempt."""
        return self.job.attempts > 0


@dataclass(frozen=True, slots=True)
class OperationsView:
    spool_waiting: int
    spool_oldest_at: datetime | None
    jobs: list[QueueEntry]
    jobs_total: int  # all queued jobs this principal may see (`jobs` lists at most LISTED_JOBS)
    given_up: list[GivenUp]
    given_up_since: datetime
    live: bool  # this process delivers: retry and delete work


def operations_for(rt: Runtime) -> Operations:
    """Read-only operations over the configured spool and queue; `mailwarden serve` hands its agent in."""
    paths, lifetime = rt.config.paths, rt.config.delivery.max_queue_lifetime
    return Operations(rt.db, spool_dir=paths.spool_dir, queue_dir=paths.queue_dir, queue_lifetime=lifetime)


class Operations:
    """Over one database and the spool and queue directories; `agent` and `loop` when this process delivers."""

    def __init__(
        self,
        db: Database,
        *,
        spool_dir: Path,
        queue_dir: Path,
        queue_lifetime: timedelta,
        agent: DeliveryAgent | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.spool_dir = spool_dir
        self.queue_dir = queue_dir
        self.queue_lifetime = queue_lifetime
        self.agent = agent
        self.loop = loop
        self.clock = clock

    @property
    def live(self) -> bool:
        return self.agent is not None and self.loop is not None

    # -- reading ---------------------------------------------------------------------------------

    def view(self, organisation: str | None = None, *, days: int = GIVEN_UP_DAYS) -> OperationsView:
        """What is waiting and what was given up. A principal bound to `organisation` sees only the jobs
        of its messages (the spool, not yet scanned, belongs to no organisation yet: only its count)."""
        waiting = waiting_ids(self.spool_dir)
        if self.agent is not None and organisation is None:
            # the agent's index orders the queue without reading it: only the listed jobs' headers are read,
            # so the page stays quick when an outage has queued a great many
            schedule = self.agent.queue.schedule()
            jobs, total = read_queued(self.queue_dir, [job_id for _, job_id in schedule[:LISTED_JOBS]]), len(schedule)
        else:
            jobs, total = list_queued(self.queue_dir, limit=10**9)
        owners = organisations_of(self.db, {job.message_id for job in jobs})
        visible = [
            QueueEntry(job, self.agent is not None and self.agent.is_in_flight(job.id), owners.get(job.message_id))
            for job in jobs
            if organisation is None or owners.get(job.message_id) == organisation
        ]
        if organisation is not None:
            total = len(visible)
        now = self.clock()
        since = now - timedelta(days=days)
        failed = given_up(self.db, since=since, received_since=since - self.queue_lifetime, organisation=organisation)
        return OperationsView(
            spool_waiting=len(waiting),
            spool_oldest_at=id_time(waiting[0]) if waiting else None,
            jobs=visible[:LISTED_JOBS],
            jobs_total=total,
            given_up=failed,
            given_up_since=since,
            live=self.live,
        )

    # -- changing (from a worker thread: a console handler or an API route's thread pool) ------------

    def retry(self, job_id: str, *, actor: str, organisation: str | None = None) -> QueuedJob:
        """Make the job due now and wake the agent; audited as `queue.retry`."""
        entry = self._entry(job_id, organisation)
        agent = self._agent()
        job = self._on_loop(agent.retry_now(entry.job.id))
        if job is None:
            raise NotFoundError(f"job {job_id} is no longer queued")
        self._audit(actor, "queue.retry", entry.job)
        return replace(entry.job, next_attempt_at=job.next_attempt_at)

    def delete(self, job_id: str, *, actor: str, organisation: str | None = None) -> QueuedJob:
        """Remove the job: it is never attempted again; audited as `queue.delete`."""
        entry = self._entry(job_id, organisation)
        agent = self._agent()
        job = self._on_loop(agent.delete(entry.job.id))
        if job is None:
            raise NotFoundError(f"job {job_id} is no longer queued")
        self._audit(actor, "queue.delete", entry.job)
        return entry.job

    def _entry(self, job_id: str, organisation: str | None) -> QueueEntry:
        found = read_queued(self.queue_dir, [job_id.strip().upper()])
        if found:
            job = found[0]
            owner = organisations_of(self.db, [job.message_id]).get(job.message_id)
            if organisation is None or owner == organisation:  # another organisation's job: as if not there
                return QueueEntry(job, self.agent is not None and self.agent.is_in_flight(job.id), owner)
        raise NotFoundError(f"no queued job {job_id}")

    def _agent(self) -> DeliveryAgent:
        if self.agent is None or self.loop is None:
            raise OperationsUnavailableError("only the process that delivers (mailwarden serve) changes the queue")
        return self.agent

    def _on_loop(self, work: Coroutine[Any, Any, DeliveryJob | None]) -> DeliveryJob | None:
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return future.result(ACTION_TIMEOUT)
        except JobInFlightError:
            raise JobBusyError("the job is being delivered right now; try again when the attempt ends") from None

    def _audit(self, actor: str, action: str, job: QueuedJob) -> None:
        before = {
            "message_id": job.message_id,
            "kind": job.kind.value,
            "mail_from": job.mail_from,
            "recipients": list(job.recipients),
            "route": str(job.route),
            "attempts": job.attempts,
            "next_attempt_at": job.next_attempt_at.isoformat(),
            "last_reply": job.last_reply,
        }
        audit_operation(self.db, at=self.clock(), actor=actor, action=action, obj=f"queue/{job.id}", before=before)
