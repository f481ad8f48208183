from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwarden.store import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database of the test's own."""
    database = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    database.migrate()
    yield database
    database.close()
