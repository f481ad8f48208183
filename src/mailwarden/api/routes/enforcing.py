"""From monitor to enforce (docs/policy-replay.md): what enforcing would have done over the last days, the
per-domain mode switch, and policy replay of a candidate over the kept messages.

The preview reads history's recorded would-have actions; the replay scans kept messages with the
candidate and with the saved policy, synchronously and capped (`limit`), recording nothing. The domain
switch is one audited change (`domain.set_mode`), not a whole-document PUT, so it needs no ETag.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from mailwarden.api.deps import Admin, Rt, Staff, check_organisation
from mailwarden.api.errors import not_found
from mailwarden.api.routes.organisations import DomainOut, OrgName
from mailwarden.model.org import ConnectionMode
from mailwarden.service.replay import DEFAULT_LIMIT, MAX_LIMIT, candidate_document, replay_blocking
from mailwarden.service.runtime import Runtime
from mailwarden.store.preview import ENFORCED_ACTIONS, mode_preview

router = APIRouter(tags=["organisations"])

DomainName = Annotated[str, Path(pattern=r"^[A-Za-z0-9.-]{1,253}$", description="Accepted domain")]
MAX_DAYS = 366


class WouldHaveOut(BaseModel):
    message_id: str
    received_at: datetime
    sender: str
    subject: str
    category: str


class ActionPreviewOut(BaseModel):
    action: str
    messages: int
    by_category: dict[str, int]
    newest: list[WouldHaveOut] = Field(description="the newest messages of this action (links for the trace)")


class PreviewOut(BaseModel):
    organisation: str
    domain: str | None
    start: datetime
    monitored: int = Field(description="messages recorded in monitor mode in the window")
    actions: list[ActionPreviewOut]


class DomainModeIn(BaseModel):
    mode: ConnectionMode = Field(description="journal (monitor) or gateway / mailflow (enforce)")
    next_hop: str | None = Field(None, max_length=300, description="needed to enforce when the domain has none")


class ReplayVerdictOut(BaseModel):
    category: str
    action: str
    rules: list[str]


class ReplayChangeOut(BaseModel):
    message_id: str
    received_at: datetime
    sender: str
    subject: str
    before: ReplayVerdictOut = Field(description="with the saved policy, scanned now")
    after: ReplayVerdictOut = Field(description="with the candidate")


class TransitionOut(BaseModel):
    before: str
    after: str
    messages: int


class ReplayOut(BaseModel):
    organisation: str
    since: datetime | None
    until: datetime | None
    limit: int
    in_window: int = Field(description="kept messages in the window")
    scanned: int
    skipped: int = Field(description="kept copy gone meanwhile, or a scan that failed")
    capped: bool = Field(description="the window held more than `limit` messages: only the newest were replayed")
    transitions: list[TransitionOut]
    changes: list[ReplayChangeOut]


class ReplayIn(BaseModel):
    candidate: dict[str, Any] | list[Any] = Field(
        description="a whole organisation document, a policy mapping, or a list of rules"
    )
    since: datetime | None = Field(None, description="kept from (default: 7 days ago)")
    until: datetime | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="the newest messages of the window replayed")


def preview_out(rt: Runtime, name: str, days: int, domain: str | None) -> PreviewOut:
    start = datetime.now(UTC) - timedelta(days=days)
    p = mode_preview(rt.db, name, start, domain=domain)
    actions = [
        ActionPreviewOut(
            action=a.value,
            messages=p.total(a.value),
            by_category=p.counts.get(a.value, {}),
            newest=[WouldHaveOut(**vars_of(m)) for m in p.messages.get(a.value, [])],
        )
        for a in ENFORCED_ACTIONS
    ]
    return PreviewOut(organisation=name, domain=domain, start=start, monitored=p.monitored, actions=actions)


def vars_of(m: Any) -> dict[str, Any]:
    return {f: getattr(m, f) for f in ("message_id", "received_at", "sender", "subject", "category")}


@router.get(
    "/organisations/{name}/mode/preview",
    summary="What enforcing would have done over the last days (recorded would-have actions)",
)
def get_preview(
    principal: Staff,
    rt: Rt,
    name: OrgName,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 7,
    domain: Annotated[str | None, Query(max_length=253)] = None,
) -> PreviewOut:
    check_organisation(principal, name)
    org = rt.policies.get_organisation(name)
    if domain is not None and org.domain(domain) is None:
        raise not_found(f"organisation {name!r} has no domain {domain!r}")
    return preview_out(rt, name, days, domain.lower() if domain else None)


@router.put(
    "/organisations/{name}/domains/{domain}/mode",
    summary="Switch one domain between journal (monitor) and gateway or mailflow (enforce), audited",
)
def set_domain_mode(principal: Admin, rt: Rt, name: OrgName, domain: DomainName, body: DomainModeIn) -> DomainOut:
    check_organisation(principal, name)
    d = rt.policies.set_domain_mode(name, domain, body.mode, next_hop=body.next_hop, actor=principal.name)
    return DomainOut(name=d.name, mode=d.mode, next_hop=d.next_hop, require_tls=d.require_tls)


@router.post(
    "/organisations/{name}/policy/replay",
    summary="Run a candidate policy over the kept messages of a window: what it would change (nothing saved)",
)
async def replay(principal: Staff, rt: Rt, name: OrgName, body: ReplayIn) -> ReplayOut:
    check_organisation(principal, name)
    current = await run_in_threadpool(rt.policies.export_document, name)
    candidate = candidate_document(current, body.candidate)
    since = body.since or datetime.now(UTC) - timedelta(days=7)
    # scanning is CPU work: a thread of its own, so the event loop keeps serving SMTP and other requests
    report = await asyncio.to_thread(replay_blocking, rt, candidate, since=since, until=body.until, limit=body.limit)
    return ReplayOut.model_validate(report.as_dict())
