"""Who is asking: users (argon2 password hashes), API tokens (SHA-256 at rest) and console sessions.

Roles, from most to least: `admin` (everything), `analyst` (read everything, release spam and bulk),
`user` (their own quarantine: entries whose recipient is their e-mail address). A principal bound to an
organisation sees that organisation only. Every change to users and tokens is written to the audit log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailwarden.errors import MailwardenError, NotFoundError
from mailwarden.model.envelope import normalise_address
from mailwarden.store.db import Database
from mailwarden.store.schema import ApiTokenRow, AuditRow, SessionRow, UserRow

SESSION_COOKIE = "mailwarden_session"
SESSION_TTL = timedelta(hours=12)
TOKEN_PREFIX = "mwt_"  # noqa: S105 (a marker, not a secret)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
# a token used again within this long does not rewrite last_used_at (one write per minute, not per request)
LAST_USED_GRANULARITY = timedelta(minutes=1)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    USER = "user"


class Scope(StrEnum):
    """What a token may do: `read` (GET) and `write` (every other method). Sessions have both."""

    READ = "read"
    WRITE = "write"


ALL_SCOPES = frozenset(Scope)
_SCOPE_VALUES = frozenset(s.value for s in Scope)


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


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class Accounts:
    """Users, tokens and sessions over the store's database."""

    def __init__(
        self,
        db: Database,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()
        self.clock = clock or (lambda: datetime.now(UTC))
        # verified against when the user does not exist, so a wrong name costs as long as a wrong password
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # -- users ---------------------------------------------------------------------------------

    def add_user(
        self,
        name: str,
        *,
        role: Role,
        email: str | None = None,
        organisation: str | None = None,
        password: str | None = None,
        actor: str = "cli",
    ) -> UserInfo:
        name = _check_name(name)
        email = _check_email(email)
        if role is Role.USER and email is None:
            raise AccountError("a user with role 'user' needs an e-mail address (their quarantine)", field="email")
        password_hash = None if password is None else self.hasher.hash(_check_password(password))
        try:
            with self.db.session() as session:
                if session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none() is not None:
                    raise AccountError(f"user {name!r} already exists", field="name", conflict=True)
                row = UserRow(
                    name=name,
                    email=email,
                    role=role.value,
                    organisation=organisation,
                    password_hash=password_hash,
                    disabled=False,
                    created_at=self.clock(),
                )
                session.add(row)
                session.flush()
                info = _user_info(row)
                _audit(session, self.clock(), actor, "user.add", f"user:{name}", None, info.as_dict())
                return info
        except IntegrityError:
            raise AccountError(f"user {name!r} already exists", field="name", conflict=True) from None

    def update_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        email: str | None = None,
        organisation: str | None = None,
        clear_organisation: bool = False,
        actor: str = "cli",
    ) -> UserInfo:
        """Change a user's role, address or organisation; their sessions end when the role changes."""
        with self.db.session() as session:
            row = _require_user(session, name)
            before = _user_info(row).as_dict()
            if role is not None:
                row.role = role.value
            if email is not None:
                row.email = _check_email(email)
            if clear_organisation:
                row.organisation = None
            elif organisation is not None:
                row.organisation = organisation
            if row.role == Role.USER.value and row.email is None:
                raise AccountError("a user with role 'user' needs an e-mail address (their quarantine)", field="email")
            after = _user_info(row).as_dict()
            if after != before:
                if after["role"] != before["role"]:
                    session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
                _audit(session, self.clock(), actor, "user.update", f"user:{name}", before, after)
            return _user_info(row)

    def set_password(self, name: str, password: str, *, actor: str = "cli") -> None:
        """A new password; every session of the user ends (signed in elsewhere with the old one)."""
        password_hash = self.hasher.hash(_check_password(password))
        with self.db.session() as session:
            row = _require_user(session, name)
            row.password_hash = password_hash
            session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
            # the hash itself never goes to the audit log
            _audit(session, self.clock(), actor, "user.set_password", f"user:{name}", None, None)

    def disable_user(self, name: str, *, disabled: bool = True, actor: str = "cli") -> UserInfo:
        """Disable (or enable again) a user: a disabled user cannot sign in and their tokens stop working."""
        with self.db.session() as session:
            row = _require_user(session, name)
            if row.disabled != disabled:
                _audit(
                    session,
                    self.clock(),
                    actor,
                    "user.disable" if disabled else "user.enable",
                    f"user:{name}",
                    {"disabled": row.disabled},
                    {"disabled": disabled},
                )
                row.disabled = disabled
                if disabled:
                    session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
            return _user_info(row)

    def get_user(self, name: str) -> UserInfo:
        with self.db.session() as session:
            return _user_info(_require_user(session, name))

    def list_users(self) -> list[UserInfo]:
        with self.db.session() as session:
            return [_user_info(row) for row in session.scalars(select(UserRow).order_by(UserRow.name))]

    def authenticate(self, name: str, password: str) -> Principal | None:
        """The principal when the name and password match an enabled user; None otherwise."""
        with self.db.session() as session:
            row = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
            stored = row.password_hash if row is not None and not row.disabled else None
            if not _verify(self.hasher, stored or self._dummy_hash, password[:MAX_PASSWORD_LENGTH]) or stored is None:
                return None
            assert row is not None
            if self.hasher.check_needs_rehash(stored):
                row.password_hash = self.hasher.hash(password)
            return _principal(row)

    # -- sessions ------------------------------------------------------------------------------

    def create_session(self, principal: Principal) -> str:
        """A new session for the principal's user; the returned id goes in the cookie, only its hash is kept."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        with self.db.session() as session:
            row = _require_user(session, principal.name)
            session.execute(delete(SessionRow).where(SessionRow.expires_at < now))
            session.add(
                SessionRow(id_hash=sha256_hex(session_id), user_id=row.id, created_at=now, expires_at=now + SESSION_TTL)
            )
        return session_id

    def session(self, session_id: str) -> Principal | None:
        """The principal of a live session; None when it is unknown, expired or its user is disabled."""
        if not session_id or len(session_id) > 200:
            return None
        with self.db.session() as session:
            found = session.execute(
                select(SessionRow, UserRow)
                .join(UserRow, UserRow.id == SessionRow.user_id)
                .where(SessionRow.id_hash == sha256_hex(session_id))
            ).one_or_none()
            if found is None:
                return None
            srow, user = found
            if srow.expires_at <= self.clock() or user.disabled:
                session.delete(srow)
                return None
            return _principal(user)

    def end_session(self, session_id: str) -> None:
        with self.db.session() as session:
            session.execute(delete(SessionRow).where(SessionRow.id_hash == sha256_hex(session_id)))

    # -- tokens --------------------------------------------------------------------------------

    def create_token(
        self,
        user: str,
        *,
        name: str,
        scopes: frozenset[Scope] | set[Scope] = ALL_SCOPES,
        expires_at: datetime | None = None,
        actor: str = "cli",
    ) -> tuple[TokenInfo, str]:
        """A new token for `user`: its listing and the secret, which is shown this once and never stored."""
        if not name.strip() or len(name) > 100:
            raise AccountError("a token needs a name of 1 to 100 characters", field="name")
        if not scopes:
            raise AccountError("a token needs at least one scope (read, write)", field="scopes")
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise AccountError("expires_at must carry a time zone", field="expires_at")
            if expires_at <= self.clock():
                raise AccountError("expires_at is in the past", field="expires_at")
        prefix = TOKEN_PREFIX + secrets.token_hex(4)
        secret = f"{prefix}_{secrets.token_urlsafe(32)}"
        with self.db.session() as session:
            owner = _require_user(session, user)
            row = ApiTokenRow(
                user_id=owner.id,
                name=name.strip(),
                prefix=prefix,
                token_hash=sha256_hex(secret),
                scopes=sorted(s.value for s in scopes),
                created_at=self.clock(),
                expires_at=expires_at,
                revoked=False,
                last_used_at=None,
            )
            session.add(row)
            session.flush()
            info = _token_info(row, owner.name)
            _audit(session, self.clock(), actor, "token.create", f"token:{prefix}", None, info.as_dict())
            return info, secret

    def revoke_token(self, prefix: str, *, actor: str = "cli", owner: str | None = None) -> TokenInfo:
        """Revoke a token by its prefix; with `owner`, only a token of that user (NotFoundError otherwise)."""
        with self.db.session() as session:
            found = session.execute(
                select(ApiTokenRow, UserRow.name)
                .join(UserRow, UserRow.id == ApiTokenRow.user_id)
                .where(ApiTokenRow.prefix == prefix)
            ).one_or_none()
            if found is None or (owner is not None and found[1] != owner):
                raise NotFoundError(f"token {prefix!r} does not exist")
            row, user = found
            if not row.revoked:
                before = _token_info(row, user).as_dict()
                row.revoked = True
                _audit(
                    session,
                    self.clock(),
                    actor,
                    "token.revoke",
                    f"token:{prefix}",
                    before,
                    _token_info(row, user).as_dict(),
                )
            return _token_info(row, user)

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        stmt = select(ApiTokenRow, UserRow.name).join(UserRow, UserRow.id == ApiTokenRow.user_id)
        if user is not None:
            stmt = stmt.where(UserRow.name == user)
        with self.db.session() as session:
            return [_token_info(row, owner) for row, owner in session.execute(stmt.order_by(ApiTokenRow.id))]

    def principal_for_token(self, token: str) -> Principal | None:
        """The principal a bearer token acts as; None when unknown, revoked, expired or its user is disabled."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        now = self.clock()
        with self.db.session() as session:
            found = session.execute(
                select(ApiTokenRow, UserRow)
                .join(UserRow, UserRow.id == ApiTokenRow.user_id)
                .where(ApiTokenRow.token_hash == sha256_hex(token))
            ).one_or_none()
            if found is None:
                return None
            row, user = found
            if row.revoked or user.disabled or (row.expires_at is not None and row.expires_at <= now):
                return None
            if row.last_used_at is None or now - row.last_used_at >= LAST_USED_GRANULARITY:
                row.last_used_at = now
            scopes = frozenset(Scope(s) for s in row.scopes if s in _SCOPE_VALUES)
            return _principal(user, scopes)


