"""Clawback tables: mailbox connectors (secrets sealed by the caller, opaque here), jobs and their items.

Items are the unit of work: a worker claims due items with a lease, reports each one's outcome, and the
job is finished when no item is left waiting. A claim is a conditional update, so two workers (the server
and a CLI, or two nodes) never hold the same item; a lease that runs out (a worker died) makes the item
claimable again, and a final status is never claimed, so a restart loses nothing and repeats nothing done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from mailwarden.errors import NotFoundError
from mailwarden.model.clawback import (
    Claimed,
    ClawbackAction,
    ConnectorInfo,
    ItemOutcome,
    ItemStatus,
    ItemView,
    JobKind,
    JobView,
    NewJob,
    Target,
)
from mailwarden.model.trace import EventRecord
from mailwarden.store.audit import write_entry
from mailwarden.store.db import Database
from mailwarden.store.history import add_events
from mailwarden.store.schema import (
    ClawbackItemRow,
    ClawbackJobRow,
    MailboxConnectorRow,
    OrganisationRow,
)

WAITING = (ItemStatus.PENDING.value, ItemStatus.RETRYING.value)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SealedConnector:
    info: ConnectorInfo
    sealed_secret: str


class ConnectorStore:
    """Mailbox connectors per organisation. Changes are audited without the secret (only that it changed)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self, organisation: str | None = None) -> list[SealedConnector]:
        with self.db.session() as session:
            query = select(MailboxConnectorRow, OrganisationRow.name).join(
                OrganisationRow, OrganisationRow.id == MailboxConnectorRow.organisation_id
            )
            if organisation is not None:
                query = query.where(OrganisationRow.name == organisation)
            rows = session.execute(query.order_by(OrganisationRow.name, MailboxConnectorRow.name)).all()
            return [SealedConnector(_info(row, org), row.secret) for row, org in rows]

    def get(self, organisation: str, name: str) -> SealedConnector:
        for connector in self.list(organisation):
            if connector.info.name == name:
                return connector
        raise NotFoundError(f"organisation {organisation} has no mailbox connector {name!r}")

    def put(
        self,
        organisation: str,
        name: str,
        *,
        kind: str,
        domains: Sequence[str],
        settings: dict[str, Any],
        sealed_secret: str | None,
        actor: str,
    ) -> ConnectorInfo:
        """Add or replace a connector; `sealed_secret` None keeps the stored secret (settings-only change)."""
        with self.db.session() as session:
            org = _organisation(session, organisation)
            row = _connector_row(session, org.id, name)
            before = None if row is None else _audit_view(row)
            if row is None:
                if sealed_secret is None:
                    raise NotFoundError(f"mailbox connector {name!r} does not exist yet: give its secret")
                row = MailboxConnectorRow(organisation_id=org.id, name=name, secret=sealed_secret)
                session.add(row)
            elif sealed_secret is not None:
                row.secret = sealed_secret
            row.kind, row.domains, row.settings = kind, sorted({d.lower() for d in domains}), dict(settings)
            row.updated_at, row.updated_by = _now(), actor
            after = _audit_view(row) | {"secret": "changed" if sealed_secret is not None else "kept"}
            write_entry(
                session, at=row.updated_at, actor=actor, action="connector.put",
                obj=f"organisation:{organisation}/connector:{name}", before=before, after=after,
            )  # fmt: skip
            session.flush()
            return _info(row, organisation)

    def remove(self, organisation: str, name: str, *, actor: str) -> None:
        with self.db.session() as session:
            row = _connector_row(session, _organisation(session, organisation).id, name)
            if row is None:
                raise NotFoundError(f"organisation {organisation} has no mailbox connector {name!r}")
            write_entry(
                session, at=_now(), actor=actor, action="connector.remove",
                obj=f"organisation:{organisation}/connector:{name}", before=_audit_view(row), after=None,
            )  # fmt: skip
            session.delete(row)


def _organisation(session: Session, name: str) -> OrganisationRow:
    row = session.execute(select(OrganisationRow).where(OrganisationRow.name == name)).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no organisation {name!r}")
    return row


