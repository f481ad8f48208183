"""Restricted senders: who may not send outbound mail, why and until when; restrict and release (admins)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from mailwarden.api.deps import Admin, Rt, Staff, check_organisation
from mailwarden.model.outbound import RestrictedSender
from mailwarden.service.outbound import next_midnight_utc, release_sender
from mailwarden.store.restricted import RestrictedSenders

router = APIRouter(tags=["outbound"])


class RestrictedOut(BaseModel):
    organisation: str
    sender: str
    reason: str
    since: datetime
    until: datetime | None = Field(description="None: until an administrator releases the sender")
    would_have: bool = Field(description="monitor mode: recorded, never refused")


class RestrictIn(BaseModel):
    sender: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    reason: str = Field("restricted by an administrator", max_length=2000)
    today: bool = Field(False, description="until the next midnight UTC; else until released")


def _out(r: RestrictedSender) -> RestrictedOut:
    return RestrictedOut(organisation=r.organisation, sender=r.sender, reason=r.reason, since=r.since,
                         until=r.until, would_have=r.would_have)  # fmt: skip


@router.get("/restricted-senders", summary="Senders restricted from sending outbound mail")
async def list_restricted(principal: Staff, rt: Rt) -> list[RestrictedOut]:
    rows = await run_in_threadpool(RestrictedSenders(rt.db).list, principal.organisation)
    return [_out(r) for r in rows]


@router.post("/organisations/{organisation}/restricted-senders", status_code=201, summary="Restrict a sender")
async def restrict(principal: Admin, rt: Rt, organisation: str, body: RestrictIn) -> RestrictedOut:
    check_organisation(principal, organisation)
    await run_in_threadpool(rt.policies.get_organisation, organisation)
    now = datetime.now(UTC)
    entry = RestrictedSender(
        organisation, body.sender, body.reason, now, next_midnight_utc(now) if body.today else None
    )
    return _out(await run_in_threadpool(RestrictedSenders(rt.db).restrict, entry, actor=principal.name))


@router.delete("/organisations/{organisation}/restricted-senders/{sender}", status_code=204, summary="Release")
async def release(principal: Admin, rt: Rt, organisation: str, sender: str) -> None:
    check_organisation(principal, organisation)
    redis_url = rt.config.outbound.redis_url
    await run_in_threadpool(release_sender, rt.db, redis_url, organisation, sender, actor=principal.name)
