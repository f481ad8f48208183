"""The outbound listeners' gate: a restricted sender is refused at MAIL FROM with EOP's 550 5.1.8.

Restrictions are read from the store at most every `REFRESH_SECONDS`, so one made by the CLI, the API, the
console or another node applies within seconds, and the database is not asked per message. A sender the
copy says is restricted is looked up once more before the refusal, so a release applies at once: a
released account's next attempt is never refused (and bounced) by a copy a second old. While the database
cannot be reached the last copy stays in use.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import structlog

from mailwarden.ingest import replies
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp import SessionInfo
from mailwarden.model.outbound import RestrictedSender
from mailwarden.service.directory import OrgDirectory
from mailwarden.store.db import Database
from mailwarden.store.restricted import RestrictedSenders

log = structlog.get_logger(__name__)
REFRESH_SECONDS = 2.0


class SenderGate:
    def __init__(self, db: Database, directory: OrgDirectory, *, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.store = RestrictedSenders(db)
        self.directory = directory
        self.refresh_seconds = refresh_seconds
        self._active: dict[tuple[str, str], RestrictedSender] = {}
        self._loaded_at = float("-inf")

    async def check(self, listener: str, mail_from: str, session: SessionInfo) -> Reply | None:
        if time.monotonic() - self._loaded_at >= self.refresh_seconds:
            await self._reload()
        found = self.directory.lookup(mail_from) if "@" in mail_from else None
        if found is None:
            return None
        key = (found[0].organisation.name, mail_from)
        restriction = self._active.get(key)
        if restriction is None or not restriction.active(datetime.now(UTC)):
            return None
        restriction = await self._confirm(key, restriction)
        if restriction is None or not restriction.active(datetime.now(UTC)):
            return None
        if found[0].organisation.monitor_only:  # monitor mode never refuses: it only says it would have
            log.info("outbound_sender_would_be_restricted", sender=mail_from, reason=restriction.reason)
            return None
        log.info(
            "outbound_sender_restricted",
            sender=mail_from,
            since=restriction.since.isoformat(),
            reason=restriction.reason,
        )
        return replies.SENDER_RESTRICTED.filled(address=mail_from)

    async def _confirm(self, key: tuple[str, str], cached: RestrictedSender) -> RestrictedSender | None:
        try:
            current = await asyncio.to_thread(self.store.get, *key)
        except Exception as exc:  # as in _reload: the copy stands while the database is away
            log.error("restricted_sender_lookup_failed", error=f"{type(exc).__name__}: {exc}")
            return cached
        if current is None:
            self._active.pop(key, None)
        else:
            self._active[key] = current
        return current

    async def _reload(self) -> None:
        try:
            rows = await asyncio.to_thread(self.store.list)
        except Exception as exc:  # the last copy stays: a database outage must not open the gate or stop mail
            log.error("restricted_senders_reload_failed", error=f"{type(exc).__name__}: {exc}")
            self._loaded_at = time.monotonic()
            return
        self._active = {(r.organisation, r.sender): r for r in rows}
        self._loaded_at = time.monotonic()
