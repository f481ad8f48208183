"""Token statistics round trips on SQLite (a temporary file) and on the real Redis on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mailwarden.pipeline.spam.classifier import Classifier
from mailwarden.pipeline.spam.statstore import (
    CachedTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    SqlTokenStore,
    TokenStore,
)
from mailwarden.store.db import Database
from tests.services import unavailable

REDIS_URL = os.environ.get("MAILWARDEN_TEST_REDIS", "redis://127.0.0.1:6379/0")


def exercise(store: TokenStore) -> None:
    assert store.totals() == (0, 0)
    assert store.counts(["free", "meeting"]) == {}
    store.add({"free", "money", "日本語"}, 1, 0)
    store.add({"meeting", "free"}, 0, 1)
    store.add({"free"}, 1, 0)
    assert store.totals() == (2, 1)
    assert store.counts(["free", "money", "meeting", "日本語", "unseen"]) == {
        "free": (2, 1),
        "money": (1, 0),
        "meeting": (0, 1),
        "日本語": (1, 0),
    }
    store.add({"free"}, -1, 0)  # unlearn
    assert store.counts(["free"]) == {"free": (1, 1)}
    assert store.read(["free", "unseen"]) == ((1, 1), {"free": (1, 1)})
    store.load({"bulk": (5, 7)}, 10, 20)
    assert store.counts(["bulk"]) == {"bulk": (5, 7)}
    assert store.totals() == (11, 21)


def test_memory_store_round_trip() -> None:
    exercise(MemoryTokenStore())


def test_sqlite_store_round_trip(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'mailwarden.db'}")
    try:
        exercise(SqlTokenStore(db))
        # a second handle on the same database sees the same model (table created only once)
        assert SqlTokenStore(db).totals() == (11, 21)
    finally:
        db.close()


def test_sqlite_store_reads_a_large_message_in_chunks(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'mailwarden.db'}")
    try:
        store = SqlTokenStore(db)
        tokens = [f"t{i}" for i in range(1_200)]
        store.add(tokens, 1, 0)
        assert len(store.counts(tokens)) == 1_200
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


class _CountingStore(MemoryTokenStore):
    """A shared store that counts how often the cache in front of it had to ask."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, tokens: Sequence[str]) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        self.reads += 1
        return super().read(tokens)


def test_cached_store_round_trip() -> None:
    exercise(CachedTokenStore(MemoryTokenStore(), ttl=60))


def test_cached_store_reads_each_token_once_until_it_expires() -> None:
    shared = _CountingStore()
    shared.add({"free", "money"}, 1, 0)
    now = [0.0]
    cached = CachedTokenStore(shared, ttl=10, clock=lambda: now[0])
    assert cached.read(["free", "unseen"]) == ((1, 0), {"free": (1, 0)})
    assert cached.read(["free", "unseen"]) == ((1, 0), {"free": (1, 0)})
    assert shared.reads == 1  # the second message's tokens, seen or not, came from the copy
    # another process learns: this one keeps its copy until the copy expires, then sees the change
    shared.add({"unseen"}, 0, 1)
    assert cached.read(["unseen"]) == ((1, 0), {})
    now[0] = 10.0
    assert cached.read(["unseen"]) == ((1, 1), {"unseen": (0, 1)})
    # what this process learns is used at once
    cached.add({"money"}, 0, 3)
    assert cached.read(["money"]) == ((1, 4), {"money": (1, 3)})


def test_cached_store_never_grows_past_its_limit() -> None:
    shared = _CountingStore()
    cached = CachedTokenStore(shared, ttl=3600, max_tokens=100)
    for start in range(0, 1000, 50):
        cached.read([f"t{i}" for i in range(start, start + 50)])
        assert len(cached._counts) <= 150


def _open_together(db: Database, count: int) -> list[BaseException]:
    """`count` threads open a SqlTokenStore on `db` at the same instant; what they raised."""
    import threading

    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            SqlTokenStore(db)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_processes_starting_together_on_a_new_database_all_get_the_store(tmp_path: Path) -> None:
    # the scanning processes build their stages at the same moment on a fresh database: none may fail
    # on the table another one has just created
    for attempt in range(5):
        db = Database(f"sqlite:///{tmp_path / f'new-{attempt}.db'}")
        try:
            assert _open_together(db, 8) == []
            assert SqlTokenStore(db).totals() == (0, 0)
        finally:
            db.close()
