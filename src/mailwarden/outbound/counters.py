"""How many recipients a sender has addressed: the last hour (sliding, external and internal apart) and the
current UTC day, the numbers the outbound spam policy's sending limits compare against.

Every counter works in UTC minutes. `add` counts one message's recipients and returns the totals including
them, in one atomic step, so two messages crossing a limit at the same moment cannot both see the total
before the other: the one that makes it `limit + 1` is the one over. The hour is the 60 minutes ending with
the current one; the day starts at midnight UTC, as EOP's "restrict until the next day" (BlockUserForToday)
does. The time is the caller's (`at`), so tests drive the clock and nodes agree when their clocks do (NTP).

Three implementations of one protocol: `MemoryCounter` (one process), `SqlCounter` (the store's
`outbound_counts`, the embedded default shared by the nodes on one database) and `RedisCounter` (one hash
per sender, one Lua script per message, shared by every node on one Redis).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from mailwarden.errors import DependencyUnavailable
from mailwarden.store.outbound import DAY_MINUTES, HOUR_MINUTES, OutboundCounts, window

PRUNE_AFTER_MINUTES = 2 * DAY_MINUTES  # buckets kept in the database: the day needs one, two is margin
REDIS_PREFIX = "mailwarden:out:"


@dataclass(frozen=True)
class Usage:
    """A sender's recipients: external and internal in the last hour, all of them since midnight UTC."""

    external_hour: int
    internal_hour: int
    day: int


class RecipientCounter(Protocol):
    """Counts a sender's recipients for the sending limits; shared by the nodes when the store is."""

    async def add(self, organisation: str, sender: str, *, external: int, internal: int, at: datetime) -> Usage:
        """Count one message's recipients at `at`; the sender's totals including them."""
        ...

    async def peek(self, organisation: str, sender: str, at: datetime) -> Usage:
        """The sender's totals at `at`, adding nothing."""
        ...


def epoch_minute(at: datetime) -> int:
    """Minutes since the epoch of a tz-aware time (a naive one is a bug: whose midnight would it be?)."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given to a recipient counter; use a tz-aware UTC datetime")
    return int(at.timestamp()) // 60


@dataclass
class _Sender:
    day: int  # first minute of the UTC day `day_total` counts
    day_total: int = 0
    last_minute: int = 0
    minutes: dict[int, tuple[int, int]] = field(default_factory=dict)  # minute -> (external, internal)


class MemoryCounter:
    """Counters in this process: per sender, the per-minute buckets of the last hour and the day's total.

    For one node (tests, `scan`, a single embedded server); several nodes need `SqlCounter` or
    `RedisCounter`. Senders idle since before today and for an hour are swept every `sweep_every` adds.
    """

    def __init__(self, sweep_every: int = 4096) -> None:
        self._senders: dict[tuple[str, str], _Sender] = {}
        self._sweep_every = sweep_every
        self._adds = 0

    async def add(self, organisation: str, sender: str, *, external: int, internal: int, at: datetime) -> Usage:
        minute = epoch_minute(at)
        state = self._state((organisation, sender.lower()), minute)
        before = state.minutes.get(minute, (0, 0))
        state.minutes[minute] = (before[0] + external, before[1] + internal)
        state.day_total += external + internal
        state.last_minute = max(state.last_minute, minute)
        self._adds += 1
        if self._adds % self._sweep_every == 0:
            self._sweep(minute)
        return _usage(state, minute)

    async def peek(self, organisation: str, sender: str, at: datetime) -> Usage:
        minute = epoch_minute(at)
        state = self._senders.get((organisation, sender.lower()))
        if state is None:
            return Usage(0, 0, 0)
        return _usage(state, minute)

    def __len__(self) -> int:
        """Senders held (for tests of the sweep and for metrics)."""
        return len(self._senders)

    def _state(self, key: tuple[str, str], minute: int) -> _Sender:
        hour_start, day_start = window(minute)
        state = self._senders.get(key)
        if state is None:
            state = self._senders[key] = _Sender(day=day_start)
        if day_start > state.day:  # midnight UTC passed: the day's count starts again
            state.day, state.day_total = day_start, 0
        for old in [m for m in state.minutes if m < hour_start]:
            del state.minutes[old]
        return state

    def _sweep(self, minute: int) -> None:
        hour_start, day_start = window(minute)
        idle = [k for k, s in self._senders.items() if s.day < day_start and s.last_minute < hour_start]
        for key in idle:
            del self._senders[key]


def _usage(state: _Sender, minute: int) -> Usage:
    hour_start, day_start = window(minute)
    external = internal = 0
    for bucket, (e, i) in state.minutes.items():
        if hour_start <= bucket <= minute:
            external += e
            internal += i
    return Usage(external, internal, state.day_total if state.day == day_start else 0)


class SqlCounter:
    """Counters in the store's `outbound_counts` table: one upsert and one sum per message, in a worker
    thread (a SQLite commit waits for the disk; the event loop must not)."""

    def __init__(self, counts: OutboundCounts) -> None:
        self.counts = counts

    async def add(self, organisation: str, sender: str, *, external: int, internal: int, at: datetime) -> Usage:
        minute = epoch_minute(at)
        totals = await asyncio.to_thread(self.counts.add, organisation, sender.lower(), minute, external, internal)
        return Usage(*totals)

    async def peek(self, organisation: str, sender: str, at: datetime) -> Usage:
        totals = await asyncio.to_thread(self.counts.read, organisation, sender.lower(), epoch_minute(at))
        return Usage(*totals)

    async def prune(self, at: datetime) -> int:
        """Delete buckets more than two days old at `at`; how many went. Run it from a periodic job."""
        return await asyncio.to_thread(self.counts.prune, epoch_minute(at) - PRUNE_AFTER_MINUTES)


# One hash per sender. Fields: e<minute> and i<minute> (external, internal recipients in that UTC minute)
# and d<first minute of the day> (all recipients that day). Adding, pruning and reading happen in this one
# script, which Redis runs atomically: the totals returned include this message and no other message's
# half. The hash lives until the day and the hour have both passed (ARGV[4] seconds from the last add);
# fields of minutes out of the hour and of earlier days are removed once the hash holds more than ARGV[5]
# fields, so it stays small.
_LUA = """
local key = KEYS[1]
local minute = tonumber(ARGV[1])
local external = tonumber(ARGV[2])
local internal = tonumber(ARGV[3])
local day = minute - minute % 1440
local first = minute - 59
if external + internal > 0 then
  if external > 0 then redis.call('HINCRBY', key, 'e' .. minute, external) end
  if internal > 0 then redis.call('HINCRBY', key, 'i' .. minute, internal) end
  redis.call('HINCRBY', key, 'd' .. day, external + internal)
  redis.call('EXPIRE', key, tonumber(ARGV[4]))
  if redis.call('HLEN', key) > tonumber(ARGV[5]) then
    for _, f in ipairs(redis.call('HKEYS', key)) do
      local n = tonumber(string.sub(f, 2))
      if (string.sub(f, 1, 1) == 'd' and n < day) or (string.sub(f, 1, 1) ~= 'd' and n < first) then
        redis.call('HDEL', key, f)
      end
    end
  end
