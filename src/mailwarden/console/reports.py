"""The dashboard's aggregates, read from message history over a window of days.

Each query is bounded by the message id range of the window (ids are time-ordered), so the primary key
serves it; counting is grouped in SQL. DLP hits live inside the stored verdict documents, so they
are read only from messages whose verdict lists a match, at most `DLP_SCAN_LIMIT` of them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from mailwarden.ids import floor_id
from mailwarden.model import Category
from mailwarden.store.db import Database
from mailwarden.store.schema import MessageRow, RecipientRow

TOP = 10
DLP_SCAN_LIMIT = 20_000
SPAM_CATEGORIES = (
    Category.SPAM,
    Category.HIGH_CONFIDENCE_SPAM,
    Category.BULK,
    Category.PHISH,
    Category.HIGH_CONFIDENCE_PHISH,
)
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
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    m = MessageRow
    window: list[ColumnElement[bool]] = [m.id >= floor_id(start)]
    if organisation is not None:
        window.append(m.organisation == organisation)
    day = _utc_day(db.dialect)
    with db.session() as session:
        by_day: dict[str, dict[str, int]] = {}
        for key, category, count in session.execute(
            select(day, m.category, func.count()).where(*window).group_by(day, m.category)
        ):
            by_day.setdefault(str(key)[:10], {})[category] = count
        recipients = session.execute(
            select(RecipientRow.address, func.count())
            .join(m, m.id == RecipientRow.message_id)
            .where(*window, m.direction == "inbound")
            .group_by(RecipientRow.address)
            .order_by(func.count().desc(), RecipientRow.address)
            .limit(TOP)
        ).all()
        spam = _top_senders(session, window, [c.value for c in SPAM_CATEGORIES])
        malware = _top_senders(session, window, [Category.MALWARE.value])
        modes = dict(session.execute(select(m.applied, func.count()).where(*window).group_by(m.applied)).all())
        dlp: Counter[str] = Counter()
        verdicts = session.scalars(
            select(m.verdict).where(*window, _has_dlp_matches(db.dialect)).order_by(m.id.desc()).limit(DLP_SCAN_LIMIT)
        )
        for verdict in verdicts:
            for match in verdict.get("dlp_matches") or ():
                dlp[str(match.get("type", "?"))] += 1
    present = [c.value for c in VERDICT_ORDER if any(c.value in counts for counts in by_day.values())]
    return Dashboard(
        days=day_list,
        by_verdict={c: [by_day.get(d, {}).get(c, 0) for d in day_list] for c in present},
        top_recipients=[(a, n) for a, n in recipients],
        top_spam_senders=spam,
        top_malware_senders=malware,
        dlp_hits=dlp.most_common(TOP),
        modes={"monitor": modes.get(False, 0), "enforce": modes.get(True, 0)},
    )


def _utc_day(dialect: str) -> ColumnElement[Any]:
    """The UTC calendar day of `received_at`, as SQL (SQLite stores UTC without a zone)."""
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", MessageRow.received_at))
    return func.date(MessageRow.received_at)


def _has_dlp_matches(dialect: str) -> ColumnElement[bool]:
    """The stored verdict lists at least one DLP match (so only those documents are read)."""
    if dialect == "postgresql":
        return func.jsonb_array_length(MessageRow.verdict.op("->")("dlp_matches")) > 0
    return func.json_array_length(MessageRow.verdict, "$.dlp_matches") > 0


def _top_senders(session: Session, window: list[ColumnElement[bool]], categories: list[str]) -> list[tuple[str, int]]:
    m = MessageRow
    rows = session.execute(
        select(m.sender, func.count())
        .where(*window, m.category.in_(categories))
        .group_by(m.sender)
        .order_by(func.count().desc(), m.sender)
        .limit(TOP)
    ).all()
    return [(sender or "<>", n) for sender, n in rows]
