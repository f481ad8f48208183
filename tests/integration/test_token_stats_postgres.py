"""The classifier's token statistics on a real PostgreSQL: the same round trip as on SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from mailwarden.pipeline.spam.classifier import Classifier
from mailwarden.pipeline.spam.statstore import SqlTokenStore
from mailwarden.store import Database
from tests.unit.pipeline.spam.test_statstore import exercise

pytestmark = pytest.mark.integration


@pytest.fixture
def own_database(postgres_url: str) -> Iterator[str]:
    """A database of this module's own, so the token table never meets the store tests' schema checks."""
    url = make_url(postgres_url)
    name = f"{url.database}_tokens"
    admin_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_postgres_token_store_round_trip(own_database: str) -> None:
    db = Database(own_database)
    try:
        exercise(SqlTokenStore(db))
        clf = Classifier(SqlTokenStore(db), min_messages=1)
        clf.learn({"cheap", "pills"}, is_spam=True)
        assert clf.score({"cheap", "pills"}).probability > 0.5
    finally:
        db.close()
