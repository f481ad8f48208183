"""The organisation directory while the database is away: the last copy serves, nothing raises."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from mailwarden.errors import DependencyUnavailable
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.directory import OrgDirectory


class FlakyPolicies:
    """A policy store whose database can be switched off."""

    def __init__(self) -> None:
        self.down = False
        self.loads = 0
        self.doc = parse_organisation_document({"name": "acme", "domains": [{"name": "example.com"}]})

    def _check(self) -> None:
        if self.down:
            raise OperationalError("SELECT", {}, Exception("connection refused"))

    def list_organisations(self) -> list[Any]:
        self._check()
        self.loads += 1
        return [self.doc.to_organisation()]

    def get_policy(self, name: str) -> Any:
        self._check()
        return self.doc.policy


def test_the_last_copy_serves_while_the_database_is_away() -> None:
    policies = FlakyPolicies()
    directory = OrgDirectory(policies, refresh_seconds=0)  # type: ignore[arg-type]
    assert directory.lookup("alice@example.com") is not None
    policies.down = True
    for _ in range(5):
        found = directory.lookup("alice@example.com")
        assert found is not None and found[0].organisation.name == "acme"
    policies.down = False
    directory._next_try = 0  # the pause is over
    assert directory.lookup("bob@example.com") is not None and policies.loads == 2


def test_without_any_copy_the_directory_says_it_is_unavailable() -> None:
    policies = FlakyPolicies()
    policies.down = True
    directory = OrgDirectory(policies, refresh_seconds=0)  # type: ignore[arg-type]
    with pytest.raises(DependencyUnavailable, match="connection refused"):
        directory.lookup("alice@example.com")
    with pytest.raises(DependencyUnavailable):  # during the pause too, without asking the database
        directory.lookup("alice@example.com")
