"""Aggregates over time: messages by category per day, top recipients, top spam / malware senders,
DLP hits per day, monitor vs enforce (the queries are `store/reports.py`'s)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from mailwarden.api.deps import Rt, Staff, check_organisation
from mailwarden.api.errors import ApiError
from mailwarden.api.routes.messages import MessageOut, message_out
from mailwarden.model import Category
from mailwarden.model.accounts import Principal
from mailwarden.service.period_report import ReportTable, build_report, labels_for, period, plain_labels, to_csv
from mailwarden.service.provider_report import provider_report
from mailwarden.store.reports import SPAM_CATEGORIES, Reports, day_window

router = APIRouter(tags=["reports"])

MAX_DAYS = 366


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
    start, end = _days(start, end)
    window = day_window(start, end, organisation)
    reports = Reports(rt.db)
    return Report(
        start=start,
        end=end,
        organisation=organisation,
        by_category=[DayCount(day=d, category=c, count=n) for (d, c), n in sorted(reports.by_day(window).items())],
        top_recipients=_counts(reports.top_recipients(window, top)),
        top_spam_senders=_counts(reports.top_senders(window, SPAM_CATEGORIES, top)),
        top_malware_senders=_counts(reports.top_senders(window, (Category.MALWARE,), top)),
        dlp_hits=[DayTotal(day=d, count=n) for d, n in sorted(reports.dlp_messages_by_day(window).items())],
        modes=reports.by_mode(window),
    )


class TableOut(BaseModel):
    columns: list[str] = Field(description="Column keys: `day`, `total`, then categories, actions, …")
    rows: list[list[str | int]]


class PeriodReportOut(BaseModel):
    start: date
    end: date
    organisation: str | None
    messages: int
    refused_connections: int = Field(description="Connections refused by the connection filter (no message kept)")
    tables: dict[str, TableOut] = Field(
        description="totals; per UTC day: categories, actions (`would_have:<action>` in monitor mode), "
        "directions, refused (by reason); top_senders, top_recipients, top_sender_domains (of spam, phish "
        "and malware); refused_ips"
    )


Days = Annotated[int | None, Query(ge=1, le=MAX_DAYS, description="The last N UTC days (ending `end`)")]
Start = Annotated[date | None, Query(description="First UTC day")]
End = Annotated[date | None, Query(description="Last UTC day (default today)")]
Org = Annotated[str | None, Query(max_length=100)]
Top = Annotated[int, Query(ge=1, le=100)]


@router.get(
    "/reports/period",
    summary="The report over a chosen period: totals and per-day tables, refused connections",
)
def period_report(
    principal: Staff,
    rt: Rt,
    start: Start = None,
    end: End = None,
    days: Days = None,
    organisation: Org = None,
    top: Top = 10,
) -> PeriodReportOut:
    first, last = _period(start, end, days)
    report = build_report(rt.db, first, last, organisation=_scope(principal, organisation), top=top)
    return PeriodReportOut(
        start=report.start,
        end=report.end,
        organisation=report.organisation,
        messages=report.messages,
        refused_connections=report.refused,
        tables={name: TableOut(columns=t.columns, rows=t.rows) for name, t in report.tables.items()},
    )


@router.get(
    "/reports/period/{table}.csv",
    summary="One table of the period report as CSV (UTF-8 with BOM; formulas defused)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def period_report_csv(
    principal: Staff,
    rt: Rt,
    table: ReportTable,
    start: Start = None,
    end: End = None,
    days: Days = None,
    organisation: Org = None,
    top: Top = 10,
    lang: Annotated[str | None, Query(pattern="^(en|ja)$", description="Headings in words (default: keys)")] = None,
) -> Response:
    first, last = _period(start, end, days)
    report = build_report(rt.db, first, last, organisation=_scope(principal, organisation), top=top)
    labels = labels_for(lang) if lang else plain_labels
    name = f"report-{report.organisation or 'all'}-{first}-{last}-{table.value}.csv"
    return Response(
        to_csv(report.tables[table], labels),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _scope(principal: Principal, organisation: str | None) -> str | None:
    if principal.organisation is not None:
        if organisation is not None:
            check_organisation(principal, organisation)
        return principal.organisation
    return organisation


def _period(start: date | None, end: date | None, days: int | None) -> tuple[date, date]:
    if start is not None and days is not None:
        raise ApiError(422, "invalid", "days: give either start or days", field="days")
    try:
        return period(start, end, days, datetime.now(UTC).date())
    except ValueError as exc:
        name = str(exc).split(":", 1)[0]
        raise ApiError(422, "invalid", str(exc), field=name) from None


class ProviderReportOut(BaseModel):
    start: date
    end: date
    organisation: str | None
    matrix: dict[str, dict[str, int]] = Field(
        description="Journal copies per provider's category (outer key) and mailwarden's category (inner key), "
        "both on the scale clean / spam / bulk / phish / malware / unknown"
    )
    by_agreement: dict[str, int]
    agreement_percent: float | None = Field(description="Copies in the same category, of those both sides judged")
    missed_by_category: dict[str, int] = Field(
        description="Copies the provider passed that mailwarden judges spam, phish or malware"
    )
    missed: list[MessageOut] = Field(description="Those messages, newest first")
    missed_next_cursor: str | None = Field(
        description="More of them: GET /messages?agreement=provider_missed&cursor=… with the same window"
    )


@router.get(
    "/reports/provider",
    summary="What the provider missed: its verdicts of journal copies against mailwarden's, over UTC days",
)
def provider_report_route(
    principal: Staff,
    rt: Rt,
    start: Annotated[date | None, Query(description="First UTC day")] = None,
    end: Annotated[date | None, Query(description="Last UTC day (default today)")] = None,
    organisation: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=0, le=1000, description="Missed messages listed")] = 200,
) -> ProviderReportOut:
    if principal.organisation is not None:
        if organisation is not None:
            check_organisation(principal, organisation)
        organisation = principal.organisation
    start, end = _days(start, end)
    report = provider_report(Reports(rt.db), rt.history, day_window(start, end, organisation), limit=limit)
    return ProviderReportOut(
        start=start,
        end=end,
        organisation=organisation,
        matrix=report.matrix,
        by_agreement=report.by_agreement,
        agreement_percent=report.agreement_percent,
        missed_by_category=report.missed_by_category,
        missed=[message_out(m) for m in report.missed],
        missed_next_cursor=report.missed_more,
    )


def _days(start: date | None, end: date | None) -> tuple[date, date]:
    """The report's UTC days: the last 14 by default, at most MAX_DAYS."""
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=13)
    if start > end:
        raise ApiError(422, "invalid", "start: is after end", field="start")
    if (end - start).days >= MAX_DAYS:
        raise ApiError(422, "invalid", f"start: a report covers at most {MAX_DAYS} days", field="start")
    return start, end


def _counts(pairs: list[tuple[str, int]]) -> list[AddressCount]:
    return [AddressCount(address=address, count=n) for address, n in pairs]
