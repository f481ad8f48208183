"""The event feed for SIEMs that poll: OCSF events after a cursor, in feed order, page by page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from mailwarden.api.deps import Rt, Staff
from mailwarden.export.ocsf import render
from mailwarden.model.accounts import Principal
from mailwarden.store.outbox import Outbox, OutboxItem

router = APIRouter(tags=["events"])
MAX_EVENTS = 5000


class EventPage(BaseModel):
    events: list[dict[str, Any]]
    next_cursor: int  # pass as `after` for the next page; the same value again when nothing is new yet


def _organisation_of(item: OutboxItem) -> str | None:
    message = item.payload.get("message")
    return message.get("organisation") if isinstance(message, dict) else None


def _page(rt: Rt, principal: Principal, after: int, limit: int) -> EventPage:
    items = Outbox(rt.db).after(after, limit=limit)
    events: list[dict[str, Any]] = []
    cursor = after
    for item in items:
        if principal.organisation is not None and _organisation_of(item) != principal.organisation:
            cursor = item.seq  # an organisation's analyst sees its own mail only (admin changes are the admins')
            continue
        rendered = render(item.seq, item.uid, item.kind, item.at, item.payload)
        if events and len(events) + len(rendered) > limit:
            break  # a row's events stay together on one page
        cursor = item.seq
        events.extend(e.body for e in rendered)
    return EventPage(events=events, next_cursor=cursor)


@router.get("/events", summary="OCSF events after a cursor (oldest first), for SIEMs that poll")
async def list_events(
    principal: Staff,
    rt: Rt,
    after: Annotated[int, Query(ge=0, description="`next_cursor` of the previous page; 0 for the oldest kept")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS, description="events per page at most")] = 500,
) -> EventPage:
    return await run_in_threadpool(_page, rt, principal, after, limit)
