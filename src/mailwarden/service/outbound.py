"""Sending limits: every recorded outbound message adds its recipients to its sender's counters (the last
hour, external and internal, and the UTC day); a sender over a limit is restricted as the organisation's
outbound spam policy says (until the next midnight UTC, until an administrator releases them, or an alert
only). Monitor mode records what would have been restricted and never refuses. docs/outbound.md.

Counters live in Redis when `[outbound] redis_url` is set (one Lua script per message, shared by every
node), in the database otherwise (shared by nodes on one PostgreSQL as well).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from mailwarden.enforce.notify import restriction_notice
from mailwarden.errors import DependencyUnavailable
from mailwarden.model import Direction, Mode, Policy
from mailwarden.model.envelope import domain_of, normalise_address
from mailwarden.model.outbound import LimitAction, RestrictedSender
from mailwarden.model.scoring import OUTBOUND_HIGH_RISK
from mailwarden.model.trace import MessageRecord
from mailwarden.outbound.counters import REDIS_PREFIX, RecipientCounter, RedisCounter, SqlCounter, Usage, redis_key
from mailwarden.store.db import Database
from mailwarden.store.outbound import OutboundCounts
from mailwarden.store.restricted import RestrictedSenders
from mailwarden.store.sender_activity import SenderActivity

log = structlog.get_logger(__name__)
POLICY_ACTOR = "policy"
SPAM_KEY = "spam:"  # the counter of a sender's outbound spam messages lives beside its recipients' counter


def forget_counts(db: Database, redis_url: str, organisation: str, sender: str) -> None:
    """Delete a sender's counts (recipients and outbound spam) wherever `[outbound] redis_url` keeps them."""
    senders = [sender, SPAM_KEY + sender]
    if not redis_url:
        OutboundCounts(db).forget(organisation, senders)
        return
    import redis
    from redis.exceptions import ConnectionError as RedisDown
    from redis.exceptions import TimeoutError as RedisTimeout

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(*(redis_key(REDIS_PREFIX, organisation, s) for s in senders))
    except (RedisDown, RedisTimeout) as exc:
        raise DependencyUnavailable(f"outbound counters in Redis: {exc}") from None
    finally:
        client.close()


def release_sender(db: Database, redis_url: str, organisation: str, sender: str, *, actor: str) -> None:
    """Let a restricted sender send again. The counts that led to the restriction go first: a release
    starts the sender's hour and day afresh (otherwise its next message would restrict it again), and a
    release that cannot reach the counters changes nothing."""
    forget_counts(db, redis_url, organisation, normalise_address(sender))
    RestrictedSenders(db).release(organisation, sender, actor=actor)


def next_midnight_utc(now: datetime) -> datetime:
    """When a restriction "for today" ends: the next midnight UTC (EOP's BlockUserForToday)."""
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)


def over_limit(usage: Usage, policy: Policy) -> str | None:
    """Which limit the totals (this message included) are over, in words; None at or under every limit."""
    p = policy.outbound_spam
    if usage.external_hour > p.effective_external_per_hour:
        return f"{usage.external_hour} external recipients in an hour (limit {p.effective_external_per_hour})"
    if usage.internal_hour > p.effective_internal_per_hour:
        return f"{usage.internal_hour} internal recipients in an hour (limit {p.effective_internal_per_hour})"
    if usage.day > p.effective_per_day:
        return f"{usage.day} recipients today (limit {p.effective_per_day})"
    return None


