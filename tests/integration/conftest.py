"""Fixtures for tests against real servers on loopback.

A server that cannot be reached skips its tests on a workstation, and fails them in CI (`CI=true`):
CI must never pass by skipping.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, Sink
from tests.services import unavailable

__all__ = ["POSTGRES_ADMIN_URL", "database_beside", "mw", "postgres_url", "sink", "unavailable"]

POSTGRES_ADMIN_URL = os.environ.get("MAILWARDEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh database created for this test session and dropped after it."""
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}".strip())
        raise AssertionError("unreachable") from exc  # unavailable() never returns
    name = f"mw_test_{secrets.token_hex(6)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def database_beside(postgres_url: str, suffix: str) -> Iterator[str]:
    """A database of its own next to the session's (which stays unmigrated for the store tests),
    dropped afterwards: its SQLAlchemy URL."""
    url = make_url(postgres_url)
    name = f"{url.database}_{suffix}"
    admin_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A next hop on loopback (aiosmtpd) that records what it receives."""
    s = Sink()
    s.controller.start()
    yield s
    s.controller.stop()


@pytest.fixture
def mw(tmp_path: Path, dns_server: DnsServer) -> Iterator[Mailwarden]:
    """A `mailwarden serve` instance in the test's directory (configure, then start); killed at the end."""
    instance = Mailwarden(tmp_path, dns_port=dns_server.port)
    yield instance
    if instance.process is not None:
        instance.kill()
