"""The event feed's outbox: rows written in the transaction of what they report, read by the exporter per
sink from that sink's cursor, pruned once every sink has passed them (or past the retention), and trimmed
to a bounded backlog with a loud count of what was dropped.

Three kinds of row (docs/events.md): `message` (a message as recorded, with its recipients, first events and
artifacts), `event` (a timeline event added later: delivery, release, clawback, rescan ...) and `audit` (an
admin change). The payloads are mailwarden's own facts; `export/ocsf.py` renders them as OCSF when sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.orm import Session

from mailwarden.ids import new_id
from mailwarden.store.db import Database, insert_rows
from mailwarden.store.schema import ExportCursorRow, MessageRow, OutboxRow

_OUTBOX = cast(Table, OutboxRow.__table__)
CONTEXT_FIELDS = ("id", "organisation", "sender", "subject", "internet_message_id", "direction", "mode")


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    uid: str
    kind: str
    at: datetime
    payload: dict[str, Any]


def append(session: Session, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Add outbox rows (kind, payload) to `session`'s transaction, stamped now. One executemany. Times in
    a payload are stored in ISO 8601 (UTC), as every JSON column keeps them (`db.json_text`)."""
    if rows:
        now = datetime.now(UTC)
        stamped = [{"uid": new_id(now), "kind": kind, "at": now, "payload": payload} for kind, payload in rows]
        insert_rows(session, _OUTBOX, stamped)


def message_contexts(session: Session, message_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What an event row says about its message (one query for many)."""
    if not message_ids:
        return {}
    columns = [getattr(MessageRow, name) for name in CONTEXT_FIELDS]
    found = session.execute(select(*columns).where(MessageRow.id.in_(sorted(set(message_ids))))).all()
    return {row[0]: dict(zip(CONTEXT_FIELDS, row, strict=True)) for row in found}


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    def after(self, seq: int, *, limit: int) -> list[OutboxItem]:
        """Rows after `seq`, oldest first."""
        with self.db.session() as session:
            rows = session.scalars(select(OutboxRow).where(OutboxRow.id > seq).order_by(OutboxRow.id).limit(limit))
            return [OutboxItem(r.id, r.uid, r.kind, r.at, r.payload) for r in rows]

    def newest(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.max(OutboxRow.id))) or 0)

    def oldest(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.min(OutboxRow.id))) or 0)

    def count(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(OutboxRow)) or 0)

    # ---- cursors -----------------------------------------------------------------------------------
    def cursor(self, sink: str, *, start_at: int) -> int:
        """The sink's cursor; a new sink starts at `start_at` (from now on, or from the oldest row kept)."""
        with self.db.session() as session:
            row = session.get(ExportCursorRow, sink)
            if row is None:
                row = ExportCursorRow(sink=sink, last_id=start_at, updated_at=datetime.now(UTC), failures=0)
                session.add(row)
            return int(row.last_id)

    def advance(self, sink: str, last_id: int) -> None:
        with self.db.session() as session:
            row = session.get(ExportCursorRow, sink)
            if row is None:
                session.add(ExportCursorRow(sink=sink, last_id=last_id, updated_at=datetime.now(UTC), failures=0))
            else:
                row.last_id, row.updated_at, row.failures, row.last_error = last_id, datetime.now(UTC), 0, None

    def failed(self, sink: str, error: str) -> None:
        with self.db.session() as session:
            row = session.get(ExportCursorRow, sink)
            if row is not None:
                row.failures, row.last_error = row.failures + 1, error[:2000]

    def cursors(self) -> dict[str, tuple[int, int, str | None]]:
        """sink → (last id, failures in a row, last error)."""
        with self.db.session() as session:
            return {r.sink: (r.last_id, r.failures, r.last_error) for r in session.scalars(select(ExportCursorRow))}

    def forget(self, sinks: Sequence[str]) -> None:
        """Drop the cursors of sinks no longer configured (so they hold no rows back)."""
        with self.db.session() as session:
            session.execute(delete(ExportCursorRow).where(ExportCursorRow.sink.in_(list(sinks))))

    # ---- keeping it bounded ------------------------------------------------------------------------
    def prune(self, *, below: int, older_than: datetime) -> int:
        """Delete rows every sink has passed (id <= below) and rows past the retention. How many went."""
        with self.db.session() as session:
            result = session.execute(delete(OutboxRow).where((OutboxRow.id <= below) | (OutboxRow.at < older_than)))
            return int(getattr(result, "rowcount", 0) or 0)

    def trim(self, max_rows: int) -> int:
        """Keep at most `max_rows`, dropping the oldest; how many were dropped (the caller says so loudly)."""
        with self.db.session() as session:
            total = int(session.scalar(select(func.count()).select_from(OutboxRow)) or 0)
            excess = total - max_rows
            if excess <= 0:
                return 0
            edge = session.scalar(select(OutboxRow.id).order_by(OutboxRow.id).offset(excess - 1).limit(1))
            result = session.execute(delete(OutboxRow).where(OutboxRow.id <= edge))
            return int(getattr(result, "rowcount", 0) or 0)