def _check_name(name: str) -> str:
    name = name.strip()
    if not _NAME_RE.match(name):
        raise AccountError(
            "a user name is 1 to 100 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
            field="name",
        )
    return name


def _check_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    address = normalise_address(email)
    if not _EMAIL_RE.match(address) or len(address) > 320:
        raise AccountError(f"{email!r} is not an e-mail address", field="email")
    return address


def _check_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountError(
            f"a password is {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long", field="password"
        )
    return password


def _verify(hasher: PasswordHasher, stored: str, password: str) -> bool:
    try:
        return hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _require_user(session: Session, name: str) -> UserRow:
    row = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
    if row is None:
        raise NotFoundError(f"user {name!r} does not exist")
    return row


def _principal(row: UserRow, scopes: frozenset[Scope] = ALL_SCOPES) -> Principal:
    return Principal(row.name, Role(row.role), row.email, row.organisation, scopes)


def _user_info(row: UserRow) -> UserInfo:
    return UserInfo(
        name=row.name,
        role=Role(row.role),
        email=row.email,
        organisation=row.organisation,
        disabled=row.disabled,
        has_password=row.password_hash is not None,
        created_at=row.created_at,
    )


def _token_info(row: ApiTokenRow, user: str) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        user=user,
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(Scope(s) for s in row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked=row.revoked,
        last_used_at=row.last_used_at,
    )


def _audit(
    session: Session,
    at: datetime,
    actor: str,
    action: str,
    obj: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    session.add(AuditRow(at=at, actor=actor, action=action, object=obj, before=before, after=after))
