"""The sending-limit counters of outbound protection in the database (`outbound_counts`, migration 0010).

One row per organisation, sender and UTC minute holds the external and internal recipients that sender
addressed in that minute, and one row per UTC day (under a negative `minute`, `day_row`) the day's. A
message is one upsert of both and one sum in one transaction, so the totals returned include it: the last
60 minutes (the sliding hour) and the day since midnight UTC. `outbound/counters.py` wraps this as
`SqlCounter`; Redis does the same per node-shared hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, delete, or_

from mailwarden.store.db import Database
from mailwarden.store.schema import OutboundCountRow

_TABLE = cast(Table, OutboundCountRow.__table__)
HOUR_MINUTES = 60
DAY_MINUTES = 1440

# Written for the driver's own cursor (as `store/tokens.py` does): a message pays for no SQL compilation.
_UPSERT = (
    "INSERT INTO outbound_counts (organisation, sender, minute, external, internal) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (organisation, sender, minute) DO UPDATE SET "
    "external = outbound_counts.external + excluded.external, "
    "internal = outbound_counts.internal + excluded.internal"
)
# The hour's (at most 60) minute rows and the day's one row: a sender busy all day costs no more.
_SUM = (
    "SELECT COALESCE(SUM(CASE WHEN minute >= 0 THEN external ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN minute >= 0 THEN internal ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN minute < 0 THEN external + internal ELSE 0 END), 0) "
    "FROM outbound_counts WHERE organisation = ? AND sender = ? AND (minute BETWEEN ? AND ? OR minute = ?)"
)


def window(minute: int) -> tuple[int, int]:
    """(first minute of the sliding hour, first minute of the UTC day) for `minute` since the epoch."""
    return minute - HOUR_MINUTES + 1, minute - minute % DAY_MINUTES


def day_row(minute: int) -> int:
    """The `minute` key of the row holding the totals of `minute`'s UTC day: -(days since the epoch + 1),
    negative so that no minute is one and no hour's range reaches it."""
    return -(minute // DAY_MINUTES) - 1


class OutboundCounts:
    """Per-minute recipient counts of senders in a migrated `Database` (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        marks = "%s" if db.dialect == "postgresql" else "?"
        self._upsert = _UPSERT.replace("?", marks)
        self._sum = _SUM.replace("?", marks)

    def add(self, organisation: str, sender: str, minute: int, external: int, internal: int) -> tuple[int, int, int]:
        """Add recipients to `minute`'s bucket; the totals after: (external last hour, internal last hour,
        all recipients today)."""
        return self._run(organisation, sender, minute, (external, internal))

    def read(self, organisation: str, sender: str, minute: int) -> tuple[int, int, int]:
        """The totals at `minute` without adding anything."""
        return self._run(organisation, sender, minute, None)

    def prune(self, before_minute: int) -> int:
        """Delete minute buckets older than `before_minute` and day rows of days before its day; how many
        rows went."""
        minute = _TABLE.c.minute
        old = or_(and_(minute >= 0, minute < before_minute), and_(minute < 0, minute > day_row(before_minute)))
        with self.db.engine.begin() as connection:
            return int(connection.execute(delete(_TABLE).where(old)).rowcount)

    def forget(self, organisation: str, senders: Sequence[str]) -> None:
        """Delete every count of `senders` (a release starts them afresh)."""
        where = and_(_TABLE.c.organisation == organisation, _TABLE.c.sender.in_([s.lower() for s in senders]))
        with self.db.engine.begin() as connection:
            connection.execute(delete(_TABLE).where(where))

    def _run(self, organisation: str, sender: str, minute: int, added: tuple[int, int] | None) -> tuple[int, int, int]:
        with self.db.driver_cursor("outbound counters", write=True) as cursor:
            return self._execute(cursor, organisation, sender, minute, added)

    def _execute(
        self, cursor: Any, organisation: str, sender: str, minute: int, added: tuple[int, int] | None
    ) -> tuple[int, int, int]:
        if added is not None:
            rows = [(organisation, sender, key, *added) for key in (minute, day_row(minute))]
            cursor.executemany(self._upsert, rows)
        hour_start, _ = window(minute)
        cursor.execute(self._sum, (organisation, sender, hour_start, minute, day_row(minute)))
        external, internal, day = cursor.fetchone()
        return int(external), int(internal), int(day)
