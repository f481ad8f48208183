"""Connection statistics: what the connection filter refused, counted per day instead of recorded.

A message refused for its connecting IP (the IP block list) is not written to message history, as in
EOP; an administrator still sees how many were refused, from which IPs, per day. One row per
(organisation, UTC day, IP, reason) is upserted, so an attack costs one row per IP and day, not one per
message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.dialects import postgresql, sqlite

from mailwarden.store.db import Database
from mailwarden.store.schema import ConnectionStatRow


class BlockReason(StrEnum):
    """Why a connection was refused."""

    IP_BLOCK_LIST = "ip_block_list"


@dataclass(frozen=True, slots=True)
class ConnectionDay:
    """Refusals of one IP on one UTC day for one reason."""

    day: date
    ip: str
    reason: BlockReason
    count: int
    first_seen: datetime
    last_seen: datetime


class ConnectionStats:
    """Per-day counters of refused connections, on SQLite and PostgreSQL alike."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def count_blocked(self, organisation: str, ip: str, reason: BlockReason, at: datetime, *, count: int = 1) -> None:
        """Add `count` refusals of `ip` at `at` (tz-aware) to the organisation's counter for that UTC day."""
        if at.tzinfo is None:
            raise ValueError("naive datetime given to the store; use a tz-aware UTC datetime")
        at = at.astimezone(UTC)
        table = ConnectionStatRow.__table__
        insert: Any = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        stmt = insert(table).values(
            organisation=organisation,
            day=at.date(),
            ip=ip,
            reason=reason.value,
            count=count,
            first_seen=at,
            last_seen=at,
        )
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.organisation, table.c.day, table.c.ip, table.c.reason],
            set_={
                "count": table.c.count + new["count"],
                "first_seen": case((new.first_seen < table.c.first_seen, new.first_seen), else_=table.c.first_seen),
                "last_seen": case((new.last_seen > table.c.last_seen, new.last_seen), else_=table.c.last_seen),
            },
        )
        with self.db.session() as session:
            session.execute(stmt)

    def daily(self, organisation: str, since: date, until: date | None = None) -> list[ConnectionDay]:
        """The organisation's counters from `since` to `until` (inclusive, UTC days): by day, most first."""
        row = ConnectionStatRow
        query = select(row).where(row.organisation == organisation, row.day >= since)
        if until is not None:
            query = query.where(row.day <= until)
        query = query.order_by(row.day, row.count.desc(), row.ip, row.reason)
        with self.db.session() as session:
            return [
                ConnectionDay(r.day, r.ip, BlockReason(r.reason), r.count, r.first_seen, r.last_seen)
                for r in session.scalars(query)
            ]

    def refused_by_day(self, since: date, until: date, organisation: str | None = None) -> dict[tuple[date, str], int]:
        """Refused connections per UTC day and reason, from `since` to `until` (inclusive), of one
        organisation or all."""
        row = ConnectionStatRow
        query = (
            select(row.day, row.reason, func.sum(row.count))
            .where(*_range(since, until, organisation))
            .group_by(row.day, row.reason)
        )
        with self.db.session() as session:
            return {(_as_date(day), reason): int(total) for day, reason, total in session.execute(query)}

    def top_refused_ips(
        self, since: date, until: date, top: int, organisation: str | None = None
    ) -> list[tuple[str, str, int]]:
        """The `top` (IP, reason) pairs by refused connections over the days, most first."""
        row = ConnectionStatRow
        total = func.sum(row.count)
        query = (
            select(row.ip, row.reason, total)
            .where(*_range(since, until, organisation))
            .group_by(row.ip, row.reason)
            .order_by(total.desc(), row.ip, row.reason)
            .limit(top)
        )
        with self.db.session() as session:
            return [(ip, reason, int(count)) for ip, reason, count in session.execute(query)]


def _range(since: date, until: date, organisation: str | None) -> list[ColumnElement[bool]]:
    row = ConnectionStatRow
    where = [row.day >= since, row.day <= until]
    if organisation is not None:
        where.append(row.organisation == organisation)
    return where


def _as_date(value: Any) -> date:
    """A day as the database returns it: a date, or its ISO text."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
