"""Retro-hunts and what they found: tables `hunts` and `hunt_results` (the use case is
`service/hunt.py`; docs/retro-hunt.md).

A hunt's progress and its results are written together, with the RESCAN trace events of the messages
found, in one transaction per round: the console never shows a result whose event is missing, nor a
count ahead of the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update

from mailwarden.errors import NotFoundError
from mailwarden.ids import new_id
from mailwarden.model.trace import EventRecord
from mailwarden.store.db import Database
from mailwarden.store.history import add_events
from mailwarden.store.schema import HuntResultRow, HuntRow, MessageRow

MAX_LIMIT = 1000


class HuntKind(StrEnum):
    RESCAN = "rescan"  # today's scan of each kept message, compared with the verdict then
    SEARCH = "search"  # kept messages carrying an indicator


class HuntState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({HuntState.DONE, HuntState.FAILED, HuntState.CANCELLED})


@dataclass(frozen=True, slots=True)
class Hunt:
    id: str
    organisation: str | None
    created_by: str
    created_at: datetime
    kind: HuntKind
    query: dict[str, Any]
    since: datetime | None
    until: datetime | None
    state: HuntState
    total: int
    done: int
    matched: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class HuntResult:
    """One message found: its verdict then (category, action) and, for a rescan, now; what matched."""

    message_id: str
    before_category: str
    before_action: str
    after_category: str | None
    after_action: str | None
    matched: str


class HuntStore:
    """Every query on `hunts` and `hunt_results`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        kind: HuntKind,
        query: dict[str, Any],
        *,
        organisation: str | None,
        created_by: str,
        since: datetime | None,
        until: datetime | None,
        running: bool = False,
    ) -> Hunt:
        """A new hunt, queued for a server to run, or (`running`) taken by the caller at once."""
        now = datetime.now(UTC)
        row = HuntRow(
            id=new_id(),
            organisation=organisation,
            created_by=created_by,
            created_at=now,
            kind=kind.value,
            query=query,
            since=since,
            until=until,
            state=(HuntState.RUNNING if running else HuntState.QUEUED).value,
            total=0,
            done=0,
            matched=0,
            started_at=now if running else None,
        )
        with self.db.session() as session:
            session.add(row)
            session.flush()
            return _hunt(row)

    def get(self, hunt_id: str) -> Hunt:
        with self.db.session() as session:
            row = session.get(HuntRow, hunt_id)
            if row is None:
                raise NotFoundError(f"hunt {hunt_id} does not exist")
            return _hunt(row)

    def newest(self, *, organisation: str | None = None, limit: int = 50) -> list[Hunt]:
        """Hunts newest first; `organisation` limits them to that organisation's."""
        query = select(HuntRow).order_by(HuntRow.id.desc()).limit(min(limit, MAX_LIMIT))
        if organisation is not None:
            query = query.where(HuntRow.organisation == organisation)
        with self.db.session() as session:
            return [_hunt(row) for row in session.scalars(query)]

    def claim_queued(self) -> Hunt | None:
        """The oldest queued hunt, now running (None when none waits)."""
        with self.db.session() as session:
            waiting = list(
                session.scalars(
                    select(HuntRow.id).where(HuntRow.state == HuntState.QUEUED.value).order_by(HuntRow.id).limit(5)
                )
            )
        for hunt_id in waiting:
            if self.claim(hunt_id):
                return self.get(hunt_id)
        return None

    def claim(self, hunt_id: str) -> bool:
        """Take a queued hunt to run it: True for the one runner that wins it (the CLI or a server)."""
        with self.db.session() as session:
            claimed = session.execute(
                update(HuntRow)
                .where(HuntRow.id == hunt_id, HuntRow.state == HuntState.QUEUED.value)
                .values(state=HuntState.RUNNING.value, started_at=datetime.now(UTC))
            )
            return bool(claimed.rowcount)  # type: ignore[attr-defined]

    def started(self, hunt_id: str, total: int) -> None:
        """The claimed hunt's total, counted when it starts."""
        self._set(hunt_id, total=total)

    def progress(
        self,
        hunt_id: str,
        *,
        done: int,
        results: Sequence[HuntResult] = (),
        events: Sequence[tuple[str, EventRecord]] = (),
    ) -> HuntState:
        """Record a round: results with their trace events, and the counts; the hunt's state after it
        (CANCELLED when someone cancelled it meanwhile: the runner stops)."""
        with self.db.session() as session:
            row = session.get(HuntRow, hunt_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"hunt {hunt_id} does not exist")
            if results:
                session.execute(insert(HuntResultRow), [_result_values(hunt_id, r) for r in results])
                add_events(session, list(events))
            row.done = done
            row.matched += len(results)
            return HuntState(row.state)

    def finish(self, hunt_id: str, state: HuntState, *, error: str | None = None) -> None:
        """End a hunt; one cancelled meanwhile stays cancelled."""
        with self.db.session() as session:
            session.execute(
                update(HuntRow)
                .where(HuntRow.id == hunt_id, HuntRow.state.not_in([s.value for s in FINISHED]))
                .values(state=state.value, finished_at=datetime.now(UTC), error=error)
            )

    def cancel(self, hunt_id: str) -> Hunt:
        """Stop a queued or running hunt (a running one stops at its next round)."""
        self.finish(hunt_id, HuntState.CANCELLED)
        return self.get(hunt_id)

    def results(self, hunt_id: str, *, limit: int = MAX_LIMIT) -> list[HuntResult]:
        query = (
            select(HuntResultRow)
            .where(HuntResultRow.hunt_id == hunt_id)
            .order_by(HuntResultRow.message_id)
            .limit(min(limit, MAX_LIMIT))
        )
        with self.db.session() as session:
            return [_result(row) for row in session.scalars(query)]

    def all_results(self, hunt_id: str) -> list[HuntResult]:
        """Every result of a hunt, however many (for acting on them all)."""
        with self.db.session() as session:
            rows = session.scalars(select(HuntResultRow).where(HuntResultRow.hunt_id == hunt_id))
            return [_result(row) for row in rows]

    def verdicts(self, message_ids: Sequence[str]) -> dict[str, tuple[str, str, dict[str, Any]]]:
        """Each recorded message's (category, action, verdict document), as history has them."""
        if not message_ids:
            return {}
        query = select(MessageRow.id, MessageRow.category, MessageRow.action, MessageRow.verdict).where(
            MessageRow.id.in_(list(message_ids))
        )
        with self.db.session() as session:
            return {row.id: (row.category, row.action, row.verdict) for row in session.execute(query)}

    def _set(self, hunt_id: str, **values: Any) -> None:
        with self.db.session() as session:
            session.execute(update(HuntRow).where(HuntRow.id == hunt_id).values(**values))


def _hunt(row: HuntRow) -> Hunt:
    return Hunt(
        id=row.id,
        organisation=row.organisation,
        created_by=row.created_by,
        created_at=row.created_at,
        kind=HuntKind(row.kind),
        query=dict(row.query),
        since=row.since,
        until=row.until,
        state=HuntState(row.state),
        total=row.total,
        done=row.done,
        matched=row.matched,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
    )


def _result_values(hunt_id: str, r: HuntResult) -> dict[str, Any]:
    return {
        "hunt_id": hunt_id,
        "message_id": r.message_id,
        "before_category": r.before_category,
        "before_action": r.before_action,
        "after_category": r.after_category,
        "after_action": r.after_action,
        "matched": r.matched,
    }


def _result(row: HuntResultRow) -> HuntResult:
    return HuntResult(
        message_id=row.message_id,
        before_category=row.before_category,
        before_action=row.before_action,
        after_category=row.after_category,
        after_action=row.after_action,
        matched=row.matched,
    )
