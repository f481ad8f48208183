"""Users, API tokens and console sessions: their tables and every query on them.

Only hashes are stored (argon2 for passwords, SHA-256 for token and session secrets); hashing, checking
and the rules of signing in are the accounts service's (`service/accounts.py`). Every change to a user
or a token is one transaction with its audit entry, which never holds a hash.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailwarden.errors import NotFoundError
from mailwarden.model.accounts import AccountError, Role, Scope, TokenInfo, UserInfo
from mailwarden.store.audit import write_entry
from mailwarden.store.db import Database
from mailwarden.store.schema import ApiTokenRow, SessionRow, UserRow

_SCOPE_VALUES = frozenset(s.value for s in Scope)


class AccountStore:
    """Reads and writes users, tokens and sessions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- users ---------------------------------------------------------------------------------

    def add_user(self, user: UserInfo, password_hash: str | None, *, actor: str) -> UserInfo:
        """Add `user` (its name unused so far: AccountError with `conflict` otherwise)."""
        try:
            with self.db.session() as session:
                if session.scalars(select(UserRow).where(UserRow.name == user.name)).one_or_none() is not None:
                    raise AccountError(f"user {user.name!r} already exists", field="name", conflict=True)
                row = UserRow(
                    name=user.name,
                    email=user.email,
                    role=user.role.value,
                    organisation=user.organisation,
                    password_hash=password_hash,
                    disabled=False,
                    created_at=user.created_at,
                )
                session.add(row)
                session.flush()
                info = _user_info(row)
                _audit(session, user.created_at, actor, "user.add", f"user:{user.name}", None, info)
                return info
        except IntegrityError:
            raise AccountError(f"user {user.name!r} already exists", field="name", conflict=True) from None

    def update_user(
        self, name: str, *, role: Role, email: str | None, organisation: str | None, actor: str, at: datetime
    ) -> UserInfo:
        """Give the user this role, address and organisation; audited when something changed, and a
        changed role ends the user's sessions (they were signed in with the old one)."""
        with self.db.session() as session:
            row = _require_user(session, name)
            before = _user_info(row)
            row.role, row.email, row.organisation = role.value, email, organisation
            after = _user_info(row)
            if after != before:
                if after.role is not before.role:
                    _end_sessions(session, row)
                _audit(session, at, actor, "user.update", f"user:{name}", before, after)
            return after

    def set_password(self, name: str, password_hash: str, *, actor: str, at: datetime) -> None:
        """A new password hash; every session of the user ends (signed in elsewhere with the old one)."""
        with self.db.session() as session:
            row = _require_user(session, name)
            row.password_hash = password_hash
            _end_sessions(session, row)
            # the hash itself never goes to the audit log
            write_entry(
                session, at=at, actor=actor, action="user.set_password", obj=f"user:{name}", before=None, after=None
            )

    def rehash_password(self, name: str, password_hash: str) -> None:
        """The same password under stronger hashing parameters: no sessions end, nothing is audited."""
        with self.db.session() as session:
            _require_user(session, name).password_hash = password_hash

    def set_disabled(self, name: str, disabled: bool, *, actor: str, at: datetime) -> UserInfo:
        """Disable (or enable again) a user; a disabled user's sessions end."""
        with self.db.session() as session:
            row = _require_user(session, name)
            if row.disabled != disabled:
                write_entry(
                    session,
                    at=at,
                    actor=actor,
                    action="user.disable" if disabled else "user.enable",
                    obj=f"user:{name}",
                    before={"disabled": row.disabled},
                    after={"disabled": disabled},
                )
                row.disabled = disabled
                if disabled:
                    _end_sessions(session, row)
            return _user_info(row)

    def get_user(self, name: str) -> UserInfo:
        with self.db.session() as session:
            return _user_info(_require_user(session, name))

    def list_users(self) -> list[UserInfo]:
        with self.db.session() as session:
            return [_user_info(row) for row in session.scalars(select(UserRow).order_by(UserRow.name))]

    def password_hash(self, name: str) -> tuple[UserInfo, str] | None:
        """The user and their password hash; None when there is no such user or they have no password."""
        with self.db.session() as session:
            row = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
            if row is None or row.password_hash is None:
                return None
            return _user_info(row), row.password_hash

    # -- sessions ------------------------------------------------------------------------------

    def add_session(self, user: str, id_hash: str, *, at: datetime, expires_at: datetime) -> None:
        """A session of `user` (NotFoundError when there is none) by the hash of its id; expired sessions
        are cleared on the way."""
        with self.db.session() as session:
            row = _require_user(session, user)
            session.execute(delete(SessionRow).where(SessionRow.expires_at < at))
            session.add(SessionRow(id_hash=id_hash, user_id=row.id, created_at=at, expires_at=expires_at))

    def session(self, id_hash: str) -> tuple[datetime, UserInfo] | None:
        """When the session expires and whose it is; None when there is none by that hash."""
        with self.db.session() as session:
            found = session.execute(
                select(SessionRow.expires_at, UserRow)
                .join(UserRow, UserRow.id == SessionRow.user_id)
                .where(SessionRow.id_hash == id_hash)
            ).one_or_none()
            return None if found is None else (found[0], _user_info(found[1]))

    def end_session(self, id_hash: str) -> None:
        with self.db.session() as session:
            session.execute(delete(SessionRow).where(SessionRow.id_hash == id_hash))

    # -- tokens --------------------------------------------------------------------------------

    def add_token(self, token: TokenInfo, token_hash: str, *, actor: str) -> TokenInfo:
        """Add a token of `token.user` (NotFoundError when there is none) by the hash of its secret."""
        with self.db.session() as session:
            owner = _require_user(session, token.user)
            row = ApiTokenRow(
                user_id=owner.id,
                name=token.name,
                prefix=token.prefix,
                token_hash=token_hash,
                scopes=sorted(s.value for s in token.scopes),
                created_at=token.created_at,
                expires_at=token.expires_at,
                revoked=False,
                last_used_at=None,
            )
            session.add(row)
            session.flush()
            info = _token_info(row, owner.name)
            _audit(session, token.created_at, actor, "token.create", f"token:{token.prefix}", None, info)
            return info

    def revoke_token(self, prefix: str, *, owner: str | None, actor: str, at: datetime) -> TokenInfo:
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
                before = _token_info(row, user)
                row.revoked = True
                _audit(session, at, actor, "token.revoke", f"token:{prefix}", before, _token_info(row, user))
            return _token_info(row, user)

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        stmt = select(ApiTokenRow, UserRow.name).join(UserRow, UserRow.id == ApiTokenRow.user_id)
        if user is not None:
            stmt = stmt.where(UserRow.name == user)
        with self.db.session() as session:
            return [_token_info(row, owner) for row, owner in session.execute(stmt.order_by(ApiTokenRow.id))]

    def token(self, token_hash: str) -> tuple[TokenInfo, UserInfo] | None:
        """The token with this hash and its user; None when there is none."""
        with self.db.session() as session:
            found = session.execute(
                select(ApiTokenRow, UserRow)
                .join(UserRow, UserRow.id == ApiTokenRow.user_id)
                .where(ApiTokenRow.token_hash == token_hash)
            ).one_or_none()
            return None if found is None else (_token_info(found[0], found[1].name), _user_info(found[1]))

    def token_used(self, token_id: int, at: datetime) -> None:
        with self.db.session() as session:
            row = session.get(ApiTokenRow, token_id)
            if row is not None:
                row.last_used_at = at


def _require_user(session: Session, name: str) -> UserRow:
    row = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
    if row is None:
        raise NotFoundError(f"user {name!r} does not exist")
    return row


def _end_sessions(session: Session, user: UserRow) -> None:
    session.execute(delete(SessionRow).where(SessionRow.user_id == user.id))


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
        # a scope this version does not know (a later version's) grants nothing here
        scopes=tuple(Scope(s) for s in row.scopes if s in _SCOPE_VALUES),
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
    before: UserInfo | TokenInfo | None,
    after: UserInfo | TokenInfo | None,
) -> None:
    write_entry(
        session,
        at=at,
        actor=actor,
        action=action,
        obj=obj,
        before=None if before is None else before.as_dict(),
        after=None if after is None else after.as_dict(),
    )
