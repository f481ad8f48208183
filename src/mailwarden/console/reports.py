"""The dashboard's aggregates over a window of days, read from message history (`store/reports.py`), and
the report page over a chosen period (`service/period_report.py`) with its CSV downloads.

DLP hits are counted by sensitive-information type over at most `DLP_SCAN_LIMIT` of the newest
messages whose verdict lists a match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from fastapi.responses import Response

from mailwarden.console import charts
from mailwarden.console.web import Console, Refusal, View
from mailwarden.model import Category, Direction
from mailwarden.service.period_report import (
    MAX_DAYS,
    TABLES,
    Labels,
    ReportTable,
    build_report,
    cells,
    column_label,
    header,
    period,
    to_csv,
)
from mailwarden.store.db import Database
from mailwarden.store.reports import SPAM_CATEGORIES, Reports, day_window

TOP = 10
DLP_SCAN_LIMIT = 20_000
# the order stacked bars are drawn in, bottom first
VERDICT_ORDER = tuple(Category)


@dataclass
class Dashboard:
    days: list[str]
    by_verdict: dict[str, list[int]]
    top_recipients: list[tuple[str, int]]
    top_spam_senders: list[tuple[str, int]]
    top_malware_senders: list[tuple[str, int]]
    dlp_hits: list[tuple[str, int]]
    modes: dict[str, int] = field(default_factory=dict)  # "monitor" / "enforce" → messages

    @property
    def total(self) -> int:
        return sum(sum(v) for v in self.by_verdict.values())


def build_dashboard(
    db: Database, *, days: int = 14, organisation: str | None = None, now: datetime | None = None
) -> Dashboard:
    """Everything the dashboard shows for the last `days` UTC days (today included)."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    day_list = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    window = day_window(first, organisation=organisation)
    reports = Reports(db)
    by_day: dict[str, dict[str, int]] = {}
    for (day, category), count in reports.by_day(window).items():
        by_day.setdefault(day.isoformat(), {})[category] = count
    applied = reports.by_applied(window)
    present = [c.value for c in VERDICT_ORDER if any(c.value in counts for counts in by_day.values())]
    return Dashboard(
        days=day_list,
        by_verdict={c: [by_day.get(d, {}).get(c, 0) for d in day_list] for c in present},
        top_recipients=reports.top_recipients(window, TOP, direction=Direction.INBOUND),
        top_spam_senders=reports.top_senders(window, SPAM_CATEGORIES, TOP),
        top_malware_senders=reports.top_senders(window, (Category.MALWARE,), TOP),
        dlp_hits=reports.dlp_hits_by_type(window, messages=DLP_SCAN_LIMIT).most_common(TOP),
        modes={"monitor": applied.get(False, 0), "enforce": applied.get(True, 0)},
    )


class ReportPages:
    """`/reports`: the report over a chosen period, and each of its tables as CSV (`/reports/<table>.csv`)."""

    def __init__(self, console: Console) -> None:
        self.c = console
        self.rt = console.rt

    def report(self, view: View) -> Response:
        error = None
        try:
            first, last, days = self._period(view)
        except ValueError:
            first, last = period(None, None, None, datetime.now(UTC).date())
            days = ""
            error = view.t("reports.bad_period", days=MAX_DAYS)
        organisation = self.c.chosen_organisation(view)
        report = build_report(self.rt.db, first, last, organisation=organisation)
        labels = _labels(view)
        query = {"start": first.isoformat(), "end": last.isoformat()}
        if organisation is not None:
            query["org"] = organisation
        series = report.tables[ReportTable.CATEGORIES]
        chart = charts.stacked_days(
            [str(row[0]) for row in series.rows],
            {c: [int(row[i]) for row in series.rows] for i, c in enumerate(series.columns[2:], start=2)},
            title=view.t("reports.table.categories"),
            label=lambda c: column_label(series, c, labels),
        )
        tables = [
            (name, header(table, labels), [cells(table, row, labels) for row in table.rows])
            for name, table in report.tables.items()
        ]
        return self.c.render(
            view,
            "reports.html",
            report=report,
            tables=tables,
            chart=chart,
            # "the last N days" leaves the dates empty, so the form shows which choice is in force
            start="" if days else query["start"],
            end="" if days else query["end"],
            days=days,
            organisation=organisation,
            organisations=self.c.organisations(view),
            query=urlencode(query),
            error=error,
        )

    def csv(self, view: View, table: str) -> Response:
        if table not in TABLES:
            raise Refusal(404, "not_found")
        try:
            first, last, _ = self._period(view)
        except ValueError:
            raise Refusal(400, "reports.bad_period_short") from None
        organisation = self.c.chosen_organisation(view)
        report = build_report(self.rt.db, first, last, organisation=organisation)
        name = f"report-{organisation or 'all'}-{first}-{last}-{table}.csv"
        return Response(
            to_csv(report.tables[table], _labels(view)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def _period(self, view: View) -> tuple[date, date, str]:
        """The chosen days from `start`/`end` or `days` (the last N days); ValueError for a bad choice."""
        days = view.arg("days")
        start, end = view.arg("start"), view.arg("end")
        first = date.fromisoformat(start) if start and not days else None
        last = date.fromisoformat(end) if end and not days else None
        first, last = period(first, last, int(days) if days else None, datetime.now(UTC).date())
        return first, last, days


def _labels(view: View) -> Labels:
    return lambda key: view.t(f"reports.{key}")
