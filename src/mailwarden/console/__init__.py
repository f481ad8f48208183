"""The web console: server-rendered pages with htmx, served by the API's application (docs/console.md).

`mount_console(app, rt)` adds the pages under `/` and the static files under `/static`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from mailwarden.console.pages import Pages
from mailwarden.console.quarantine import QuarantinePages
from mailwarden.console.web import ADMINS, STAFF, STATIC, Console, View
from mailwarden.service.runtime import Runtime

__all__ = ["Console", "mount_console"]


def mount_console(app: FastAPI, rt: Runtime, *, console: Console | None = None) -> Console:
    """Add the console's routes and static files to `app`; the Console it serves from."""
    console = console or Console(rt)
    shared_accounts = getattr(app.state, "accounts", None)
    if shared_accounts is not None:
        console.accounts = shared_accounts  # one Accounts (and password hasher) for the API and console
    app.include_router(_router(console), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="console-static")
    return console


def _router(c: Console) -> APIRouter:
    p = Pages(c)
    q = QuarantinePages(c)
    r = APIRouter()

    @r.get("/login")
    async def login_form(request: Request) -> Response:
        return await c.page(request, p.login_form, roles=None)

    @r.post("/login")
    async def login(request: Request) -> Response:
        return await c.page(request, p.login, roles=None)

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        return await c.page(request, p.logout, roles=None)

    @r.post("/language")
    async def language(request: Request) -> Response:
        return await c.page(request, p.language, roles=None)

    @r.get("/")
    async def dashboard(request: Request) -> Response:
        return await c.page(request, p.dashboard, roles=STAFF)

    @r.get("/trace")
    async def trace(request: Request) -> Response:
        return await c.page(request, p.trace, roles=STAFF)

    @r.get("/trace/{message_id}")
    async def message(request: Request, message_id: str) -> Response:
        return await c.page(request, lambda v: p.message(v, message_id), roles=STAFF)

    @r.get("/quarantine")
    async def quarantine(request: Request) -> Response:
        return await c.page(request, q.listing)

    @r.post("/quarantine/bulk")
    async def quarantine_bulk(request: Request) -> Response:
        return await c.page(request, q.bulk)

    @r.api_route("/quarantine/link/{token}", methods=["GET", "POST"])
    async def quarantine_link(request: Request, token: str) -> Response:
        return await c.page(request, lambda v: q.link(v, token), roles=None)

    @r.get("/quarantine/{entry_id}")
    async def quarantine_entry(request: Request, entry_id: str) -> Response:
        return await c.page(request, lambda v: q.detail(v, entry_id))

    @r.get("/quarantine/{entry_id}/preview")
    async def quarantine_preview(request: Request, entry_id: str) -> Response:
        return await c.page(request, lambda v: q.preview_document(v, entry_id))

    @r.get("/quarantine/{entry_id}/download")
    async def quarantine_download(request: Request, entry_id: str) -> Response:
        return await c.page(request, lambda v: q.download(v, entry_id))

    for path, handler in (("/policy", p.policy), ("/rules", p.rules), ("/lists", p.lists)):
        r.add_api_route(path, _staff(c, handler), methods=["GET", "POST"])

    @r.get("/domains")
    async def domains(request: Request) -> Response:
        return await c.page(request, p.domains, roles=STAFF)

    @r.post("/domains/mode")
    async def switch_mode(request: Request) -> Response:
        return await c.page(request, p.switch_mode, roles=ADMINS)

    @r.get("/users")
    async def users(request: Request) -> Response:
        return await c.page(request, p.users, roles=ADMINS)

    @r.post("/users")
    async def add_user(request: Request) -> Response:
        return await c.page(request, p.add_user, roles=ADMINS)

    @r.post("/users/disable")
    async def disable_user(request: Request) -> Response:
        return await c.page(request, p.disable_user, roles=ADMINS)

    @r.post("/tokens")
    async def create_token(request: Request) -> Response:
        return await c.page(request, p.create_token, roles=ADMINS)

    @r.post("/tokens/revoke")
    async def revoke_token(request: Request) -> Response:
        return await c.page(request, p.revoke_token, roles=ADMINS)

    @r.get("/audit")
    async def audit(request: Request) -> Response:
        return await c.page(request, p.audit, roles=STAFF)

    return r


def _staff(c: Console, handler: Callable[[View], Response]) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint for an editor page: staff read it, only admins may save (the handler checks)."""

    async def endpoint(request: Request) -> Response:
        return await c.page(request, handler, roles=STAFF)

    return endpoint
