"""What the provider missed: the report page (`/reports/provider`) and the dashboard's panel.

The numbers are `service/provider_report.py`'s: the agreement matrix of the provider's verdicts of journal
copies against mailwarden's over the chosen UTC days, and the messages the provider passed that mailwarden
judges spam, phish or malware, each linked to its message page's clawback card.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from fastapi.responses import Response

from mailwarden.console.web import Console, View
from mailwarden.model.provider import Agreement
from mailwarden.service.provider_report import OUR_SIDE, PROVIDER_SIDE, ProviderReport, provider_report
from mailwarden.service.runtime import Runtime
from mailwarden.store.reports import Reports, day_window

DEFAULT_DAYS = 14
MAX_DAYS = 366


@dataclass
class Panel:
    """The dashboard's headline numbers over its days."""

    report: ProviderReport
    query: str  # the report page's query string for the same days


def provider_panel(rt: Runtime, *, days: int, organisation: str | None) -> Panel | None:
    """The dashboard panel; None when no journal copy of the period carries a provider's verdict."""
    last = datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    report = provider_report(Reports(rt.db), rt.history, day_window(first, last, organisation), limit=0)
    if not report.total:
        return None
    return Panel(report, urlencode({"start": first.isoformat(), "end": last.isoformat()}))


class ProviderPages:
    def __init__(self, console: Console) -> None:
        self.c = console
        self.rt = console.rt

    def report(self, view: View) -> Response:
        error = None
        try:
            first, last = _days(view.arg("start"), view.arg("end"))
        except ValueError:
            first, last = _days("", "")
            error = view.t("provider.bad_days", days=MAX_DAYS)
        organisation = self.c.chosen_organisation(view)
        window = day_window(first, last, organisation)
        report = provider_report(Reports(self.rt.db), self.rt.history, window)
        days = {"start": first.isoformat(), "end": last.isoformat()}
        trace = {
            agreement.value: urlencode({**days, "agreement": agreement.value})
            for agreement in (Agreement.PROVIDER_MISSED, Agreement.PROVIDER_ONLY)
        }
        return self.c.render(
            view,
            "provider_report.html",
            report=report,
            start=days["start"],
            end=days["end"],
            organisation=organisation,
            organisations=self.c.organisations(view),
            provider_side=[c.value for c in PROVIDER_SIDE],
            our_side=[c.value for c in OUR_SIDE],
            trace=trace,
            error=error,
        )


def _days(start: str, end: str) -> tuple[date, date]:
    """The chosen UTC days (ISO dates), the last 14 by default; ValueError for a bad or too long range."""
    last = date.fromisoformat(end) if end else datetime.now(UTC).date()
    first = date.fromisoformat(start) if start else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last or (last - first).days >= MAX_DAYS:
        raise ValueError("bad range")
    return first, last
