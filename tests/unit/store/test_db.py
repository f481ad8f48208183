from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from mailwarden.store import Database
from mailwarden.store.db import head_revision
from mailwarden.store.schema import OrganisationRow


def test_migrate_from_empty_to_head(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'mw.sqlite3'}")
    assert (tmp_path / "deep" / "dir").is_dir()  # the parent directory is created for the user
    assert db.current_revision() is None
    db.migrate()
    assert db.current_revision() == head_revision()
    tables = set(inspect(db.engine).get_table_names())
    assert {"messages", "recipients", "events", "organisations", "domains", "policies", "audit_log"} <= tables
    db.migrate()  # running it again on every start is harmless
    assert db.current_revision() == head_revision()
    db.close()


def test_migrations_create_exactly_the_models(db: Database) -> None:
    assert db.schema_differences() == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db: Database) -> None:
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 10_000


def test_session_commits_on_success_and_rolls_back_on_error(db: Database) -> None:
    with db.session() as session:
        session.add(OrganisationRow(name="kept", monitor_only=True))
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(OrganisationRow(name="lost", monitor_only=True))
        session.flush()
        raise RuntimeError("boom")
    with db.session() as session:
        names = set(session.scalars(OrganisationRow.__table__.select().with_only_columns(OrganisationRow.name)))
    assert names == {"kept"}
