"""The database recipient counter on a real PostgreSQL: the driver-level statements (`%s` marks, the
upsert of the minute and the day rows), the limits' edges, midnight UTC, concurrent messages and prune."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from mailwarden.outbound import SqlCounter, Usage
from mailwarden.store import Database
from mailwarden.store.outbound import OutboundCounts
from tests.integration.conftest import database_beside

pytestmark = pytest.mark.integration
ORG = "contoso"


@pytest.fixture
def db(postgres_url: str) -> Iterator[Database]:
    with database_beside(postgres_url, "outbound") as url:
        database = Database(url)
        database.migrate()
        try:
            yield database
        finally:
            database.close()


async def test_postgres_counts_at_the_edges_and_across_midnight(db: Database) -> None:
    counter = SqlCounter(OutboundCounts(db))
    late = datetime(2026, 12, 7, 23, 59, 30, tzinfo=UTC)
    assert await counter.add(ORG, "ann@contoso.com", external=9, internal=1, at=late) == Usage(9, 1, 10)
    assert await counter.add(ORG, "Ann@contoso.com", external=1, internal=0, at=late) == Usage(10, 1, 11)
    after = late + timedelta(minutes=1)
    assert await counter.peek(ORG, "ann@contoso.com", after) == Usage(10, 1, 0)
    assert await counter.add(ORG, "ann@contoso.com", external=1, internal=0, at=after) == Usage(11, 1, 1)
    assert await counter.peek(ORG, "ann@contoso.com", late + timedelta(hours=1)) == Usage(1, 0, 1)
    assert await counter.prune(late + timedelta(days=3)) == 3  # both minute rows; the day row of the 8th stays
    assert await counter.prune(late + timedelta(days=4)) == 1


async def test_postgres_concurrent_messages_each_see_a_total_of_their_own(db: Database) -> None:
    counter = SqlCounter(OutboundCounts(db))
    at = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    results = await asyncio.gather(
        *(counter.add(ORG, "bob@contoso.com", external=1, internal=0, at=at) for _ in range(30))
    )
    assert sorted(u.external_hour for u in results) == list(range(1, 31))
