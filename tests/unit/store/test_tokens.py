"""Token statistics round trips on SQLite (a migrated temporary file) and on the real Redis on loopback,
and migration 0006 adopting the table older versions created themselves."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, inspect, text
from sqlalchemy.schema import CreateTable

from mailwarden.pipeline.spam.classifier import Classifier
from mailwarden.pipeline.spam.statstore import CachedTokenStore
from mailwarden.store.db import Database
from mailwarden.store.tokens import RedisTokenStore, SqlTokenStore, has_token_table
from tests.services import unavailable
from tests.unit.model.token_store_cases import exercise

REDIS_URL = os.environ.get("MAILWARDEN_TEST_REDIS", "redis://127.0.0.1:6379/0")
# the table as `SqlTokenStore` created it before revision 0006: its own metadata, CREATE TABLE IF NOT EXISTS
OLD_TOKEN_STATS = Table(
    "token_stats",
    MetaData(),
    Column("token", String(200), primary_key=True),
    Column("spam", BigInteger().with_variant(Integer, "sqlite"), nullable=False, default=0),
    Column("ham", BigInteger().with_variant(Integer, "sqlite"), nullable=False, default=0),
)


def test_sqlite_store_round_trip(db: Database) -> None:
    exercise(SqlTokenStore(db))
    # a second handle on the same database sees the same model
    assert SqlTokenStore(db).totals() == (11, 21)


def test_sqlite_store_reads_a_large_message_in_chunks(db: Database) -> None:
    store = SqlTokenStore(db)
    tokens = [f"t{i}" for i in range(1_200)]
    store.add(tokens, 1, 0)
    assert len(store.counts(tokens)) == 1_200


class _Counted(SqlTokenStore):
    """The SQLite store, counting the queries a scanning process's copy makes."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.reads = self.snapshots = 0

    def read(self, tokens: Sequence[str]) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        self.reads += 1
        return super().read(tokens)

    def snapshot(self, limit: int) -> tuple[tuple[int, int], dict[str, tuple[int, int]]] | None:
        self.snapshots += 1
        return super().snapshot(limit)


def test_a_small_model_is_copied_whole_and_no_message_waits_for_a_read(db: Database) -> None:
    store = _Counted(db)
    store.load({"free": (3, 1), "money": (2, 0), "meeting": (0, 5)}, 4, 6)
    now = [0.0]
    cached = CachedTokenStore(store, ttl=10, snapshot_max=100, clock=lambda: now[0])
    for _ in range(3):
        assert cached.read(["free", "meeting", "never-seen"]) == ((4, 6), {"free": (3, 1), "meeting": (0, 5)})
    assert (store.snapshots, store.reads) == (1, 0)
    # another process learns: seen once the copy is renewed
    store.add(["never-seen"], 1, 0)
    now[0] = 10.0
    assert cached.read(["never-seen"]) == ((5, 6), {"never-seen": (1, 0)})
    assert (store.snapshots, store.reads) == (2, 0)
    # what this process learns is used at once (read per token until the copy is renewed)
    cached.add(["meeting"], 0, 1)
    assert cached.read(["meeting"]) == ((5, 7), {"meeting": (0, 6)})
    assert store.reads == 1


def test_a_model_too_large_to_copy_is_read_per_message(db: Database) -> None:
    store = _Counted(db)
    store.load({f"t{i}": (1, 0) for i in range(50)}, 1, 1)
    now = [0.0]
    cached = CachedTokenStore(store, ttl=10, snapshot_max=49, clock=lambda: now[0])
    assert cached.read(["t1", "t2", "x"]) == ((1, 1), {"t1": (1, 0), "t2": (1, 0)})
    assert (store.snapshots, store.reads) == (1, 1)
    now[0] = 10.0  # renewed: not asked for a whole copy again within the hour
    assert cached.read(["t3"]) == ((1, 1), {"t3": (1, 0)})
    assert (store.snapshots, store.reads) == (1, 2)
    now[0] = 3600.0
    cached.read(["t3"])
    assert store.snapshots == 2


def adopt_old_table(db: Database) -> None:
    """A database at revision 0005 whose token store created `token_stats` itself, with counts in it, is
    migrated: the table and its counts are kept, and the schema then matches the models."""
    db.migrate("0005")
    with db.engine.begin() as connection:
        connection.execute(CreateTable(OLD_TOKEN_STATS, if_not_exists=True))
    SqlTokenStore(db).load({"free": (3, 1)}, 4, 2)
    db.migrate()
    assert SqlTokenStore(db).read(["free"]) == ((4, 2), {"free": (3, 1)})
    assert db.schema_differences() == []


def refuse_a_foreign_table(db: Database) -> None:
    """A `token_stats` of another shape is not ours to adopt: the migration names it and stops."""
    db.migrate("0005")
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE token_stats (id INTEGER PRIMARY KEY, note VARCHAR(20))"))
    with pytest.raises(RuntimeError, match="token_stats exists with columns"):
        db.migrate()
    assert db.current_revision() == "0005"


def test_migration_adopts_the_table_an_older_version_created(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    try:
        adopt_old_table(db)
    finally:
        db.close()


def test_migration_refuses_a_token_stats_table_of_another_shape(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'foreign.sqlite3'}")
    try:
        refuse_a_foreign_table(db)
    finally:
        db.close()


def test_a_new_database_gets_the_table_from_the_migrations(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    try:
        assert not has_token_table(db)
        db.migrate()
        assert has_token_table(db)
        assert {c["name"] for c in inspect(db.engine).get_columns("token_stats")} == {"token", "spam", "ham"}
    finally:
        db.close()


@pytest.fixture
def redis_store() -> Iterator[RedisTokenStore]:
    try:
        import redis
    except ImportError:
        unavailable("redis-py is not installed")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL} unreachable: {exc}")
    prefix = f"mailwarden-test:{uuid.uuid4().hex}:"
    try:
        yield RedisTokenStore(client, prefix=prefix)
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def test_redis_store_round_trip(redis_store: RedisTokenStore) -> None:
    exercise(redis_store)


def test_redis_store_reads_a_message_and_the_totals_in_one_round_trip(redis_store: RedisTokenStore) -> None:
    calls: list[str] = []
    real_pipeline = redis_store.client.pipeline

    def counting_pipeline(*args: object, **kwargs: object) -> object:
        calls.append("pipeline")
        return real_pipeline(*args, **kwargs)

    redis_store.client.pipeline = counting_pipeline
    try:
        redis_store.read([f"t{i}" for i in range(300)])
    finally:
        redis_store.client.pipeline = real_pipeline
    assert calls == ["pipeline"]


def test_classifier_shares_one_model_between_two_nodes(redis_store: RedisTokenStore) -> None:
    node_a = Classifier(redis_store, min_messages=1)
    node_b = Classifier(RedisTokenStore(redis_store.client, prefix=redis_store.prefix), min_messages=1)
    node_a.learn({"cheap", "pills"}, is_spam=True)
    node_a.learn({"agenda", "minutes"}, is_spam=False)
    assert node_b.score({"cheap", "pills"}).probability > 0.5 > node_b.score({"agenda"}).probability
