"""The wiring of the classifier's token statistics: the runtime opens the store `[stages.spam]` names and
hands it to the stage."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailwarden.model import Message
from mailwarden.pipeline.spam.learning import learn_message
from mailwarden.pipeline.spam.stage import SpamFilter
from mailwarden.pipeline.spam.statstore import CachedTokenStore, MemoryTokenStore
from mailwarden.service.config import Config
from mailwarden.service.runtime import Runtime
from mailwarden.store.tokens import SqlTokenStore
from tests.services import unavailable
from tests.unit.pipeline.spam.test_stage import learnt_spam


def runtime(data_dir: Path, **spam: Any) -> Runtime:
    return Runtime(Config.model_validate({"paths": {"data_dir": str(data_dir)}, "stages": {"spam": spam}}))


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime_ = runtime(tmp_path)
    yield runtime_
    runtime_.close()


def test_the_stage_keeps_its_statistics_in_the_product_database(rt: Runtime) -> None:
    rt.db.migrate()
    spam = SpamFilter.from_services(rt.stage_services)
    store = spam.classifier.store
    assert isinstance(store, CachedTokenStore) and isinstance(store.inner, SqlTokenStore)
    learn_message(spam.classifier, Message(learnt_spam(7)), True)
    again = SpamFilter.from_services(rt.stage_services)  # a restart sees what was learnt
    assert again.classifier.store.totals() == spam.classifier.store.totals()


def test_before_init_a_scan_uses_the_shipped_model_in_memory(rt: Runtime) -> None:
    spam = SpamFilter.from_services(rt.stage_services)
    assert isinstance(spam.classifier.store, MemoryTokenStore)
    assert spam.classifier.store.totals()[0] > 100
    assert rt.db.current_revision() is None  # scanning created nothing in the database


def test_the_stage_shares_its_model_through_redis(tmp_path: Path) -> None:
    import redis

    url = os.environ.get("MAILWARDEN_TEST_REDIS", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {url} unreachable: {exc}")
    prefix = f"mailwarden-test:{uuid.uuid4().hex}:"
    # no count cache: what one node learns, the other uses at once (else within the cache's seconds)
    node_a = runtime(tmp_path / "a", statistics="redis", redis_url=url, redis_prefix=prefix, statistics_cache_seconds=0)
    node_b = runtime(tmp_path / "b", statistics="redis", redis_url=url, redis_prefix=prefix, statistics_cache_seconds=0)
    try:
        spam_a = SpamFilter.from_services(node_a.stage_services)
        spam_b = SpamFilter.from_services(node_b.stage_services)  # loads nothing: the model is there
        totals = spam_a.classifier.store.totals()
        assert totals[0] > 100 and spam_b.classifier.store.totals() == totals
        learn_message(spam_a.classifier, Message(learnt_spam(3)), True)
        assert spam_b.classifier.store.totals() == (totals[0] + 1, totals[1])  # one model for every node
    finally:
        node_a.close()
        node_b.close()
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()
