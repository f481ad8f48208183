"""Aggregates over time: messages by category per day, top recipients, top spam / malware senders,
DLP hits per day, monitor vs enforce. Every query is bounded by the id range of the window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from mailwarden.api.deps import Rt, Staff, check_organisation
from mailwarden.api.errors import ApiError
from mailwarden.ids import ceiling_id, floor_id
from mailwarden.model import Category
from mailwarden.store.schema import MessageRow, RecipientRow

router = APIRouter(tags=["reports"])

MAX_DAYS = 366
SPAM_CATEGORIES = (
    Category.SPAM.value,
    Category.HIGH_CONFIDENCE_SPAM.value,
    Category.BULK.value,
    Category.PHISH.value,
    Category.HIGH_CONFIDENCE_PHISH.value,
)


class DayCount(BaseModel):
    day: date
    category: str
    count: int


class AddressCount(BaseModel):
    address: str
    count: int


class DayTotal(BaseModel):
    day: date
    count: int


class Report(BaseModel):
    start: date
    end: date
    organisation: str | None
    by_category: list[DayCount]
    top_recipients: list[AddressCount]
    top_spam_senders: list[AddressCount]
    top_malware_senders: list[AddressCount]
    dlp_hits: list[DayTotal]
    modes: dict[str, int]


@router.get("/reports", summary="Aggregates over a range of UTC days (default: the last 14)")
def report(
    principal: Staff,
    rt: Rt,
    start: Annotated[date | None, Query(description="First UTC day")] = None,
    end: Annotated[date | None, Query(description="Last UTC day (default today)")] = None,
    organisation: Annotated[str | None, Query(max_length=100)] = None,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Report:
    if principal.organisation is not None:
        if organisation is not None:
            check_organisation(principal, organisation)
        organisation = principal.organisation
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=13)
    if start > end:
        raise ApiError(422, "invalid", "start: is after end", field="start")
    if (end - start).days >= MAX_DAYS:
        raise ApiError(422, "invalid", f"start: a report covers at most {MAX_DAYS} days", field="start")
    m = MessageRow
    window: list[ColumnElement[bool]] = [
        m.id >= floor_id(datetime(start.year, start.month, start.day, tzinfo=UTC)),
        m.id <= ceiling_id(datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1, microseconds=-1)),
    ]
    if organisation is not None:
        window.append(m.organisation == organisation)
    with rt.db.session() as session:
        by_day: dict[tuple[date, str], int] = {}
        modes: dict[str, int] = {"monitor": 0, "enforce": 0}
        dlp: dict[date, int] = {}
        dlp_filter = _has_dlp_matches(rt.db.dialect)
        for received, category, mode, dlp_hit in session.execute(
            select(m.received_at, m.category, m.mode, dlp_filter).where(*window)
        ):
            day = received.astimezone(UTC).date()
            by_day[(day, category)] = by_day.get((day, category), 0) + 1
            modes[mode] = modes.get(mode, 0) + 1
            if dlp_hit:
                dlp[day] = dlp.get(day, 0) + 1
        recipients = session.execute(
            select(RecipientRow.address, func.count())
            .join(m, m.id == RecipientRow.message_id)
            .where(*window)
            .group_by(RecipientRow.address)
            .order_by(func.count().desc(), RecipientRow.address)
            .limit(top)
        ).all()
        spam = _top_senders(session, window, SPAM_CATEGORIES, top)
        malware = _top_senders(session, window, (Category.MALWARE.value,), top)
    return Report(
        start=start,
        end=end,
        organisation=organisation,
        by_category=[DayCount(day=d, category=c, count=n) for (d, c), n in sorted(by_day.items())],
        top_recipients=[AddressCount(address=a, count=n) for a, n in recipients],
        top_spam_senders=spam,
        top_malware_senders=malware,
        dlp_hits=[DayTotal(day=d, count=n) for d, n in sorted(dlp.items())],
        modes=modes,
    )


def _has_dlp_matches(dialect: str) -> ColumnElement[bool]:
    """Whether the stored verdict lists DLP matches (JSON read in the database, not in Python)."""
    if dialect == "postgresql":
        return func.jsonb_array_length(MessageRow.verdict["dlp_matches"]) > 0
    return func.coalesce(func.json_array_length(MessageRow.verdict, "$.dlp_matches"), 0) > 0


def _top_senders(
    session: Session, window: list[ColumnElement[bool]], categories: tuple[str, ...], top: int
) -> list[AddressCount]:
    m = MessageRow
    rows = session.execute(
        select(m.sender, func.count())
        .where(*window, m.category.in_(categories))
        .group_by(m.sender)
        .order_by(func.count().desc(), m.sender)
        .limit(top)
    ).all()
    return [AddressCount(address=sender or "<>", count=n) for sender, n in rows]
