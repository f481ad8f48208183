"""Messages kept for retro-hunt: the spool entry of each recorded message, zstd-compressed in the blob
store, and its row in `kept_messages` (docs/retro-hunt.md).

One blob per history-writer batch holds the batch's messages, one zstd frame each: one fsync per
batch instead of one per message (3.8 ms each on the reference disk, which halved the pipeline's
throughput). Crash-safe order, as for every blob: the blob is written (and fsynced) before the rows,
which go into the records' transaction, and expiry removes the blob before the rows. A crash while
writing leaves at most a blob without rows (the replay keeps the messages again, in a blob of its own);
a crash while expiring leaves expired rows whose blob is gone, removed by the next round (a hunt
meeting one skips it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import zstandard
from sqlalchemy import ColumnElement, Table, and_, delete, func, select
from sqlalchemy.orm import Session

from mailwarden.errors import NotFoundError
from mailwarden.model import Envelope, TlsInfo
from mailwarden.store.blobs import BlobStore
from mailwarden.store.db import Database, insert_rows, select_in
from mailwarden.store.schema import KeptMessageRow

EXPIRY_BATCH = 500
_KEPT = cast(Table, KeptMessageRow.__table__)


def blob_key(first_spool_id: str) -> str:
    """The blob of one batch's kept messages, named after its first spool entry."""
    return f"kept-{first_spool_id}.zst"


@dataclass(frozen=True, slots=True)
class KeptMessage:
    """One kept message: which record it belongs to, and how to rebuild its spool entry."""

    message_id: str
    organisation: str | None
    kept_at: datetime
    expires_at: datetime
    spool_id: str  # the entry the message was recorded from (for a gateway message, maybe another record's id)
    listener: str
    envelope: Envelope
    raw_size: int
    stored_size: int
    blob_key: str
    blob_offset: int = 0


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
        present = {row[0] for row in select_in(session, [_KEPT.c.message_id], _KEPT.c.message_id, ids)}
        fresh = [_values(k) for k in kept if k.message_id not in present]
        if fresh:  # a Core INSERT of plain rows: the ORM's bulk path cost more than the rows' own writing
            insert_rows(session, _KEPT, fresh)

    def get(self, message_id: str) -> KeptMessage:
        with self.db.session() as session:
            row = session.get(KeptMessageRow, message_id)
            if row is None:
                raise NotFoundError(f"message {message_id} is not kept")
            return _kept(row)

    def raw(self, kept: KeptMessage) -> bytes:
        """The message as received (NotFoundError when its blob is gone)."""
        frame = self.blobs.read(kept.blob_key, kept.blob_offset, kept.stored_size)
        if len(frame) != kept.stored_size:
            raise NotFoundError(f"blob {kept.blob_key} is shorter than the rows say")
        return decompress(frame)

    def count(self, window: Window) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(KeptMessageRow).where(window.where())) or 0)

    def page(
        self, window: Window, *, after: str | None = None, limit: int = 200, newest_first: bool = False
    ) -> list[KeptMessage]:
        """Kept messages of the window in message id order (time order), `limit` after the id `after`;
        with `newest_first`, the newest `limit` of the window, newest first."""
        query = select(KeptMessageRow).where(window.where())
        if after is not None:
            query = query.where(KeptMessageRow.message_id > after)
        order = KeptMessageRow.message_id.desc() if newest_first else KeptMessageRow.message_id
        with self.db.session() as session:
            rows = session.scalars(query.order_by(order).limit(limit))
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
        "spool_id": k.spool_id,
        "listener": k.listener,
        "envelope": envelope_document(k.envelope),
        "raw_size": k.raw_size,
        "stored_size": k.stored_size,
        "blob_key": k.blob_key,
        "blob_offset": k.blob_offset,
    }


def _kept(row: KeptMessageRow) -> KeptMessage:
    return KeptMessage(
        message_id=row.message_id,
        organisation=row.organisation,
        kept_at=row.kept_at,
        expires_at=row.expires_at,
        spool_id=row.spool_id,
        listener=row.listener,
        envelope=envelope_from(row.envelope),
        raw_size=row.raw_size,
        stored_size=row.stored_size,
        blob_key=row.blob_key,
        blob_offset=row.blob_offset,
    )
