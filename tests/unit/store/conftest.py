"""Factories for store tests: a migrated SQLite database per test and message records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwarden.store import Database, History, PolicyStore

from .records import MakeRecord, build_record


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'store' / 'mailwarden.sqlite3'}")
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def history(db: Database) -> History:
    return History(db)


@pytest.fixture
def policies(db: Database) -> PolicyStore:
    return PolicyStore(db)


@pytest.fixture
def make_record() -> MakeRecord:
    return build_record
