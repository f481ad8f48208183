"""Wiring of the quarantine into a runtime, and the server's periodic quarantine jobs.

The jobs: expiry (`[quarantine] expiry_interval_seconds`), queueing releases made where no delivery
queue was at hand (`release_interval_seconds`), and digests (`digest_interval_seconds`; each
recipient still gets one only at their policy's frequency).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from mailwarden.deliver import DeliveryJob, Route
from mailwarden.enforce.notify import ALERT_MESSAGE_PREFIX, release_request_notice
from mailwarden.errors import NotFoundError
from mailwarden.ids import new_id
from mailwarden.model import Policy
from mailwarden.model.accounts import Role
from mailwarden.quarantine.digest import Digests, LinkSigner, load_secret
from mailwarden.quarantine.service import Quarantine, ReleaseDispatcher
from mailwarden.service.accounts import Accounts
from mailwarden.service.runtime import Runtime
from mailwarden.store.db import unavailable

log = structlog.get_logger(__name__)

Routes = Callable[[Sequence[str]], list[tuple[Route, list[str]]]]


def policy_lookup(rt: Runtime) -> Callable[[str | None], Policy]:
    def policy(organisation: str | None) -> Policy:
        if organisation is None:
            return Policy()
        try:
            return rt.policies.get_policy(organisation)
        except NotFoundError:
            return Policy()

    return policy


def quarantine_for(rt: Runtime, dispatcher: ReleaseDispatcher | None = None) -> Quarantine:
    return Quarantine(rt.db, rt.blobs, rt.history, policies=policy_lookup(rt), dispatcher=dispatcher)


def digests_for(rt: Runtime, quarantine: Quarantine | None = None, sender: ReleaseDispatcher | None = None) -> Digests:
    """Digests with the link secret (`[quarantine] secret_file`, else `<data_dir>/link-secret`)."""
    cfg = rt.config.quarantine
    secret = load_secret(cfg.secret_file or rt.config.paths.data_dir / "link-secret")
    return Digests(
        quarantine or quarantine_for(rt),
        LinkSigner(secret),
        public_url=rt.config.console.public_url,
        hostname=rt.config.delivery.ehlo_hostname(),
        link_lifetime=timedelta(hours=cfg.link_lifetime_hours),
        sender=sender,
    )


def queue_dispatcher(
    rt: Runtime, enqueue: Callable[[DeliveryJob], None], routes: Routes, notify: Callable[[], None]
) -> ReleaseDispatcher:
    """Released messages and digests as delivery jobs, one per next hop, like the history writer's."""

    def dispatch(message_id: str, mail_from: str, recipients: Sequence[str], raw: bytes) -> list[str]:
        ids = []
        for route, rcpts in routes(recipients):
            job = DeliveryJob.create(
                message_id=message_id,
                mail_from=mail_from,
                recipients=rcpts,
                route=route,
                message=raw,
                lifetime=rt.config.delivery.max_queue_lifetime,
            )
            enqueue(job)
            ids.append(job.id)
        notify()
        return ids

    return dispatch


class QuarantineJobs:
    """The periodic work of `mailwarden serve`."""

    def __init__(self, rt: Runtime, dispatcher: ReleaseDispatcher) -> None:
        self.rt = rt
        self.dispatcher = dispatcher
        self.quarantine = quarantine_for(rt, dispatcher)
        self.digests = digests_for(rt, self.quarantine, dispatcher)
        self._tasks: list[asyncio.Task[None]] = []
        self.requests_mark = rt.config.paths.data_dir / "release-requests.mark"

    async def start(self) -> None:
        cfg = self.rt.config.quarantine
        self._tasks = [
            asyncio.create_task(self._every(cfg.release_interval_seconds, self.release), name="quarantine-release"),
            asyncio.create_task(self._every(cfg.expiry_interval_seconds, self.expire), name="quarantine-expiry"),
            asyncio.create_task(self._every(cfg.digest_interval_seconds, self.digest), name="quarantine-digest"),
            asyncio.create_task(
                self._every(cfg.release_interval_seconds, self.tell_requests), name="quarantine-requests"
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def release(self) -> None:
        self.quarantine.dispatch_releases()

    def expire(self) -> None:
        self.quarantine.expire()

    def digest(self) -> None:
        self.digests.send_due()
        self.digests.forget_used_tokens()

    def notify_requests(self) -> int:
        """Tell the organisation's administrators (admin accounts with an address) about release requests
        made since the last round, one mail per administrator; how many mails were queued. The mark of the
        last request told is a file in the data directory, so a restart neither repeats nor skips one."""
        now = datetime.now(UTC)
        try:
            after = datetime.fromisoformat(self.requests_mark.read_text().strip())
        except (OSError, ValueError):  # the first round: requests from before this server are not news
            self._mark(now)
            return 0
        requests = self.quarantine.store.requested_since(after)
        if not requests:
            return 0
        admins = [u for u in Accounts(self.rt.db).list_users() if u.role is Role.ADMIN and u.email and not u.disabled]
        sent = 0
        for admin in admins:
            mine = [e for e in requests if admin.organisation in (None, e.organisation)]
            if not mine:
                continue
            listed = [(e.id, e.recipient, e.sender, e.subject) for e in mine]
            assert admin.email is not None
            language = self.quarantine.policy_for(admin.organisation or mine[0].organisation).notifications.language
            raw = release_request_notice(
                admin.email, self.hostname, listed, self.rt.config.console.public_url, now, language=language
            )
            self.dispatcher(ALERT_MESSAGE_PREFIX + new_id(now), "", [admin.email], raw)
            sent += 1
        log.info("quarantine_release_requests_told", requests=len(requests), admins=sent)
        self._mark(max(e.requested_at or now for e in requests))
        return sent

    def tell_requests(self) -> None:
        self.notify_requests()

    @property
    def hostname(self) -> str:
        return self.rt.config.delivery.ehlo_hostname()

    def _mark(self, at: datetime) -> None:
        temp = self.requests_mark.with_suffix(".tmp")
        temp.write_text(at.isoformat())
        temp.replace(self.requests_mark)

    async def _every(self, seconds: float, work: Callable[[], None]) -> None:
        while True:
            try:
                await asyncio.to_thread(work)
            except Exception as exc:  # a failed round is retried at the next one; the server keeps running
                reason = unavailable(exc)
                if reason is not None:  # the database is away: one line, no traceback, every round
                    log.error("quarantine_job_waiting", job=work.__name__, error=reason)
                else:
                    log.exception("quarantine_job_failed", job=work.__name__)
            await asyncio.sleep(seconds)


__all__ = ["QuarantineJobs", "digests_for", "policy_lookup", "quarantine_for", "queue_dispatcher"]
