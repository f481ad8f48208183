"""Users and API tokens. Administrators manage everyone; anyone may list, create and revoke their own tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from mailwarden.api.deps import AccountsDep, Admin, Caller
from mailwarden.api.errors import ApiError, forbidden
from mailwarden.model.accounts import Role, Scope, TokenInfo, UserInfo

router = APIRouter(tags=["users"])

UserName = Annotated[str, Path(min_length=1, max_length=100)]


class UserOut(BaseModel):
    name: str
    role: Role
    email: str | None
    organisation: str | None
    disabled: bool
    has_password: bool
    created_at: datetime


class UserIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    role: Role
    email: Annotated[str | None, Field(max_length=320)] = None
    organisation: Annotated[str | None, Field(max_length=100)] = None
    password: Annotated[str | None, Field(max_length=1024)] = None


class UserPatch(BaseModel):
    role: Role | None = None
    email: Annotated[str | None, Field(max_length=320)] = None
    organisation: Annotated[str | None, Field(max_length=100)] = None
    clear_organisation: bool = False
    disabled: bool | None = None
    password: Annotated[str | None, Field(max_length=1024)] = None


class Me(BaseModel):
    name: str
    role: Role
    email: str | None
    organisation: str | None
    scopes: list[Scope]


class TokenOut(BaseModel):
    id: int
    user: str
    name: str
    prefix: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
    last_used_at: datetime | None


class TokenIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: list[Scope] = Field(default_factory=lambda: [Scope.READ, Scope.WRITE], min_length=1, max_length=2)
    expires_at: datetime | None = None
    user: Annotated[str | None, Field(max_length=100, description="Administrators: another user's token")] = None


class NewToken(BaseModel):
    token: TokenOut
    secret: str = Field(description="Shown once; only its SHA-256 is kept")


def user_out(u: UserInfo) -> UserOut:
    return UserOut(
        name=u.name,
        role=u.role,
        email=u.email,
        organisation=u.organisation,
        disabled=u.disabled,
        has_password=u.has_password,
        created_at=u.created_at,
    )


def token_out(t: TokenInfo) -> TokenOut:
    return TokenOut(
        id=t.id,
        user=t.user,
        name=t.name,
        prefix=t.prefix,
        scopes=list(t.scopes),
        created_at=t.created_at,
        expires_at=t.expires_at,
        revoked=t.revoked,
        last_used_at=t.last_used_at,
    )


@router.get("/me", summary="Who the caller is")
def me(principal: Caller) -> Me:
    return Me(
        name=principal.name,
        role=principal.role,
        email=principal.email,
        organisation=principal.organisation,
        scopes=sorted(principal.scopes),
    )


@router.get("/users", summary="All users")
def list_users(_principal: Admin, accounts: AccountsDep) -> list[UserOut]:
    return [user_out(u) for u in accounts.list_users()]


@router.post("/users", status_code=201, summary="Add a user")
async def add_user(principal: Admin, accounts: AccountsDep, body: UserIn) -> UserOut:
    # argon2 hashing takes tens of milliseconds: off the event loop
    info = await run_in_threadpool(
        lambda: accounts.add_user(
            body.name,
            role=body.role,
            email=body.email,
            organisation=body.organisation,
            password=body.password,
            actor=principal.name,
        )
    )
    return user_out(info)


@router.get("/users/{name}", summary="One user")
def get_user(_principal: Admin, accounts: AccountsDep, name: UserName) -> UserOut:
    return user_out(accounts.get_user(name))


@router.patch("/users/{name}", summary="Change a user's role, address, organisation, password; disable or enable")
async def patch_user(principal: Admin, accounts: AccountsDep, name: UserName, body: UserPatch) -> UserOut:
    def apply() -> UserInfo:
        current = accounts.get_user(name)
        demoted = body.role is not None and body.role is not Role.ADMIN
        if current.role is Role.ADMIN and (demoted or body.disabled) and _last_admin(accounts, name):
            raise ApiError(409, "conflict", "the last enabled administrator cannot be demoted or disabled")
        info = accounts.update_user(
            name,
            role=body.role,
            email=body.email,
            organisation=body.organisation,
            clear_organisation=body.clear_organisation,
            actor=principal.name,
        )
        if body.password is not None:
            accounts.set_password(name, body.password, actor=principal.name)
        if body.disabled is not None:
            info = accounts.disable_user(name, disabled=body.disabled, actor=principal.name)
        return accounts.get_user(name) if body.password is not None else info

    return user_out(await run_in_threadpool(apply))


def _last_admin(accounts: AccountsDep, name: str) -> bool:
    return not any(u.role is Role.ADMIN and not u.disabled and u.name != name for u in accounts.list_users())


@router.get("/tokens", summary="Tokens: the caller's own; administrators see every user's (or `user`'s)")
def list_tokens(
    principal: Caller, accounts: AccountsDep, user: Annotated[str | None, Query(max_length=100)] = None
) -> list[TokenOut]:
    if principal.role is not Role.ADMIN:
        if user not in (None, principal.name):
            raise forbidden("only administrators list other users' tokens")
        user = principal.name
    return [token_out(t) for t in accounts.list_tokens(user)]


@router.post("/tokens", status_code=201, summary="Create a token; the secret is in this response only")
def create_token(principal: Caller, accounts: AccountsDep, body: TokenIn) -> NewToken:
    owner = body.user or principal.name
    if owner != principal.name and principal.role is not Role.ADMIN:
        raise forbidden("only administrators create tokens for other users")
    if not set(body.scopes) <= principal.scopes:
        raise forbidden("a token cannot have a scope its creator lacks")
    info, secret = accounts.create_token(
        owner, name=body.name, scopes=set(body.scopes), expires_at=body.expires_at, actor=principal.name
    )
    return NewToken(token=token_out(info), secret=secret)


@router.delete("/tokens/{prefix}", summary="Revoke a token (by its prefix)")
def revoke_token(principal: Caller, accounts: AccountsDep, prefix: Annotated[str, Path(max_length=16)]) -> TokenOut:
    owner = None if principal.role is Role.ADMIN else principal.name
    return token_out(accounts.revoke_token(prefix, actor=principal.name, owner=owner))