end
local fields = {}
for m = first, minute do
  fields[#fields + 1] = 'e' .. m
  fields[#fields + 1] = 'i' .. m
end
fields[#fields + 1] = 'd' .. day
local values = redis.call('HMGET', key, unpack(fields))
local e, i = 0, 0
for n = 1, #fields - 1, 2 do
  e = e + (tonumber(values[n]) or 0)
  i = i + (tonumber(values[n + 1]) or 0)
end
return {e, i, tonumber(values[#fields]) or 0}
"""
_PRUNE_ABOVE = 4 * HOUR_MINUTES + 8  # fields: an hour of both kinds is 120; prune about once an hour
_EXPIRY_MARGIN_S = 300  # nodes' clocks differ by seconds; the hash outlives the later of its windows by this


def redis_key(prefix: str, organisation: str, sender: str) -> str:
    return f"{prefix}{quote(organisation, safe='')}:{sender.lower()}"


class RedisCounter:
    """Counters in Redis shared by every node: key `<prefix><organisation>:<sender>` (the organisation
    URL-quoted, so no colon in it can make two keys one), one Lua script per message."""

    def __init__(self, client: Any, prefix: str = REDIS_PREFIX) -> None:
        self.client = client  # a redis.asyncio.Redis; typed loosely so redis-py stays an optional import
        self.prefix = prefix
        self._script = client.register_script(_LUA)

    @classmethod
    def from_url(cls, url: str, prefix: str = REDIS_PREFIX) -> RedisCounter:
        """A counter on a new asyncio client for `url` (redis-py is imported only when Redis is configured)."""
        import redis.asyncio

        return cls(redis.asyncio.Redis.from_url(url), prefix=prefix)

    async def add(self, organisation: str, sender: str, *, external: int, internal: int, at: datetime) -> Usage:
        minute = epoch_minute(at)
        return await self._run(organisation, sender, minute, external, internal)

    async def peek(self, organisation: str, sender: str, at: datetime) -> Usage:
        return await self._run(organisation, sender, epoch_minute(at), 0, 0)

    def key(self, organisation: str, sender: str) -> str:
        return redis_key(self.prefix, organisation, sender)

    async def _run(self, organisation: str, sender: str, minute: int, external: int, internal: int) -> Usage:
        from redis.exceptions import ConnectionError as RedisDown
        from redis.exceptions import TimeoutError as RedisTimeout

        # A time to live, not a moment: a node working off an old backlog (`at` hours ago) must not set an
        # expiry in the past, which would delete the counts at once.
        _, day_start = window(minute)
        ttl = (max(day_start + DAY_MINUTES, minute + HOUR_MINUTES) - minute) * 60 + _EXPIRY_MARGIN_S
        args = [minute, external, internal, ttl, _PRUNE_ABOVE]
        try:
            e, i, d = await self._script(keys=[self.key(organisation, sender)], args=args)
        except (RedisDown, RedisTimeout) as exc:
            raise DependencyUnavailable(f"outbound counters in Redis: {exc}") from None
        return Usage(int(e), int(i), int(d))
