"""A migrated database, a blob directory and a quarantine with a recording dispatcher, per test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailwarden.model.policy import Policy
from mailwarden.quarantine import Quarantine
from mailwarden.store import Database, History, LocalBlobStore

from .world import T0, Dispatched, World


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = Database(f"sqlite:///{tmp_path / 'mw.sqlite3'}")
    db.migrate()
    history = History(db)
    blobs = LocalBlobStore(tmp_path / "blobs")
    dispatched = Dispatched()
    policies: dict[str, Policy] = {}
    quarantine = Quarantine(
        db,
        blobs,
        history,
        policies=lambda org: policies.get(org or "", Policy()),
        dispatcher=dispatched,
        clock=lambda: T0 + timedelta(hours=1),
    )
    yield World(db, history, blobs, quarantine, dispatched, policies)
    db.close()
