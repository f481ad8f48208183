"""The audit log: who changed what, with the object's state before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from mailwarden.api.deps import Admin, Rt

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
    page = rt.audit.page(limit=limit, actor=actor, obj=object, cursor=cursor)
    return AuditPage(items=[AuditEntry(**entry) for entry in page.items], next_cursor=page.next_cursor)
