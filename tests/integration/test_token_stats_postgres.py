"""The classifier's token statistics on a real PostgreSQL: the same round trip as on SQLite, and migration
0006 adopting the table older versions created themselves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailwarden.pipeline.spam.classifier import Classifier
from mailwarden.store import Database
from mailwarden.store.tokens import SqlTokenStore
from tests.integration.conftest import database_beside
from tests.unit.model.token_store_cases import exercise
from tests.unit.store.test_tokens import adopt_old_table, refuse_a_foreign_table

pytestmark = pytest.mark.integration


@pytest.fixture
def own_database(postgres_url: str) -> Iterator[str]:
    """A database of this test's own: the session's database stays unmigrated for the store tests."""
    with database_beside(postgres_url, "tokens") as url:
        yield url


def test_postgres_token_store_round_trip(own_database: str) -> None:
    db = Database(own_database)
    try:
        db.migrate()
        exercise(SqlTokenStore(db))
        clf = Classifier(SqlTokenStore(db), min_messages=1)
        clf.learn({"cheap", "pills"}, is_spam=True)
        assert clf.score({"cheap", "pills"}).probability > 0.5
    finally:
        db.close()


def test_postgres_migration_adopts_the_table_an_older_version_created(own_database: str) -> None:
    db = Database(own_database)
    try:
        adopt_old_table(db)
    finally:
        db.close()


def test_postgres_migration_refuses_a_token_stats_table_of_another_shape(own_database: str) -> None:
    db = Database(own_database)
    try:
        refuse_a_foreign_table(db)
    finally:
        db.close()
