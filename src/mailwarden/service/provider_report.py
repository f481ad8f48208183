"""What the provider missed: the mail provider's verdicts of journal copies against mailwarden's, over a window.

One use case for the console's report page, its dashboard panel and the API: the agreement matrix by
category (the provider's × mailwarden's, on one scale: `model.provider`), the headline counts, and the
messages the provider passed that mailwarden judges spam, phish or malware (newest first, from the trace's
`provider_missed` filter, so each is one click from its message page and its clawback card).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailwarden.model import Category
from mailwarden.model.provider import COMPARED, FLAGGED, Agreement, ProviderCategory, agreement, ours
from mailwarden.store.history import History
from mailwarden.store.history_search import HistoryQuery, MessageSummary
from mailwarden.store.reports import Reports, Window

PROVIDER_SIDE = (*COMPARED, ProviderCategory.UNKNOWN)
OUR_SIDE = (*COMPARED, ProviderCategory.UNKNOWN)  # unknown: rule, internal, scan error
MISSED_LIMIT = 200


@dataclass
class ProviderReport:
    """The comparison over one window. `matrix[provider's category][mailwarden's category]` counts copies."""

    matrix: dict[str, dict[str, int]]
    by_agreement: dict[str, int]
    missed_by_category: dict[str, int]  # provider passed: mailwarden's spam / phish / malware
    missed: list[MessageSummary] = field(default_factory=list)  # newest first, at most `limit`
    missed_more: str | None = None  # the trace cursor after the last listed message

    @property
    def total(self) -> int:
        return sum(self.by_agreement.values())

    @property
    def compared(self) -> int:
        """Copies where both sides have a verdict to compare."""
        return self.total - self.by_agreement.get(Agreement.UNKNOWN.value, 0)

    @property
    def agreement_percent(self) -> float | None:
        if not self.compared:
            return None
        return 100.0 * self.by_agreement.get(Agreement.AGREE.value, 0) / self.compared

    @property
    def provider_missed(self) -> int:
        return self.by_agreement.get(Agreement.PROVIDER_MISSED.value, 0)

    @property
    def provider_only(self) -> int:
        return self.by_agreement.get(Agreement.PROVIDER_ONLY.value, 0)


def provider_report(reports: Reports, history: History, window: Window, *, limit: int = MISSED_LIMIT) -> ProviderReport:
    """The comparison over `window`; `limit` messages of the missed list (0: counts only, for the dashboard)."""
    matrix = {theirs.value: dict.fromkeys((c.value for c in OUR_SIDE), 0) for theirs in PROVIDER_SIDE}
    by_agreement = dict.fromkeys((a.value for a in Agreement), 0)
    missed_by_category = dict.fromkeys(sorted(c.value for c in FLAGGED), 0)
    for (theirs_value, category_value), count in reports.provider_matrix(window).items():
        try:
            theirs, category = ProviderCategory(theirs_value), Category(category_value)
        except ValueError:
            continue  # a value of another version: not comparable
        mine = ours(category)
        matrix[theirs.value][mine.value] += count
        verdict = agreement(theirs, category)
        by_agreement[verdict.value] += count
        if verdict is Agreement.PROVIDER_MISSED:
            missed_by_category[mine.value] += count
    report = ProviderReport(matrix, by_agreement, missed_by_category)
    if limit and report.provider_missed:
        page = history.search(
            HistoryQuery(
                start=window.start,
                end=window.end,
                organisation=window.organisation,
                agreement=Agreement.PROVIDER_MISSED,
                limit=limit,
            )
        )
        report.missed, report.missed_more = page.items, page.next_cursor
    return report
