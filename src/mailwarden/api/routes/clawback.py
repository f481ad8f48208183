"""Clawback: one message, a campaign from a trace search (previewed first), monitor-mode quarantine entries;
jobs with every recipient's status while they run; mailbox connectors (admins; secrets write-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from mailwarden.api.deps import Admin, Rt, Staff, check_organisation
from mailwarden.api.errors import ApiError, not_found
from mailwarden.api.routes.messages import MessageId
from mailwarden.model import Category
from mailwarden.model.accounts import Principal
from mailwarden.model.clawback import ClawbackAction, ConnectorInfo, ItemStatus, JobKind, JobView
from mailwarden.service.clawback import Clawback
from mailwarden.service.hunt import found_ids
from mailwarden.store.history_search import HistoryQuery
from mailwarden.store.hunts import HuntStore

router = APIRouter(tags=["clawback"])
JobId = Annotated[str, Path(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$", description="A clawback job id")]
ConnectorName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


def service(request: Request) -> Clawback:
    found = getattr(request.app.state, "clawback", None)
    if found is None:
        found = request.app.state.clawback = Clawback(request.app.state.rt)
    assert isinstance(found, Clawback)
    return found


class ClawbackIn(BaseModel):
    action: ClawbackAction = ClawbackAction.RECOVERABLE
    recipients: list[str] | None = Field(None, max_length=10_000, description="Only these recipients (default: all)")
    reason: str = Field("", max_length=2000)


class CampaignIn(BaseModel):
    start: datetime | None = None
    end: datetime | None = None
    sender: str | None = Field(None, max_length=320)
    subject: str | None = Field(None, max_length=500)
    message_id: str | None = Field(None, max_length=998)
    category: Category | None = None
    organisation: str | None = Field(None, max_length=100)
    action: ClawbackAction = ClawbackAction.RECOVERABLE
    reason: str = Field("", max_length=2000)
    expect: int | None = Field(None, description="The message count the preview showed; a different count refuses")

    def query(self) -> HistoryQuery:
        if not any((self.sender, self.subject, self.message_id, self.category)):
            raise ApiError(422, "invalid", "give at least one of sender, subject, message_id, category")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ApiError(422, "invalid", f"{name}: must carry a time zone", field=name)
        return HistoryQuery(
            start=self.start, end=self.end, sender=self.sender, subject=self.subject,
            internet_message_id=self.message_id, category=self.category, organisation=self.organisation,
        )  # fmt: skip


class QuarantineClawbackIn(BaseModel):
    entries: list[str] = Field(min_length=1, max_length=10_000)
    action: ClawbackAction = ClawbackAction.RECOVERABLE
    reason: str = Field("", max_length=2000)


class PreviewOut(BaseModel):
    messages: int
    recipient_count: int
    recipients: list[str] = Field(description="The first 1,000 recipients, sorted")


class ItemOut(BaseModel):
    message_id: str
    recipient: str
    status: ItemStatus
    detail: str
    attempts: int
    updated_at: datetime | None


class JobOut(BaseModel):
    id: str
    organisation: str | None
    kind: JobKind
    action: ClawbackAction
    requested_by: str
    reason: str
    created_at: datetime
    finished_at: datetime | None
    running: bool
    total: int
    done: int
    counts: dict[str, int]
    query: dict[str, Any]
    items: list[ItemOut]


def job_out(view: JobView) -> JobOut:
    return JobOut(
        id=view.id, organisation=view.organisation, kind=view.kind, action=view.action,
        requested_by=view.requested_by, reason=view.reason, created_at=view.created_at,
        finished_at=view.finished_at, running=view.running, total=view.total, done=view.done,
        counts={s.value: n for s, n in view.counts.items()}, query=dict(view.query),
        items=[ItemOut(message_id=i.message_id, recipient=i.recipient, status=i.status, detail=i.detail,
                       attempts=i.attempts, updated_at=i.updated_at) for i in view.items],
    )  # fmt: skip


def _scoped(principal: Principal, view: JobView) -> JobView:
    if principal.organisation is not None and view.organisation != principal.organisation:
        raise not_found(f"no clawback job {view.id}")
    return view


@router.post("/messages/{message_id}/clawback", status_code=202, summary="Claw back (or restore) one message")
async def claw_message(principal: Staff, request: Request, message_id: MessageId, body: ClawbackIn) -> JobOut:
    c = service(request)
    view = await run_in_threadpool(
        c.message, message_id.upper(), principal, action=body.action, recipients=body.recipients, reason=body.reason
    )
    return job_out(view)


@router.get("/messages/{message_id}/clawback", summary="The clawback jobs of one message, its recipients' status")
async def message_jobs(principal: Staff, rt: Rt, request: Request, message_id: MessageId) -> list[JobOut]:
    detail = await run_in_threadpool(rt.history.get, message_id.upper())
    if principal.organisation is not None and detail.summary.organisation != principal.organisation:
        raise not_found(f"message {message_id} is not in history")
    views = await run_in_threadpool(service(request).jobs.jobs, message_id=message_id.upper())
    return [job_out(v) for v in views]


@router.post("/clawback/campaigns/preview", summary="What a campaign would touch: message and recipient counts")
async def preview_campaign(principal: Staff, request: Request, body: CampaignIn) -> PreviewOut:
    if body.organisation is not None:
        check_organisation(principal, body.organisation)
    preview = await run_in_threadpool(service(request).preview, body.query(), principal)
    return PreviewOut(
        messages=preview.messages, recipient_count=len(preview.recipients), recipients=list(preview.recipients[:1000])
    )


@router.post("/clawback/campaigns", status_code=202, summary="Claw back every message a trace search finds")
async def start_campaign(principal: Staff, request: Request, body: CampaignIn) -> JobOut:
    if body.organisation is not None:
        check_organisation(principal, body.organisation)
    c = service(request)
    view = await run_in_threadpool(
        c.campaign, body.query(), principal, action=body.action, reason=body.reason, expect=body.expect
    )
    return job_out(view)


@router.post("/quarantine/clawback", status_code=202, summary="Claw back what monitor-mode entries stand for")
async def claw_quarantine(principal: Staff, request: Request, body: QuarantineClawbackIn) -> JobOut:
    c = service(request)
    view = await run_in_threadpool(c.quarantine, body.entries, principal, action=body.action, reason=body.reason)
    return job_out(view)


@router.post("/hunts/{hunt_id}/clawback", status_code=202, summary="Claw back every message a retro-hunt found")
async def claw_hunt(principal: Staff, rt: Rt, request: Request, hunt_id: JobId, body: ClawbackIn) -> JobOut:
    hunt = await run_in_threadpool(HuntStore(rt.db).get, hunt_id)
    if principal.organisation is not None and hunt.organisation != principal.organisation:
        raise not_found(f"no hunt {hunt_id}")
    found = await run_in_threadpool(found_ids, rt.db, hunt.id)
    view = await run_in_threadpool(
        service(request).messages, found, principal, action=body.action,
        reason=body.reason or f"hunt {hunt.id}", query={"hunt": hunt.id},
    )  # fmt: skip
    return job_out(view)


@router.get("/clawback/jobs", summary="Clawback jobs, newest first (counts per status)")
async def list_jobs(principal: Staff, request: Request, limit: int = 50) -> list[JobOut]:
    views = await run_in_threadpool(
        service(request).jobs.jobs, organisation=principal.organisation, limit=max(1, min(limit, 500))
    )
    return [job_out(v) for v in views]


@router.get("/clawback/jobs/{job_id}", summary="One job with every recipient's status (poll while it runs)")
async def get_job(principal: Staff, request: Request, job_id: JobId) -> JobOut:
    return job_out(_scoped(principal, await run_in_threadpool(service(request).jobs.job, job_id)))


# ---- connectors (admins) -----------------------------------------------------------------------
class ConnectorIn(BaseModel):
    kind: str = Field(pattern=r"^(graph|gmail|imap)$")
    domains: list[str] = Field(default_factory=list, max_length=1000)
    settings: dict[str, Any] = Field(default_factory=dict)
    secret: dict[str, Any] | None = Field(None, description="Write-only; absent keeps the stored secret")


class ConnectorOut(BaseModel):
    organisation: str
    name: str
    kind: str
    domains: list[str]
    settings: dict[str, Any]
    updated_at: datetime
    updated_by: str


class ConnectorTestIn(BaseModel):
    mailbox: str = Field(max_length=320)


def connector_out(i: ConnectorInfo) -> ConnectorOut:
    return ConnectorOut(
        organisation=i.organisation, name=i.name, kind=i.kind, domains=list(i.domains),
        settings=i.settings, updated_at=i.updated_at, updated_by=i.updated_by,
    )  # fmt: skip


@router.get("/organisations/{organisation}/connectors", summary="Mailbox connectors (never their secrets)")
async def list_connectors(principal: Admin, request: Request, organisation: str) -> list[ConnectorOut]:
    check_organisation(principal, organisation)
    return [connector_out(i) for i in await run_in_threadpool(service(request).list_connectors, organisation)]


@router.put("/organisations/{organisation}/connectors/{name}", summary="Add or change a mailbox connector")
async def put_connector(
    principal: Admin, request: Request, organisation: str, name: ConnectorName, body: ConnectorIn
) -> ConnectorOut:
    check_organisation(principal, organisation)
    info = await run_in_threadpool(
        service(request).put_connector, organisation, name, kind=body.kind, domains=body.domains,
        settings=body.settings, secret=body.secret, actor=principal.name,
    )  # fmt: skip
    return connector_out(info)


@router.delete("/organisations/{organisation}/connectors/{name}", status_code=204, summary="Remove a connector")
async def delete_connector(principal: Admin, request: Request, organisation: str, name: ConnectorName) -> None:
    check_organisation(principal, organisation)
    await run_in_threadpool(service(request).remove_connector, organisation, name, actor=principal.name)


@router.post("/organisations/{organisation}/connectors/{name}/test", summary="Sign in and search one mailbox")
async def test_connector(
    principal: Admin, request: Request, organisation: str, name: ConnectorName, body: ConnectorTestIn
) -> dict[str, str]:
    check_organisation(principal, organisation)
    return {"result": await service(request).test_connector(organisation, name, body.mailbox)}
