"""Who may sign in and what they may do: roles, token scopes, the principal every permission check sees,
and users and tokens as listed.

Roles, from most to least: `admin` (everything), `analyst` (read everything, release spam and bulk),
`user` (their own quarantine: entries whose recipient is their e-mail address). A principal bound to an
organisation sees that organisation only. The service that signs people in is `service/accounts.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from mailwarden.errors import MailwardenError


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    USER = "user"


class Scope(StrEnum):
    """What a token may do: `read` (GET) and `write` (every other method). Sessions have both."""

    READ = "read"
    WRITE = "write"


ALL_SCOPES = frozenset(Scope)


class AccountError(MailwardenError):
    """A user or token change was refused (bad name, duplicate, weak password); `field` names the input."""

    exit_code = 65

    def __init__(self, message: str, *, field: str | None = None, conflict: bool = False) -> None:
        self.field = field
        self.conflict = conflict
        super().__init__(message)


@dataclass(frozen=True)
class Principal:
    """The signed-in user (or the user a token belongs to), as every permission check sees them."""

    name: str
    role: Role
    email: str | None
    organisation: str | None
    scopes: frozenset[Scope] = field(default=ALL_SCOPES, compare=False)


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: Role
    email: str | None
    organisation: str | None
    disabled: bool
    has_password: bool
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role.value,
            "email": self.email,
            "organisation": self.organisation,
            "disabled": self.disabled,
            "has_password": self.has_password,
        }

    def principal(self, scopes: frozenset[Scope] = ALL_SCOPES) -> Principal:
        """The user acting with `scopes` (a session has them all)."""
        return Principal(self.name, self.role, self.email, self.organisation, scopes)


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the secret, only the prefix it starts with."""

    id: int
    user: str
    name: str
    prefix: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": [s.value for s in self.scopes],
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked": self.revoked,
        }
