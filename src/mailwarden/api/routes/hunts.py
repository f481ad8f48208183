"""Retro-hunt: start a rescan or an indicator search over the kept messages, follow it, read what it
found; the size of what is kept (docs/retro-hunt.md).

A hunt started here is queued; `mailwarden serve` runs it in the background (one at a time, below live
scanning's CPU priority). Administrators and analysts may hunt; a principal bound to an organisation
hunts in its own messages only.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from mailwarden.api.deps import Rt, Staff, check_organisation
from mailwarden.api.errors import ApiError
from mailwarden.model.accounts import Principal
from mailwarden.service.hunt import new_hunt
from mailwarden.service.indicators import IndicatorError, Indicators
from mailwarden.store.hunts import Hunt, HuntKind, HuntState, HuntStore
from mailwarden.store.kept import KeptStore

router = APIRouter(tags=["hunts"])

HuntId = Annotated[str, Path(pattern=r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$", description="Hunt id (ULID)")]


class IndicatorsIn(BaseModel):
    senders: list[str] = Field(default_factory=list, max_length=100)
    domains: list[str] = Field(default_factory=list, max_length=100)
    urls: list[str] = Field(default_factory=list, max_length=100)
    sha256: list[str] = Field(default_factory=list, max_length=100)
    subject: str | None = Field(None, max_length=1000, description="RE2 pattern, case-insensitive")


class HuntIn(BaseModel):
    kind: Literal["rescan", "search"]
    since: datetime | None = Field(None, description="Messages kept from (default: everything kept)")
    until: datetime | None = None
    organisation: str | None = Field(None, max_length=100)
    indicators: IndicatorsIn | None = Field(None, description="A search's indicators (any one matches)")


class HuntOut(BaseModel):
    id: str
    kind: HuntKind
    organisation: str | None
    created_by: str
    created_at: datetime
    query: dict[str, Any]
    since: datetime | None
    until: datetime | None
    state: HuntState
    total: int
    done: int
    matched: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class ResultOut(BaseModel):
    message_id: str
    before_category: str
    before_action: str
    after_category: str | None = Field(description="A rescan's verdict today; null for a search")
    after_action: str | None
    matched: str = Field(description="What changed or matched, as the RESCAN event says it")


class HuntDetail(HuntOut):
    results: list[ResultOut]


class KeptOut(BaseModel):
    messages: int
    raw_bytes: int
    stored_bytes: int
    keep_days: float


@router.post("/hunts", status_code=202, summary="Start a rescan or an indicator search (runs in `serve`)")
def start_hunt(principal: Staff, rt: Rt, body: HuntIn) -> HuntOut:
    organisation = _organisation(principal, body.organisation)
    indicators = None
    if body.kind == "search":
        if body.indicators is None:
            raise ApiError(422, "invalid", "indicators: a search needs at least one", field="indicators")
        try:
            indicators = Indicators(
                senders=tuple(body.indicators.senders),
                domains=tuple(body.indicators.domains),
                urls=tuple(body.indicators.urls),
                sha256=tuple(body.indicators.sha256),
                subject=body.indicators.subject,
            )
        except IndicatorError as exc:
            raise ApiError(422, "invalid", str(exc), field="indicators") from None
    hunt = new_hunt(
        rt.db,
        HuntKind(body.kind),
        created_by=principal.name,
        organisation=organisation,
        since=body.since,
        until=body.until,
        indicators=indicators,
    )
    return _out(hunt)


@router.get("/hunts", summary="Hunts, newest first")
def list_hunts(principal: Staff, rt: Rt, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[HuntOut]:
    return [_out(h) for h in HuntStore(rt.db).newest(organisation=principal.organisation, limit=limit)]


@router.get("/hunts/{hunt_id}", summary="A hunt's progress and the messages it found")
def get_hunt(
    principal: Staff, rt: Rt, hunt_id: HuntId, limit: Annotated[int, Query(ge=1, le=1000)] = 1000
) -> HuntDetail:
    store = HuntStore(rt.db)
    hunt = _visible(principal, store, hunt_id)
    results = [ResultOut(**asdict(r)) for r in store.results(hunt.id, limit=limit)]
    return HuntDetail(**_out(hunt).model_dump(), results=results)


@router.post("/hunts/{hunt_id}/cancel", summary="Stop a queued or running hunt")
def cancel_hunt(principal: Staff, rt: Rt, hunt_id: HuntId) -> HuntOut:
    store = HuntStore(rt.db)
    hunt = _visible(principal, store, hunt_id)
    return _out(store.cancel(hunt.id))


@router.get("/kept", summary="Messages kept for retro-hunt: how many, their size as received and stored")
def kept(principal: Staff, rt: Rt) -> KeptOut:
    count, raw, stored = KeptStore(rt.db, rt.blobs).totals(principal.organisation)
    return KeptOut(messages=count, raw_bytes=raw, stored_bytes=stored, keep_days=rt.config.retention.keep_days)


def _organisation(principal: Principal, wanted: str | None) -> str | None:
    if principal.organisation is None:
        return wanted
    if wanted is not None:
        check_organisation(principal, wanted)
    return principal.organisation


def _visible(principal: Principal, store: HuntStore, hunt_id: str) -> Hunt:
    hunt = store.get(hunt_id.upper())
    if principal.organisation is not None and hunt.organisation != principal.organisation:
        raise ApiError(404, "not_found", f"hunt {hunt_id} does not exist")
    return hunt


def _out(h: Hunt) -> HuntOut:
    return HuntOut(
        id=h.id,
        kind=h.kind,
        organisation=h.organisation,
        created_by=h.created_by,
        created_at=h.created_at,
        query=h.query,
        since=h.since,
        until=h.until,
        state=h.state,
        total=h.total,
        done=h.done,
        matched=h.matched,
        started_at=h.started_at,
        finished_at=h.finished_at,
        error=h.error,
    )