def _connector_row(session: Session, organisation_id: int, name: str) -> MailboxConnectorRow | None:
    return session.execute(
        select(MailboxConnectorRow).where(
            MailboxConnectorRow.organisation_id == organisation_id, MailboxConnectorRow.name == name
        )
    ).scalar_one_or_none()


def _info(row: MailboxConnectorRow, organisation: str) -> ConnectorInfo:
    return ConnectorInfo(
        organisation, row.name, row.kind, tuple(row.domains), dict(row.settings), row.updated_at, row.updated_by
    )


def _audit_view(row: MailboxConnectorRow) -> dict[str, Any]:
    return {"kind": row.kind, "domains": list(row.domains), "settings": dict(row.settings)}


class ClawbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- creating ------------------------------------------------------------------------------
    def create(self, job: NewJob, *, audit: bool) -> bool:
        """Write the job and one item per target in one transaction (with its audit entry when a person
        asked). False when a job with this id exists already (a replayed automatic job): nothing added."""
        now = _now()
        with self.db.session() as session:
            if session.get(ClawbackJobRow, job.id) is not None:
                return False
            session.add(
                ClawbackJobRow(
                    id=job.id, organisation=job.organisation, kind=job.kind.value, action=job.action.value,
                    requested_by=job.requested_by, reason=job.reason, query=dict(job.query), created_at=now,
                    finished_at=None if job.targets else now,
                )
            )  # fmt: skip
            session.flush()
            seen: set[tuple[str, str]] = set()
            for t in job.targets:
                if (t.message_id, t.recipient) in seen:
                    continue
                seen.add((t.message_id, t.recipient))
                session.add(_item(job.id, t, now))
            if audit:
                write_entry(
                    session, at=now, actor=job.requested_by, action=f"clawback.{job.action.value}",
                    obj=f"clawback/{job.id}", before=None,
                    after={"kind": job.kind.value, "reason": job.reason, "query": dict(job.query),
                           "messages": len({t.message_id for t in job.targets}), "recipients": len(seen)},
                )  # fmt: skip
        return True

    # ---- working -------------------------------------------------------------------------------
    def claim(self, *, limit: int, lease_seconds: float, now: datetime | None = None) -> list[Claimed]:
        """Take up to `limit` due items (waiting, their time come, no live lease), oldest first."""
        now = now or _now()
        lease = now + timedelta(seconds=lease_seconds)
        free = or_(ClawbackItemRow.lease_until.is_(None), ClawbackItemRow.lease_until < now)
        due = and_(ClawbackItemRow.status.in_(WAITING), ClawbackItemRow.next_attempt_at <= now, free)
        with self.db.session() as session:
            candidates = session.execute(
                select(ClawbackItemRow, ClawbackJobRow)
                .join(ClawbackJobRow, ClawbackJobRow.id == ClawbackItemRow.job_id)
                .where(due)
                .order_by(ClawbackItemRow.next_attempt_at, ClawbackItemRow.id)
                .limit(limit)
            ).all()
            claimed = []
            for item, job in candidates:
                taken = session.execute(
                    update(ClawbackItemRow).where(ClawbackItemRow.id == item.id, due).values(lease_until=lease)
                )
                if getattr(taken, "rowcount", 0) == 1:
                    claimed.append(_claimed(item, job))
            return claimed

    def report(self, outcomes: Sequence[ItemOutcome], events: Sequence[tuple[str, EventRecord]]) -> None:
        """Record outcomes and their timeline events in one transaction; finish jobs with nothing left."""
        now = _now()
        with self.db.session() as session:
            jobs: set[str] = set()
            for o in outcomes:
                row = session.get(ClawbackItemRow, o.item_id)
                if row is None:
                    continue  # the message (and so the item) was deleted meanwhile
                jobs.add(row.job_id)
                row.status = (ItemStatus.RETRYING if o.retry_at is not None else o.status).value
                row.detail, row.attempts, row.lease_until, row.updated_at = o.detail, row.attempts + 1, None, now
                if o.retry_at is not None:
                    row.next_attempt_at = o.retry_at
            add_events(session, list(events))
            session.flush()
            self._finish(session, jobs, now)

    def _finish(self, session: Session, jobs: set[str], now: datetime) -> None:
        for job_id in jobs:
            waiting = session.execute(
                select(func.count())
                .select_from(ClawbackItemRow)
                .where(ClawbackItemRow.job_id == job_id, ClawbackItemRow.status.in_(WAITING))
            ).scalar_one()
            if waiting == 0:
                session.execute(
                    update(ClawbackJobRow)
                    .where(ClawbackJobRow.id == job_id, ClawbackJobRow.finished_at.is_(None))
                    .values(finished_at=now)
                )

    def next_due(self) -> datetime | None:
        """When the earliest waiting item is due (None: nothing waits)."""
        with self.db.session() as session:
            return session.execute(
                select(func.min(ClawbackItemRow.next_attempt_at)).where(ClawbackItemRow.status.in_(WAITING))
            ).scalar_one()

    # ---- reading -------------------------------------------------------------------------------
    def job(self, job_id: str, *, items: bool = True) -> JobView:
        with self.db.session() as session:
            row = session.get(ClawbackJobRow, job_id)
            if row is None:
                raise NotFoundError(f"no clawback job {job_id}")
            return self._view(session, row, items=items)

    def jobs(self, *, organisation: str | None = None, message_id: str | None = None, limit: int = 50) -> list[JobView]:
        """Newest first; `message_id`: the jobs that touched that message."""
        with self.db.session() as session:
            query = select(ClawbackJobRow).order_by(ClawbackJobRow.created_at.desc(), ClawbackJobRow.id.desc())
            if organisation is not None:
                query = query.where(ClawbackJobRow.organisation == organisation)
            if message_id is not None:
                query = query.where(
                    ClawbackJobRow.id.in_(
                        select(ClawbackItemRow.job_id).where(ClawbackItemRow.message_id == message_id)
                    )
                )
            rows = session.execute(query.limit(limit)).scalars().all()
            return [self._view(session, row, items=message_id is not None, message_id=message_id) for row in rows]

    def _view(self, session: Session, row: ClawbackJobRow, *, items: bool, message_id: str | None = None) -> JobView:
        counts = Counter(
            {
                ItemStatus(status): n
                for status, n in session.execute(
                    select(ClawbackItemRow.status, func.count())
                    .where(ClawbackItemRow.job_id == row.id)
                    .group_by(ClawbackItemRow.status)
                ).all()
            }
        )
        views: tuple[ItemView, ...] = ()
        if items:
            query = select(ClawbackItemRow).where(ClawbackItemRow.job_id == row.id)
            if message_id is not None:
                query = query.where(ClawbackItemRow.message_id == message_id)
            views = tuple(
                ItemView(i.message_id, i.recipient, ItemStatus(i.status), i.detail, i.attempts, i.updated_at)
                for i in session.execute(query.order_by(ClawbackItemRow.id).limit(5000)).scalars()
            )
        return JobView(
            id=row.id, organisation=row.organisation, kind=JobKind(row.kind), action=ClawbackAction(row.action),
            requested_by=row.requested_by, reason=row.reason, created_at=row.created_at,
            finished_at=row.finished_at, counts=dict(counts), query=dict(row.query), items=views,
        )  # fmt: skip


def _item(job_id: str, t: Target, now: datetime) -> ClawbackItemRow:
    return ClawbackItemRow(
        job_id=job_id, message_id=t.message_id, internet_message_id=t.internet_message_id,
        recipient=t.recipient.lower(), status=ItemStatus.PENDING.value, detail="", attempts=0,
        next_attempt_at=now, lease_until=None, updated_at=now,
    )  # fmt: skip


def _claimed(item: ClawbackItemRow, job: ClawbackJobRow) -> Claimed:
    return Claimed(
        item_id=item.id, job_id=job.id, organisation=job.organisation, action=ClawbackAction(job.action),
        target=Target(item.message_id, item.internet_message_id, item.recipient), attempts=item.attempts,
        requested_by=job.requested_by, reason=job.reason,
    )  # fmt: skip
