"""The Redis recipient counter against the machine's Redis: the limits' edges, a hash that stays small and
expires, and two OS processes counting one sender at once with every total exact."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from mailwarden.errors import DependencyUnavailable
from mailwarden.outbound import RedisCounter, Usage
from tests.services import unavailable

pytestmark = pytest.mark.integration
REDIS_URL = os.environ.get("MAILWARDEN_TEST_REDIS", "redis://127.0.0.1:6379/0")
ORG = "contoso"
T0 = datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)

# One node: says it is ready, waits for the key `<prefix>go`, then adds `count` messages of one external and
# one internal recipient as fast as it can and prints the external totals it saw.
NODE = """
import asyncio, json, sys
from datetime import datetime, UTC
from mailwarden.outbound import RedisCounter

async def main(url, prefix, count):
    counter = RedisCounter.from_url(url, prefix=prefix)
    at = datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)
    await counter.client.ping()
    print("ready", flush=True)
    while not await counter.client.exists(prefix + "go"):
        await asyncio.sleep(0.001)
    seen = [(await counter.add("contoso", "burst@contoso.com", external=1, internal=1, at=at)).external_hour
            for _ in range(count)]
    await counter.client.aclose()
    print(json.dumps(seen))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


@pytest.fixture
async def counter() -> AsyncIterator[RedisCounter]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except redis.RedisError as exc:
        await client.aclose()
        unavailable(f"Redis at {REDIS_URL} unreachable: {exc}")
    prefix = f"mailwarden:out:test-{uuid.uuid4().hex}:"
    try:
        yield RedisCounter(client, prefix=prefix)
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_a_limit_is_reached_exactly_then_passed_by_one(counter: RedisCounter) -> None:
    await counter.add(ORG, "ann@contoso.com", external=4, internal=1, at=T0)
    at_limit = await counter.add(ORG, "ann@contoso.com", external=6, internal=0, at=T0 + timedelta(seconds=5))
    over = await counter.add(ORG, "Ann@Contoso.com", external=1, internal=0, at=T0 + timedelta(seconds=9))
    assert at_limit == Usage(external_hour=10, internal_hour=1, day=11)
    assert over == Usage(external_hour=11, internal_hour=1, day=12)
    assert await counter.peek("fabrikam", "ann@contoso.com", T0) == Usage(0, 0, 0)


async def test_the_hour_slides_and_the_day_starts_at_midnight_utc(counter: RedisCounter) -> None:
    sender = "bob@contoso.com"
    await counter.add(ORG, sender, external=5, internal=2, at=datetime(2026, 12, 7, 23, 0, 30, tzinfo=UTC))
    await counter.add(ORG, sender, external=3, internal=0, at=datetime(2026, 12, 7, 23, 30, tzinfo=UTC))
    assert await counter.peek(ORG, sender, datetime(2026, 12, 7, 23, 59, 59, tzinfo=UTC)) == Usage(8, 2, 10)
    assert await counter.peek(ORG, sender, datetime(2026, 12, 8, 0, 0, tzinfo=UTC)) == Usage(3, 0, 0)
    after = await counter.add(ORG, sender, external=1, internal=0, at=datetime(2026, 12, 8, 0, 30, 5, tzinfo=UTC))
    assert after == Usage(external_hour=1, internal_hour=0, day=1)


async def test_the_hash_stays_small_and_expires_after_its_windows(counter: RedisCounter) -> None:
    sender = "carol@contoso.com"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for minute in range(239, -1, -1):  # the last four hours, one message a minute, ending now
        last = await counter.add(ORG, sender, external=2, internal=1, at=now - timedelta(minutes=minute))
    assert last.external_hour == 120 and last.internal_hour == 60
    key = counter.key(ORG, sender)
    assert await counter.client.hlen(key) <= 4 * 60 + 8
    # it outlives the later of the next midnight UTC and the end of the hour, by a few minutes at most
    latest = max(now.replace(hour=0, minute=0) + timedelta(days=1), now + timedelta(minutes=60))
    assert latest.timestamp() <= await counter.client.expiretime(key) <= latest.timestamp() + 600


async def test_two_processes_on_one_redis_count_exactly(counter: RedisCounter) -> None:
    """Two OS processes, 300 messages each, one sender: every message saw a total no other message saw,
    so a limit of 250 was passed by exactly 350 messages across both nodes, and the end total is 600."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), "src"]))}
    args = ["-c", NODE, REDIS_URL, counter.prefix, "300"]
    nodes = [
        await asyncio.create_subprocess_exec(sys.executable, *args, stdout=asyncio.subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    try:
        for node in nodes:
            assert node.stdout is not None
            assert await asyncio.wait_for(node.stdout.readline(), 30) == b"ready\n"
        await counter.client.set(counter.prefix + "go", "1")
        outputs = []
        for node in nodes:
            out, _ = await asyncio.wait_for(node.communicate(), 60)
            assert node.returncode == 0
            outputs.append(json.loads(out))
    finally:
        for node in nodes:
            if node.returncode is None:
                node.kill()
                await node.wait()
    seen = sorted(outputs[0] + outputs[1])
    assert seen == list(range(1, 601))
    assert sum(1 for total in seen if total > 250) == 350
    assert max(outputs[0]) > min(outputs[1]) and max(outputs[1]) > min(outputs[0])  # they did overlap
    assert await counter.peek(ORG, "burst@contoso.com", T0) == Usage(600, 600, 1200)


async def test_redis_down_is_a_dependency_unavailable() -> None:
    counter = RedisCounter.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(DependencyUnavailable, match="outbound counters in Redis"):
            await counter.add(ORG, "dan@contoso.com", external=1, internal=0, at=T0)
    finally:
        await counter.client.aclose()
