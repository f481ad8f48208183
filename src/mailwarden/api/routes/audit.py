"""The audit log: who changed what, with the object's state before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from mailwarden.api.deps import Admin, Rt
from mailwarden.store.schema import AuditRow

router = APIRouter(tags=["audit"])


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: int | None


@router.get("/audit", summary="Audit log, newest first (keyset paging by id)")
def audit_log(
    _principal: Admin,
    rt: Rt,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    object: Annotated[str | None, Query(max_length=300, description="e.g. organisation:corp, user:ann")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> AuditPage:
    stmt = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit + 1)
    if actor is not None:
        stmt = stmt.where(AuditRow.actor == actor)
    if object is not None:
        stmt = stmt.where(AuditRow.object == object)
    if cursor is not None:
        stmt = stmt.where(AuditRow.id < cursor)
    with rt.db.session() as session:
        rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(
        items=[
            AuditEntry(
                id=r.id, at=r.at, actor=r.actor, action=r.action, object=r.object, before=r.before, after=r.after
            )
            for r in rows
        ],
        next_cursor=rows[-1].id if more else None,
    )
