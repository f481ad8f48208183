"""Connection statistics on a real PostgreSQL: the same counting as on SQLite, under concurrency."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from mailwarden.store import Database
from mailwarden.store.connections import ConnectionStats
from tests.integration.conftest import database_beside
from tests.unit.store.test_connections import (
    check_concurrent_counting,
    check_counting,
    check_refused_over_a_period,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_database(postgres_url: str) -> Iterator[str]:
    """A database of this module's own: the session's database must stay unmigrated for the store tests."""
    with database_beside(postgres_url, "conn") as url:
        yield url


@pytest.fixture
def stats(own_database: str) -> Iterator[ConnectionStats]:
    db = Database(own_database)
    db.migrate()
    with db.engine.begin() as connection:
        connection.execute(text("TRUNCATE connection_stats"))
    yield ConnectionStats(db)
    db.close()


def test_counting_per_day_ip_and_organisation(stats: ConnectionStats) -> None:
    assert stats.db.dialect == "postgresql"
    assert stats.db.schema_differences() == []
    check_counting(stats)


def test_concurrent_counting_loses_nothing(stats: ConnectionStats) -> None:
    check_concurrent_counting(stats, threads=16, each=50)


def test_refused_connections_over_a_period(stats: ConnectionStats) -> None:
    check_refused_over_a_period(stats)
