"""The sending-limit counters at their edges: exactly at a limit and one over, the sliding hour, midnight
UTC, kept apart per sender; the same cases for the in-process counter and the database one (SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from mailwarden.outbound import MemoryCounter, RecipientCounter, SqlCounter, Usage
from mailwarden.store.db import Database
from mailwarden.store.outbound import OutboundCounts
from mailwarden.store.schema import OutboundCountRow

ORG = "contoso"
T0 = datetime(2026, 12, 7, 10, 0, 30, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'counters.sqlite3'}")
    database.migrate()
    yield database
    database.close()


@pytest.fixture(params=["memory", "sql"])
async def counter(request: pytest.FixtureRequest, db: Database) -> AsyncIterator[RecipientCounter]:
    yield MemoryCounter() if request.param == "memory" else SqlCounter(OutboundCounts(db))


async def test_a_limit_is_reached_exactly_then_passed_by_one(counter: RecipientCounter) -> None:
    limit = 10  # say, external recipients per hour
    first = await counter.add(ORG, "ann@contoso.com", external=4, internal=1, at=T0)
    at_limit = await counter.add(ORG, "ann@contoso.com", external=6, internal=0, at=T0 + timedelta(seconds=5))
    over = await counter.add(ORG, "ann@contoso.com", external=1, internal=0, at=T0 + timedelta(seconds=9))
    assert first == Usage(external_hour=4, internal_hour=1, day=5)
    assert at_limit.external_hour == limit
    assert over == Usage(external_hour=limit + 1, internal_hour=1, day=12)


async def test_the_hour_slides_minute_by_minute(counter: RecipientCounter) -> None:
    sender = "bob@contoso.com"
    await counter.add(ORG, sender, external=5, internal=2, at=T0)  # 10:00:30
    await counter.add(ORG, sender, external=3, internal=0, at=T0 + timedelta(minutes=30))  # 10:30:30
    almost = await counter.peek(ORG, sender, datetime(2026, 12, 7, 10, 59, 59, tzinfo=UTC))
    assert almost == Usage(external_hour=8, internal_hour=2, day=10)
    # at 11:00 the hour is 10:01-11:00: the 10:00 minute left it; the day keeps everything
    slid = await counter.peek(ORG, sender, datetime(2026, 12, 7, 11, 0, 0, tzinfo=UTC))
    assert slid == Usage(external_hour=3, internal_hour=0, day=10)
    later = await counter.add(ORG, sender, external=1, internal=0, at=datetime(2026, 12, 7, 11, 31, tzinfo=UTC))
    assert later == Usage(external_hour=1, internal_hour=0, day=11)


async def test_the_day_starts_again_at_midnight_utc_while_the_hour_runs_across_it(counter: RecipientCounter) -> None:
    sender = "carol@contoso.com"
    late = datetime(2026, 12, 7, 23, 59, 30, tzinfo=UTC)
    assert await counter.add(ORG, sender, external=7, internal=2, at=late) == Usage(7, 2, 9)
    assert await counter.peek(ORG, sender, late.replace(second=59)) == Usage(7, 2, 9)
    after = datetime(2026, 12, 8, 0, 0, 10, tzinfo=UTC)
    assert await counter.peek(ORG, sender, after) == Usage(external_hour=7, internal_hour=2, day=0)
    assert await counter.add(ORG, sender, external=1, internal=0, at=after) == Usage(8, 2, 1)


async def test_midnight_is_utc_whatever_the_zone_of_the_time_given(counter: RecipientCounter) -> None:
    sender = "dan@contoso.com"
    new_york = datetime(2026, 12, 7, 18, 59, tzinfo=timezone(timedelta(hours=-5)))  # 23:59 UTC
    await counter.add(ORG, sender, external=3, internal=0, at=new_york)
    assert (await counter.peek(ORG, sender, datetime(2026, 12, 7, 23, 59, 45, tzinfo=UTC))).day == 3
    assert (await counter.peek(ORG, sender, datetime(2026, 12, 8, 0, 0, tzinfo=UTC))).day == 0


async def test_senders_and_organisations_are_counted_apart(counter: RecipientCounter) -> None:
    await counter.add(ORG, "Erin@Contoso.com", external=2, internal=0, at=T0)
    await counter.add(ORG, "erin@contoso.com", external=1, internal=0, at=T0)  # addresses compare lower-cased
    await counter.add("fabrikam", "erin@contoso.com", external=5, internal=0, at=T0)
    await counter.add(ORG, "frank@contoso.com", external=9, internal=0, at=T0)
    assert await counter.peek(ORG, "erin@contoso.com", T0) == Usage(3, 0, 3)
    assert await counter.peek("fabrikam", "ERIN@contoso.com", T0) == Usage(5, 0, 5)
    assert await counter.peek(ORG, "nobody@contoso.com", T0) == Usage(0, 0, 0)


async def test_concurrent_messages_each_see_a_total_of_their_own(counter: RecipientCounter) -> None:
    """No two messages see the same total: the one that makes it `limit + 1` is the only one over."""
    results = await asyncio.gather(
        *(counter.add(ORG, "gina@contoso.com", external=1, internal=0, at=T0) for _ in range(40))
    )
    assert sorted(u.external_hour for u in results) == list(range(1, 41))


async def test_a_naive_time_is_refused(counter: RecipientCounter) -> None:
    with pytest.raises(ValueError, match="naive"):
        await counter.add(ORG, "hal@contoso.com", external=1, internal=0, at=datetime(2026, 12, 7, 10, 0))


async def test_memory_counter_forgets_senders_idle_since_before_today() -> None:
    counter = MemoryCounter(sweep_every=2)
    await counter.add(ORG, "old@contoso.com", external=1, internal=0, at=T0 - timedelta(days=1))
    await counter.add(ORG, "new@contoso.com", external=1, internal=0, at=T0)
    assert len(counter) == 1
    assert await counter.peek(ORG, "new@contoso.com", T0) == Usage(1, 0, 1)


async def test_two_nodes_on_one_database_share_the_counts(db: Database) -> None:
    node_a, node_b = SqlCounter(OutboundCounts(db)), SqlCounter(OutboundCounts(db))
    await node_a.add(ORG, "ivy@contoso.com", external=3, internal=1, at=T0)
    assert await node_b.add(ORG, "ivy@contoso.com", external=2, internal=0, at=T0) == Usage(5, 1, 6)


async def test_sql_prune_removes_buckets_older_than_two_days(db: Database) -> None:
    counter = SqlCounter(OutboundCounts(db))
    ages = [timedelta(days=3), timedelta(days=2, minutes=1), timedelta(days=2), timedelta(0)]
    for age in ages:
        await counter.add(ORG, "jo@contoso.com", external=1, internal=0, at=T0 - age)
    # the minute buckets of three days and of two days and a minute ago, and the day row of three days ago
    assert await counter.prune(T0) == 3
    with db.session() as session:
        kept = session.scalars(select(OutboundCountRow.minute).order_by(OutboundCountRow.minute)).all()
    t0_minute = int(T0.timestamp()) // 60
    assert [m for m in kept if m >= 0] == [t0_minute - 2 * 1440, t0_minute]  # a bucket exactly two days old stays
    assert len([m for m in kept if m < 0]) == 2  # the days of both
    assert await counter.peek(ORG, "jo@contoso.com", T0) == Usage(1, 0, 1)