class OutboundGuard:
    def __init__(
        self,
        db: Database,
        policy_for: Callable[[str | None], Policy],
        domains_of: Callable[[str | None], frozenset[str]],
        *,
        counter: RecipientCounter | None = None,
        redis_url: str = "",
    ) -> None:
        self.restricted = RestrictedSenders(db)
        self.policy_for = policy_for
        self.domains_of = domains_of
        if counter is None:
            counter = RedisCounter.from_url(redis_url) if redis_url else SqlCounter(OutboundCounts(db))
        self.counter = counter
        # (recipients, raw message) → queued for delivery; the server sets it (the CLI and tests may not)
        self.send_alert: Callable[[list[str], bytes], None] | None = None
        self.hostname = "localhost"

    async def recorded(self, records: Sequence[MessageRecord]) -> list[RestrictedSender]:
        """Count each outbound message; restrict (or alert) for those over a limit. The restrictions made."""
        made = []
        for record in records:
            if record.direction is not Direction.OUTBOUND or not record.sender or record.organisation is None:
                continue
            restriction = await self._count(record)
            if restriction is not None:
                made.append(restriction)
        return made

    def _alert(self, record: MessageRecord, policy: Policy, r: RestrictedSender) -> None:
        admins = list(policy.outbound_spam.notify_admins)
        if not admins or self.send_alert is None:
            return
        for admin in admins:
            raw = restriction_notice(
                admin, self.hostname, sender=r.sender, organisation=r.organisation, why=r.reason, until=r.until,
                at=r.since, would_have=r.would_have, language=policy.notifications.language,
            )  # fmt: skip
            self.send_alert([admin], raw)

    async def _spamming(self, record: MessageRecord, policy: Policy) -> str | None:
        """Outbound spam counts too: `restrict_after_spam` spam messages in the window restrict the sender."""
        threshold = policy.outbound_spam.restrict_after_spam
        if not threshold or record.verdict.category not in OUTBOUND_HIGH_RISK:
            return None
        assert record.organisation is not None
        usage = await self.counter.add(
            record.organisation, SPAM_KEY + record.sender, external=1, internal=0, at=record.received_at
        )
        hourly = policy.outbound_spam.window_hours <= 1
        sent = usage.external_hour if hourly else usage.day
        if sent < threshold:
            return None
        return f"{sent} outbound spam messages {'in an hour' if hourly else 'today'} (limit {threshold})"

    async def _count(self, record: MessageRecord) -> RestrictedSender | None:
        assert record.organisation is not None
        own = self.domains_of(record.organisation)
        internal = sum(1 for r in record.recipients if (domain_of(r.address) or "") in own)
        external = len(record.recipients) - internal
        usage = await self.counter.add(
            record.organisation, record.sender, external=external, internal=internal, at=record.received_at
        )
        policy = self.policy_for(record.organisation)
        why = over_limit(usage, policy) or await self._spamming(record, policy)
        if why is None:
            return None
        action = policy.outbound_spam.action_at_limit
        monitor = record.mode is Mode.MONITOR
        if action is LimitAction.ALERT:
            log.warning("outbound_limit_reached", sender=record.sender, organisation=record.organisation, why=why,
                        action="alert only", notify=list(policy.outbound_spam.notify_admins))  # fmt: skip
            return None
        until = next_midnight_utc(record.received_at) if action is LimitAction.BLOCK_USER_FOR_TODAY else None
        entry = RestrictedSender(record.organisation, record.sender, why, record.received_at, until, would_have=monitor)
        restricted = self.restricted.restrict(entry, actor=POLICY_ACTOR)
        self._alert(record, policy, restricted)
        log.warning(
            "outbound_sender_restricted" if not monitor else "outbound_sender_would_be_restricted",
            sender=record.sender, organisation=record.organisation, why=why,
            until=until.isoformat() if until else "released by an administrator",
            notify=list(policy.outbound_spam.notify_admins),
        )  # fmt: skip
        return restricted


class OutboundHousekeeping:
    """Prunes what outbound protection keeps in the database once an hour: sending-limit buckets past two
    days (Redis expires its own) and sender activity past its windows (`store/sender_activity.py`)."""

    def __init__(self, db: Database, guard: OutboundGuard, *, every_seconds: float = 3600.0) -> None:
        self.activity = SenderActivity(db)
        self.guard = guard
        self.every_seconds = every_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="outbound-housekeeping")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def prune(self) -> int:
        now = datetime.now(UTC)
        gone = await asyncio.to_thread(self.activity.prune, now)
        if isinstance(self.guard.counter, SqlCounter):
            gone += await self.guard.counter.prune(now)
        return gone

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                gone = await self.prune()
                if gone:
                    log.info("outbound_pruned", rows=gone)
            except Exception as exc:  # the next hour tries again; nothing waits on this
                log.error("outbound_prune_failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every_seconds)
