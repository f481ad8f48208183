"""Who is asking: users (argon2 password hashes), API tokens (SHA-256 at rest) and console sessions.

The service the REST API, the console and the commands share: it checks names, addresses and passwords,
hashes secrets, makes tokens and sessions and decides whether one still lets its holder in. What it
keeps, and the audit entry of every change to users and tokens, is written by `store/accounts.py`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mailwarden.model.accounts import ALL_SCOPES, AccountError, Principal, Role, Scope, TokenInfo, UserInfo
from mailwarden.model.envelope import normalise_address
from mailwarden.store.accounts import AccountStore
from mailwarden.store.db import Database

SESSION_TTL = timedelta(hours=12)
TOKEN_PREFIX = "mwt_"  # noqa: S105 (a marker, not a secret)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
# a token used again within this long does not rewrite last_used_at (one write per minute, not per request)
LAST_USED_GRANULARITY = timedelta(minutes=1)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USER_NEEDS_EMAIL = "a user with role 'user' needs an e-mail address (their quarantine)"


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
        self.store = AccountStore(db)
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
            raise AccountError(_USER_NEEDS_EMAIL, field="email")
        password_hash = None if password is None else self.hasher.hash(_check_password(password))
        user = UserInfo(name, role, email, organisation, False, password_hash is not None, self.clock())
        return self.store.add_user(user, password_hash, actor=actor)

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
        current = self.store.get_user(name)
        role = role if role is not None else current.role
        email = _check_email(email) if email is not None else current.email
        if clear_organisation:
            organisation = None
        elif organisation is None:
            organisation = current.organisation
        if role is Role.USER and email is None:
            raise AccountError(_USER_NEEDS_EMAIL, field="email")
        return self.store.update_user(
            name, role=role, email=email, organisation=organisation, actor=actor, at=self.clock()
        )

    def set_password(self, name: str, password: str, *, actor: str = "cli") -> None:
        """A new password; every session of the user ends (signed in elsewhere with the old one)."""
        password_hash = self.hasher.hash(_check_password(password))
        self.store.set_password(name, password_hash, actor=actor, at=self.clock())

    def disable_user(self, name: str, *, disabled: bool = True, actor: str = "cli") -> UserInfo:
        """Disable (or enable again) a user: a disabled user cannot sign in and their tokens stop working."""
        return self.store.set_disabled(name, disabled, actor=actor, at=self.clock())

    def get_user(self, name: str) -> UserInfo:
        return self.store.get_user(name)

    def list_users(self) -> list[UserInfo]:
        return self.store.list_users()

    def authenticate(self, name: str, password: str) -> Principal | None:
        """The principal when the name and password match an enabled user; None otherwise."""
        found = self.store.password_hash(name)
        user, stored = found if found is not None and not found[0].disabled else (None, None)
        if not _verify(self.hasher, stored or self._dummy_hash, password[:MAX_PASSWORD_LENGTH]) or stored is None:
            return None
        assert user is not None
        if self.hasher.check_needs_rehash(stored):
            self.store.rehash_password(name, self.hasher.hash(password))
        return user.principal()

    # -- sessions ------------------------------------------------------------------------------

    def create_session(self, principal: Principal) -> str:
        """A new session for the principal's user; the returned id goes in the cookie, only its hash is kept."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        self.store.add_session(principal.name, sha256_hex(session_id), at=now, expires_at=now + SESSION_TTL)
        return session_id

    def session(self, session_id: str) -> Principal | None:
        """The principal of a live session; None when it is unknown, expired or its user is disabled."""
        if not session_id or len(session_id) > 200:
            return None
        id_hash = sha256_hex(session_id)
        found = self.store.session(id_hash)
        if found is None:
            return None
        expires_at, user = found
        if expires_at <= self.clock() or user.disabled:
            self.store.end_session(id_hash)
            return None
        return user.principal()

    def end_session(self, session_id: str) -> None:
        self.store.end_session(sha256_hex(session_id))

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
        token = TokenInfo(0, user, name.strip(), prefix, tuple(scopes), self.clock(), expires_at, False, None)
        return self.store.add_token(token, sha256_hex(secret), actor=actor), secret

    def revoke_token(self, prefix: str, *, actor: str = "cli", owner: str | None = None) -> TokenInfo:
        """Revoke a token by its prefix; with `owner`, only a token of that user (NotFoundError otherwise)."""
        return self.store.revoke_token(prefix, owner=owner, actor=actor, at=self.clock())

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        return self.store.list_tokens(user)

    def principal_for_token(self, token: str) -> Principal | None:
        """The principal a bearer token acts as; None when unknown, revoked, expired or its user is disabled."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        now = self.clock()
        found = self.store.token(sha256_hex(token))
        if found is None:
            return None
        info, user = found
        if info.revoked or user.disabled or (info.expires_at is not None and info.expires_at <= now):
            return None
        if info.last_used_at is None or now - info.last_used_at >= LAST_USED_GRANULARITY:
            self.store.token_used(info.id, now)
        return user.principal(frozenset(info.scopes))


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
