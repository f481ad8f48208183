"""Operations: the spool backlog, the delivery queue and the deliveries given up; retry and delete a job.

Staff read; administrators retry and delete (audited). Only the process that delivers changes the queue:
under `mailwarden web` alone the reads work and the changes answer 503.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from mailwarden.api.deps import Admin, Rt, Staff
from mailwarden.api.errors import ApiError
from mailwarden.deliver import QueuedJob
from mailwarden.service.operations import (
    GIVEN_UP_DAYS,
    JobBusyError,
    Operations,
    OperationsUnavailableError,
    QueueEntry,
    operations_for,
)
from mailwarden.service.runtime import Runtime
from mailwarden.store.operations import GivenUp

router = APIRouter(tags=["operations"])


class JobOut(BaseModel):
    id: str
    message_id: str
    kind: str = Field(description="message, or dsn (a bounce to a sender)")
    mail_from: str
    recipients: list[str]
    route: str = Field(description="host:port of the next hop, or pool:NAME for the internet through a pool")
    pool: str
    attempts: int
    state: str = Field(description="waiting (never tried), deferred (tried, waiting to retry) or delivering")
    created_at: datetime
    next_attempt_at: datetime
    expires_at: datetime
    last_reply: str
    size: int


class SpoolOut(BaseModel):
    waiting: int = Field(description="messages taken and not scanned yet")
    oldest_at: datetime | None


class GivenUpOut(BaseModel):
    message_id: str
    recipient: str
    at: datetime
    expired: bool = Field(description="true: the queue lifetime ended; false: the next hop refused for good")
    detail: str
    reply: str


class OperationsOut(BaseModel):
    spool: SpoolOut
    queue: list[JobOut]
    queue_total: int
    given_up: list[GivenUpOut]
    given_up_since: datetime
    live: bool = Field(description="this process delivers: retry and delete are available")


def _operations(request: Request, rt: Runtime) -> Operations:
    found: Operations | None = getattr(request.app.state, "operations", None)
    if found is None:
        found = request.app.state.operations = operations_for(rt)
    return found


def _job(job: QueuedJob, *, in_flight: bool = False) -> JobOut:
    state = "delivering" if in_flight else "deferred" if job.attempts else "waiting"
    return JobOut(
        id=job.id, message_id=job.message_id, kind=job.kind.value, mail_from=job.mail_from,
        recipients=list(job.recipients), route=str(job.route), pool=job.route.pool, attempts=job.attempts,
        state=state, created_at=job.created_at, next_attempt_at=job.next_attempt_at, expires_at=job.expires_at,
        last_reply=job.last_reply, size=job.size,
    )  # fmt: skip


def _given_up(g: GivenUp) -> GivenUpOut:
    return GivenUpOut(message_id=g.message_id, recipient=g.recipient, at=g.at, expired=g.expired, detail=g.detail,
                      reply=g.reply)  # fmt: skip


def _entry(entry: QueueEntry) -> JobOut:
    return _job(entry.job, in_flight=entry.in_flight)


@router.get("/operations", summary="The spool backlog, the delivery queue and the deliveries given up")
async def overview(
    request: Request, principal: Staff, rt: Rt, days: int = Query(GIVEN_UP_DAYS, ge=1, le=90)
) -> OperationsOut:
    view = await run_in_threadpool(_operations(request, rt).view, principal.organisation, days=days)
    return OperationsOut(
        spool=SpoolOut(waiting=view.spool_waiting, oldest_at=view.spool_oldest_at),
        queue=[_entry(e) for e in view.jobs],
        queue_total=view.jobs_total,
        given_up=[_given_up(g) for g in view.given_up],
        given_up_since=view.given_up_since,
        live=view.live,
    )


@router.post("/operations/queue/{job_id}/retry", summary="Retry a queued job now (audited)")
async def retry(request: Request, principal: Admin, rt: Rt, job_id: str) -> JobOut:
    ops = _operations(request, rt)
    try:
        job = await run_in_threadpool(ops.retry, job_id, actor=principal.name, organisation=principal.organisation)
    except JobBusyError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except OperationsUnavailableError as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
    return _job(job)


@router.delete("/operations/queue/{job_id}", status_code=204, summary="Delete a queued job (audited)")
async def delete(request: Request, principal: Admin, rt: Rt, job_id: str) -> None:
    ops = _operations(request, rt)
    try:
        await run_in_threadpool(ops.delete, job_id, actor=principal.name, organisation=principal.organisation)
    except JobBusyError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except OperationsUnavailableError as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
