"""Accounts: argon2 at rest, tokens stored only as hashes, sessions that end, every change audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mailwarden.model.accounts import AccountError, Role
from mailwarden.service.accounts import Accounts, sha256_hex
from mailwarden.store.schema import ApiTokenRow, UserRow
from tests.unit.api.conftest import FAST_HASHER, PASSWORD, World, build_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The API tests' world: users of every role with tokens (the accounts are the same service)."""
    w = build_world(tmp_path)
    yield w
    w.client.close()
    w.rt.close()


def test_passwords_are_argon2_and_only_the_right_one_signs_in(world: World) -> None:
    with world.rt.db.session() as s:
        stored = s.scalars(select(UserRow.password_hash).where(UserRow.name == "root")).one()
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert world.accounts.authenticate("root", PASSWORD) is not None
    assert world.accounts.authenticate("root", PASSWORD + "x") is None
    assert world.accounts.authenticate("nobody", PASSWORD) is None
    with pytest.raises(AccountError):
        world.accounts.set_password("root", "short")


def test_tokens_are_kept_as_sha256_and_expire(world: World) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    info, secret = world.accounts.create_token("ana", name="exp", expires_at=later)
    with world.rt.db.session() as s:
        row = s.scalars(select(ApiTokenRow).where(ApiTokenRow.prefix == info.prefix)).one()
    assert row.token_hash == sha256_hex(secret) and secret.startswith(info.prefix)
    assert world.accounts.principal_for_token(secret) is not None
    future = Accounts(world.rt.db, hasher=FAST_HASHER, clock=lambda: later + timedelta(seconds=1))
    assert future.principal_for_token(secret) is None


def test_sessions_expire_and_end_with_a_new_password(world: World) -> None:
    principal = world.accounts.authenticate("ana", PASSWORD)
    assert principal is not None and principal.role is Role.ANALYST
    sid = world.accounts.create_session(principal)
    assert world.accounts.session(sid) == principal
    later = Accounts(world.rt.db, hasher=FAST_HASHER, clock=lambda: datetime.now(UTC) + timedelta(hours=13))
    assert later.session(sid) is None
    sid = world.accounts.create_session(principal)
    world.accounts.set_password("ana", "another long password")
    assert world.accounts.session(sid) is None


def test_user_changes_are_audited_with_before_and_after(world: World) -> None:
    world.accounts.update_user("ana", role=Role.ADMIN, actor="root")
    entry = world.rt.audit.newest(limit=1)[0]
    assert (entry["actor"], entry["action"], entry["object"]) == ("root", "user.update", "user:ana")
    assert entry["before"]["role"] == "analyst" and entry["after"]["role"] == "admin"
