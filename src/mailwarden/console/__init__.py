"""The web console: server-rendered pages with htmx, served beside the API (docs/console.md).

`mount_console(app, rt)` adds the pages under `/` and the static files under `/static`; `web_app(rt)`
is the whole web application, the API with the console mounted on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from mailwarden.api.app import create_app
from mailwarden.console.clawback import ClawbackPages
from mailwarden.console.enforcing import EnforcingPages
from mailwarden.console.hunts import HuntPages
from mailwarden.console.operations import OperationsPages
from mailwarden.console.pages import Pages
from mailwarden.console.policy_form import PolicyFormPages
from mailwarden.console.preferences import PreferencePages
from mailwarden.console.provider import ProviderPages
from mailwarden.console.quarantine import QuarantinePages
from mailwarden.console.reports import ReportPages
from mailwarden.console.senders import SenderPages
from mailwarden.console.web import ADMINS, EVERYONE, STAFF, STATIC, Console
from mailwarden.model.accounts import Role
from mailwarden.quarantine.service import Quarantine
from mailwarden.service.accounts import Accounts
from mailwarden.service.runtime import Runtime

__all__ = ["Console", "mount_console", "web_app"]


def web_app(rt: Runtime, *, accounts: Accounts | None = None, quarantine: Quarantine | None = None) -> FastAPI:
    """The API under /api/v1 with the console mounted on it, over one runtime's stores (one Accounts)."""
    app = create_app(rt, accounts=accounts, quarantine=quarantine)
    mount_console(app, rt)
    return app


def mount_console(app: FastAPI, rt: Runtime, *, console: Console | None = None) -> Console:
    """Add the console's routes and static files to `app`; the Console it serves from."""
    console = console or Console(rt)
    shared_accounts = getattr(app.state, "accounts", None)
    if shared_accounts is not None:
        console.accounts = shared_accounts  # one Accounts (and password hasher) for the API and console
    app.include_router(_router(console), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="console-static")
    return console


# A page handler: the request's View and the path's parameters by name (`entry_id`, `token`, ...).
Handler = Callable[..., Response]
Roles = Collection[Role] | None  # None: open without signing in


def _router(c: Console) -> APIRouter:
    r = APIRouter()
    pages = Pages(c)
    for methods, path, handler, roles in _pages(
        pages,
        PolicyFormPages(c, pages),
        QuarantinePages(c),
        ClawbackPages(c),
        HuntPages(c),
        SenderPages(c),
        EnforcingPages(c),
        ProviderPages(c),
        ReportPages(c),
        OperationsPages(c),
        PreferencePages(c),
    ):
        r.add_api_route(path, _endpoint(c, handler, roles), methods=list(methods))
    return r


def _pages(
    p: Pages,
    pf: PolicyFormPages,
    q: QuarantinePages,
    cb: ClawbackPages,
    h: HuntPages,
    s: SenderPages,
    e: EnforcingPages,
    pv: ProviderPages,
    rp: ReportPages,
    ops: OperationsPages,
    pref: PreferencePages,
) -> list[tuple[tuple[str, ...], str, Handler, Roles]]:
    """Every page: its methods, path, handler and who may open it, in the order they are routed."""
    get, post, both = ("GET",), ("POST",), ("GET", "POST")
    return [
        (get, "/login", p.login_form, None),
        (post, "/login", p.login, None),
        (post, "/logout", p.logout, None),
        (post, "/language", p.language, None),
        (get, "/timezone", pref.time_zone, None),
        (post, "/timezone", pref.set_time_zone, None),
        (get, "/", p.dashboard, STAFF),
        (get, "/trace", p.trace, STAFF),
        (get, "/trace/{message_id}", p.message, STAFF),
        (post, "/trace/{message_id}/actions", p.message_action, STAFF),
        (get, "/trace/{message_id}/clawback", cb.message_jobs, STAFF),
        (post, "/trace/{message_id}/clawback", cb.claw_message, STAFF),
        (get, "/clawback", cb.jobs, STAFF),
        (both, "/clawback/campaign", cb.campaign, STAFF),
        (post, "/clawback/quarantine", cb.quarantine, STAFF),
        (get, "/clawback/{job_id}", cb.job, STAFF),
        (post, "/hunts/{hunt_id}/clawback", cb.hunt, STAFF),
        (get, "/senders", s.listing, STAFF),
        (post, "/senders/release", s.release, ADMINS),
        # the quarantine pages are everyone's: a user sees only their own entries
        (get, "/quarantine", q.listing, EVERYONE),
        (post, "/quarantine/bulk", q.bulk, EVERYONE),
        (both, "/quarantine/link/{token}", q.link, None),
        (get, "/quarantine/{entry_id}", q.detail, EVERYONE),
        (get, "/quarantine/{entry_id}/preview", q.preview_document, EVERYONE),
        (get, "/quarantine/{entry_id}/download", q.download, EVERYONE),
        # the editors: staff read them, only admins may save (the handler checks)
        (both, "/policy", pf.form, STAFF),
        (both, "/policy/yaml", p.policy_yaml, STAFF),
        (both, "/rules", p.rules, STAFF),
        (both, "/lists", p.lists, STAFF),
        (get, "/domains", p.domains, STAFF),
        (post, "/domains/mode", p.switch_mode, ADMINS),
        # from monitor to enforce: the preview, the per-domain switch, policy replay (docs/policy-replay.md)
        (get, "/domains/preview", e.preview, STAFF),
        (post, "/domains/domain-mode", e.switch_domain, ADMINS),
        (both, "/policy/replay", e.replay, STAFF),
        (get, "/users", p.users, ADMINS),
        (post, "/users", p.add_user, ADMINS),
        (post, "/users/disable", p.disable_user, ADMINS),
        (post, "/tokens", p.create_token, ADMINS),
        (post, "/tokens/revoke", p.revoke_token, ADMINS),
        (get, "/audit", p.audit, STAFF),
        # operations: the spool and the delivery queue; admins retry and delete (docs/console.md)
        (get, "/operations", ops.page, STAFF),
        (post, "/operations/queue/{job_id}/retry", ops.retry, ADMINS),
        (post, "/operations/queue/{job_id}/delete", ops.delete, ADMINS),
        # what the provider missed: its verdicts of journal copies against mailwarden's
        (get, "/reports/provider", pv.report, STAFF),
        (get, "/reports", rp.report, STAFF),
        (get, "/reports/{table}.csv", rp.csv, STAFF),
        # retro-hunt: administrators and analysts hunt (docs/retro-hunt.md)
        (get, "/hunts", h.listing, STAFF),
        (post, "/hunts", h.start, STAFF),
        (get, "/hunts/{hunt_id}", h.detail, STAFF),
        (post, "/hunts/{hunt_id}/cancel", h.cancel, STAFF),
    ]


def _endpoint(c: Console, handler: Handler, roles: Roles) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        params = request.path_params
        return await c.page(request, lambda view: handler(view, **params), roles=roles)

    return endpoint
