"""The dashboard's aggregates over a window of days, read from message history (`store/reports.py`).

DLP hits are counted by sensitive-information type over at most `DLP_SCAN_LIMIT` of the newest
messages whose verdict lists a match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mailwarden.model import Category, Direction
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
