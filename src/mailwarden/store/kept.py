"""Messages kept for retro-hunt: the spool entry of each recorded message, zstd-compressed in the blob
store, and its row in `kept_messages` (docs/retro-hunt.md).

Crash-safe order, as for every blob: the blob is written before the row (the history writer puts the
blob, then adds the row in its records' transaction), and expiry removes the blob before the row. A
crash while writing leaves at most a blob without a row (written again by the replay); a crash while
expiring leaves expired rows whose blob is gone, removed by the next round (a hunt meeting one skips it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import zstandard
from sqlalchemy import ColumnElement, and_, delete, func, insert, select
from sqlalchemy.orm import Session

from mailwarden.errors import NotFoundError
from mailwarden.model import Envelope, TlsInfo
from mailwarden.store.blobs import BlobStore
from mailwarden.store.db import Database
from mailwarden.store.schema import KeptMessageRow

BLOB_PREFIX = "kept-"
BLOB_SUFFIX = ".eml.zst"
EXPIRY_BATCH = 500


def blob_key(spool_id: str) -> str:
    """The blob of one spool entry; the records of its organisations share it."""
    return f"{BLOB_PREFIX}{spool_id}{BLOB_SUFFIX}"


@dataclass(frozen=True, slots=True)
class KeptMessage:
    """One kept message: which record it belongs to, and how to rebuild its spool entry."""

    message_id: str
    organisation: str | None
    kept_at: datetime
    expires_at: datetime
    listener: str
    envelope: Envelope
    raw_size: int
    stored_size: int
    blob_key: str


def compress(raw: bytes, level: int) -> bytes:
    return zstandard.ZstdCompressor(level=level).compress(raw)


def decompress(data: bytes) -> bytes:
    # the frame carries its content size (compress above writes it), so no size limit guesswork
    return zstandard.ZstdDecompressor().decompress(data)


def envelope_document(env: Envelope) -> dict[str, Any]:
    """The envelope as the row keeps it (JSON)."""
    return {
        "mail_from": env.mail_from,
        "rcpt_to": list(env.rcpt_to),
        "client_ip": env.client_ip,
        "helo": env.helo,
        "tls": None if env.tls is None else [env.tls.version, env.tls.cipher, env.tls.peer_certificate_subject],
        "received_at": env.received_at.isoformat(),
        "authenticated_as": env.authenticated_as,
    }


def envelope_from(doc: dict[str, Any]) -> Envelope:
    tls = doc.get("tls")
    return Envelope(
        mail_from=doc["mail_from"],
        rcpt_to=tuple(doc["rcpt_to"]),
        client_ip=doc.get("client_ip"),
        helo=doc.get("helo"),
        tls=TlsInfo(*tls) if tls else None,
        received_at=datetime.fromisoformat(doc["received_at"]),
        authenticated_as=doc.get("authenticated_as"),
    )


@dataclass(frozen=True, slots=True)
class Window:
    """Kept messages of one organisation (None: all) kept between `since` and `until`."""

    organisation: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = []
        if self.organisation is not None:
            clauses.append(KeptMessageRow.organisation == self.organisation)
        if self.since is not None:
            clauses.append(KeptMessageRow.kept_at >= self.since)
        if self.until is not None:
            clauses.append(KeptMessageRow.kept_at <= self.until)
        return and_(True, *clauses)


class KeptStore:
    """The `kept_messages` table and the blobs it points at."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def record(self, kept: Sequence[KeptMessage], *, session: Session) -> None:
        """Add rows in the caller's transaction (the history writer's, with the records they point at);
        a message kept already (another node recorded it first) is left as it is."""
        if not kept:
            return
        ids = [k.message_id for k in kept]
        present = set(session.scalars(select(KeptMessageRow.message_id).where(KeptMessageRow.message_id.in_(ids))))
        fresh = [_values(k) for k in kept if k.message_id not in present]
        if fresh:
            session.execute(insert(KeptMessageRow), fresh)

    def get(self, message_id: str) -> KeptMessage:
        with self.db.session() as session:
            row = session.get(KeptMessageRow, message_id)
            if row is None:
                raise NotFoundError(f"message {message_id} is not kept")
            return _kept(row)

    def raw(self, kept: KeptMessage) -> bytes:
        """The message as received (NotFoundError when its blob is gone)."""
        return decompress(self.blobs.get(kept.blob_key))

    def count(self, window: Window) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(KeptMessageRow).where(window.where())) or 0)

    def page(self, window: Window, *, after: str | None = None, limit: int = 200) -> list[KeptMessage]:
        """Kept messages of the window in message id order (time order), `limit` after the id `after`."""
        query = select(KeptMessageRow).where(window.where())
        if after is not None:
            query = query.where(KeptMessageRow.message_id > after)
        with self.db.session() as session:
            rows = session.scalars(query.order_by(KeptMessageRow.message_id).limit(limit))
            return [_kept(row) for row in rows]

    def totals(self, organisation: str | None = None) -> tuple[int, int, int]:
        """(messages, bytes as received, bytes stored) kept for `organisation` (None: every one)."""
        raw = func.coalesce(func.sum(KeptMessageRow.raw_size), 0)
        stored = func.coalesce(func.sum(KeptMessageRow.stored_size), 0)
        query = select(func.count(), raw, stored)
        if organisation is not None:
            query = query.where(KeptMessageRow.organisation == organisation)
        with self.db.session() as session:
            row = session.execute(query).one()
        return int(row[0]), int(row[1]), int(row[2])

    def expire(self, now: datetime) -> int:
        """Remove what expired by `now`: blobs first, then rows, a batch at a time; the rows removed."""
        removed = 0
        while True:
            with self.db.session() as session:
                expired = session.execute(
                    select(KeptMessageRow.message_id, KeptMessageRow.blob_key)
                    .where(KeptMessageRow.expires_at <= now)
                    .limit(EXPIRY_BATCH)
                ).all()
            if not expired:
                return removed
            for key in {key for _, key in expired}:
                self.blobs.delete(key)
            with self.db.session() as session:
                session.execute(delete(KeptMessageRow).where(KeptMessageRow.message_id.in_([m for m, _ in expired])))
            removed += len(expired)


def _values(k: KeptMessage) -> dict[str, Any]:
    return {
        "message_id": k.message_id,
        "organisation": k.organisation,
        "kept_at": k.kept_at,
        "expires_at": k.expires_at,
        "listener": k.listener,
        "envelope": envelope_document(k.envelope),
        "raw_size": k.raw_size,
        "stored_size": k.stored_size,
        "blob_key": k.blob_key,
    }


def _kept(row: KeptMessageRow) -> KeptMessage:
    return KeptMessage(
        message_id=row.message_id,
        organisation=row.organisation,
        kept_at=row.kept_at,
        expires_at=row.expires_at,
        listener=row.listener,
        envelope=envelope_from(row.envelope),
        raw_size=row.raw_size,
        stored_size=row.stored_size,
        blob_key=row.blob_key,
    )
