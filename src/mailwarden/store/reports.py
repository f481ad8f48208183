"""Aggregates over message history for the reports API and the console's dashboard.

Every query is bounded by the message id range of its window (ids are time-ordered), so the primary key
serves it, and counts are grouped in SQL. DLP hits live inside the stored verdict documents: only
messages whose verdict lists a match are read for them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select

from mailwarden.ids import ceiling_id, floor_id
from mailwarden.model import Category, Direction
from mailwarden.store.db import Database
from mailwarden.store.schema import MessageRow, RecipientRow

SPAM_CATEGORIES = (
    Category.SPAM,
    Category.HIGH_CONFIDENCE_SPAM,
    Category.BULK,
    Category.PHISH,
    Category.HIGH_CONFIDENCE_PHISH,
)


@dataclass(frozen=True, slots=True)
class Window:
    """Messages received from `start` (to `end`, when given; both tz-aware), of one organisation or all."""

    start: datetime
    end: datetime | None = None
    organisation: str | None = None

    def filters(self) -> list[ColumnElement[bool]]:
        where = [MessageRow.id >= floor_id(self.start)]
        if self.end is not None:
            where.append(MessageRow.id <= ceiling_id(self.end))
        if self.organisation is not None:
            where.append(MessageRow.organisation == self.organisation)
        return where


class Reports:
    """Counts over a window of message history, on SQLite and PostgreSQL alike."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def by_day(self, window: Window) -> dict[tuple[date, str], int]:
        """Messages per UTC day and verdict category."""
        day = self._utc_day()
        stmt = (
            select(day, MessageRow.category, func.count()).where(*window.filters()).group_by(day, MessageRow.category)
        )
        with self.db.session() as session:
            return {(_as_date(key), category): count for key, category, count in session.execute(stmt)}

    def by_day_of(self, window: Window, dimension: str) -> dict[tuple[date, str], int]:
        """Messages per UTC day and value of `dimension`: `category`, `direction` or `action` (an action
        only recorded, as in monitor mode, counts as `would_have:<action>`)."""
        day = self._utc_day()
        if dimension == "action":
            stmt = (
                select(day, MessageRow.action, MessageRow.applied, func.count())
                .where(*window.filters())
                .group_by(day, MessageRow.action, MessageRow.applied)
            )
            with self.db.session() as session:
                return {
                    (_as_date(key), action if applied else f"would_have:{action}"): count
                    for key, action, applied, count in session.execute(stmt)
                }
        column = {"category": MessageRow.category, "direction": MessageRow.direction}[dimension]
        stmt = select(day, column, func.count()).where(*window.filters()).group_by(day, column)
        with self.db.session() as session:
            return {(_as_date(key), str(value)): count for key, value, count in session.execute(stmt)}

    def by_mode(self, window: Window) -> dict[str, int]:
        """Messages per recorded mode (`monitor`, `enforce`; both present, 0 when none)."""
        stmt = select(MessageRow.mode, func.count()).where(*window.filters()).group_by(MessageRow.mode)
        with self.db.session() as session:
            return {"monitor": 0, "enforce": 0} | {mode: count for mode, count in session.execute(stmt)}

    def by_applied(self, window: Window) -> dict[bool, int]:
        """Messages whose action was applied (True) or only recorded (False)."""
        stmt = select(MessageRow.applied, func.count()).where(*window.filters()).group_by(MessageRow.applied)
        with self.db.session() as session:
            return {bool(applied): count for applied, count in session.execute(stmt)}

    def top_recipients(
        self,
        window: Window,
        top: int,
        *,
        direction: Direction | None = None,
        categories: Collection[Category] | None = None,
    ) -> list[tuple[str, int]]:
        """The `top` recipient addresses by messages (of one direction and of `categories`, when given),
        most first."""
        where = window.filters()
        if direction is not None:
            where.append(MessageRow.direction == direction.value)
        if categories is not None:
            where.append(MessageRow.category.in_([c.value for c in categories]))
        stmt = (
            select(RecipientRow.address, func.count())
            .join(MessageRow, MessageRow.id == RecipientRow.message_id)
            .where(*where)
            .group_by(RecipientRow.address)
            .order_by(func.count().desc(), RecipientRow.address)
            .limit(top)
        )
        with self.db.session() as session:
            return [(address, count) for address, count in session.execute(stmt)]

    def top_senders(self, window: Window, categories: Collection[Category], top: int) -> list[tuple[str, int]]:
        """The `top` senders of messages in `categories`, most first; the null sender shown as `<>`."""
        stmt = (
            select(MessageRow.sender, func.count())
            .where(*window.filters(), MessageRow.category.in_([c.value for c in categories]))
            .group_by(MessageRow.sender)
            .order_by(func.count().desc(), MessageRow.sender)
            .limit(top)
        )
        with self.db.session() as session:
            return [(sender or "<>", count) for sender, count in session.execute(stmt)]

    def top_sender_domains(self, window: Window, categories: Collection[Category], top: int) -> list[tuple[str, int]]:
        """The `top` sender domains of messages in `categories`, most first; the null sender shown as `<>`."""
        stmt = (
            select(MessageRow.sender_domain, func.count())
            .where(*window.filters(), MessageRow.category.in_([c.value for c in categories]))
            .group_by(MessageRow.sender_domain)
            .order_by(func.count().desc(), MessageRow.sender_domain)
            .limit(top)
        )
        with self.db.session() as session:
            return [(domain or "<>", count) for domain, count in session.execute(stmt)]

    def provider_matrix(self, window: Window) -> dict[tuple[str, str], int]:
        """Journal copies that carry the mail provider's verdict, per (provider's category, mailwarden's
        category)."""
        stmt = (
            select(MessageRow.provider_category, MessageRow.category, func.count())
            .where(*window.filters(), MessageRow.provider_category.is_not(None))
            .group_by(MessageRow.provider_category, MessageRow.category)
        )
        with self.db.session() as session:
            return {(str(theirs), str(ours)): count for theirs, ours, count in session.execute(stmt)}

    def dlp_messages_by_day(self, window: Window) -> dict[date, int]:
        """Messages with at least one DLP match, per UTC day."""
        day = self._utc_day()
        stmt = select(day, func.count()).where(*window.filters(), self._has_dlp_matches()).group_by(day)
        with self.db.session() as session:
            return {_as_date(key): count for key, count in session.execute(stmt)}

    def dlp_hits_by_type(self, window: Window, *, messages: int) -> Counter[str]:
        """DLP matches per sensitive-information type, in the newest `messages` messages that have any."""
        stmt = (
            select(MessageRow.verdict)
            .where(*window.filters(), self._has_dlp_matches())
            .order_by(MessageRow.id.desc())
            .limit(messages)
        )
        hits: Counter[str] = Counter()
        with self.db.session() as session:
            for verdict in session.scalars(stmt):
                for match in verdict.get("dlp_matches") or ():
                    hits[str(match.get("type", "?"))] += 1
        return hits

    def _utc_day(self) -> ColumnElement[Any]:
        """The UTC calendar day of `received_at`, as SQL (SQLite stores UTC without a zone)."""
        if self.db.dialect == "postgresql":
            return func.date(func.timezone("UTC", MessageRow.received_at))
        return func.date(MessageRow.received_at)

    def _has_dlp_matches(self) -> ColumnElement[bool]:
        """The stored verdict lists at least one DLP match (the JSON is read in the database)."""
        if self.db.dialect == "postgresql":
            return func.jsonb_array_length(MessageRow.verdict.op("->")("dlp_matches")) > 0
        return func.coalesce(func.json_array_length(MessageRow.verdict, "$.dlp_matches"), 0) > 0


def _as_date(value: Any) -> date:
    """A day as the database returns it: a date (PostgreSQL) or its ISO text (SQLite)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def day_window(first: date, last: date | None = None, organisation: str | None = None) -> Window:
    """The window of whole UTC days from `first` (to `last`, inclusive, when given)."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = None if last is None else datetime(last.year, last.month, last.day, 23, 59, 59, 999999, tzinfo=UTC)
    return Window(start, end, organisation)
