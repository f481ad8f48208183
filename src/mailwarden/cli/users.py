"""`mailwarden user add|passwd|list|disable` and `mailwarden token create|revoke|list`.

Changes made here are written to the audit log with the actor `cli`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from mailwarden.cli.common import ConfigOption, DataTable, out, runtime
from mailwarden.model.accounts import ALL_SCOPES, AccountError, Role, Scope
from mailwarden.service.accounts import Accounts

user_app = typer.Typer(help="Console and API users (roles: admin, analyst, user).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (shown once at creation; only their hash is kept).", no_args_is_help=True)


@contextmanager
def _accounts(config: Path | None) -> Iterator[Accounts]:
    with runtime(config, migrate=True) as rt:
        yield Accounts(rt.db)


def _password(given: str | None) -> str:
    if given is not None:
        return given
    password: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[Role, typer.Option(help="admin, analyst or user")],
    email: Annotated[str | None, typer.Option(help="The user's address (role user: whose quarantine)")] = None,
    organisation: Annotated[str | None, typer.Option(help="Limit the user to one organisation")] = None,
    # named explicitly: a flag that defaults to off needs no `--no-` form (Typer would offer `--no-no-password`)
    no_password: Annotated[bool, typer.Option("--no-password", help="No console sign-in (tokens only)")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Add a user; the password is asked (or read from standard input)."""
    password = None if no_password else _password(sys.stdin.readline().rstrip("\n") if password_stdin else None)
    with _accounts(config) as accounts:
        info = accounts.add_user(name, role=role, email=email, organisation=organisation, password=password)
    out.print(f"user {info.name} added ({info.role.value})")


@user_app.command("passwd")
def user_passwd(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Set a user's password (their console sessions end)."""
    password = _password(sys.stdin.readline().rstrip("\n") if password_stdin else None)
    with _accounts(config) as accounts:
        accounts.set_password(name, password)
    out.print(f"password of {name} changed")


@user_app.command("disable")
def user_disable(
    name: str,
    enable: Annotated[bool, typer.Option("--enable", help="Enable the user again")] = False,
    config: ConfigOption = None,
) -> None:
    """Disable a user: no sign-in, their tokens stop working, their sessions end."""
    with _accounts(config) as accounts:
        info = accounts.disable_user(name, disabled=not enable)
    out.print(f"user {info.name} {'disabled' if info.disabled else 'enabled'}")


@user_app.command("list")
def user_list(config: ConfigOption = None) -> None:
    """List the users."""
    with _accounts(config) as accounts:
        users = accounts.list_users()
    table = DataTable(header_style="bold")
    for column in ("name", "role", "email", "organisation", "state"):
        table.add_column(column)
    for u in users:
        state = "disabled" if u.disabled else "active" if u.has_password else "active (tokens only)"
        table.add_row(u.name, u.role.value, u.email or "-", u.organisation or "-", state)
    out.print(table)


@token_app.command("create")
def token_create(
    user: str,
    name: Annotated[str, typer.Option(help="What the token is for")],
    scope: Annotated[list[Scope] | None, typer.Option(help="read / write (repeatable; default both)")] = None,
    days: Annotated[float | None, typer.Option(help="Expire after this many days (default never)")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a token for a user and print it once."""
    if days is not None and days <= 0:
        raise AccountError("--days must be positive", field="days")
    expires = None if days is None else datetime.now(UTC) + timedelta(days=days)
    with _accounts(config) as accounts:
        info, secret = accounts.create_token(user, name=name, scopes=set(scope or ALL_SCOPES), expires_at=expires)
    out.print(f"token {info.prefix} for {info.user} ({', '.join(s.value for s in info.scopes)}); shown only now:")
    out.print(secret)


@token_app.command("revoke")
def token_revoke(prefix: str, config: ConfigOption = None) -> None:
    """Revoke a token by its prefix (mwt_...)."""
    with _accounts(config) as accounts:
        accounts.revoke_token(prefix)
    out.print(f"token {prefix} revoked")


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option(help="Only this user's tokens")] = None, config: ConfigOption = None
) -> None:
    """List tokens (never their secrets)."""
    with _accounts(config) as accounts:
        tokens = accounts.list_tokens(user)
    table = DataTable(header_style="bold")
    for column in ("prefix", "user", "name", "scopes", "expires", "last used", "state"):
        table.add_column(column)
    for t in tokens:
        table.add_row(
            t.prefix,
            t.user,
            t.name,
            ",".join(s.value for s in t.scopes),
            t.expires_at.isoformat(timespec="minutes") if t.expires_at else "never",
            t.last_used_at.isoformat(timespec="minutes") if t.last_used_at else "-",
            "revoked" if t.revoked else "active",
        )
    out.print(table)
