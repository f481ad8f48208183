"""The request plumbing every console page shares: who is signed in, the language, CSRF, rendering.

A handler is a plain function `(View) -> Response` run in a worker thread, because the stores are
synchronous and the event loop also serves SMTP. `Console.page` does the rest around it: reads the
session cookie, refuses a role the page does not allow, checks the CSRF token on every POST (form field
or htmx header), and puts the security headers on the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from mailwarden.api.deps import SESSION_COOKIE
from mailwarden.console.i18n import DEFAULT_LANGUAGE, LANGUAGE_COOKIE, LANGUAGES, Translator, negotiate
from mailwarden.console.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    PAGE_HEADERS,
    CsrfSigner,
)
from mailwarden.console.timeline import event_detail
from mailwarden.console.timezones import TZ_COOKIE, when_filter, zone_of
from mailwarden.model.accounts import Principal, Role
from mailwarden.service.accounts import SESSION_TTL, Accounts
from mailwarden.service.runtime import Runtime
from mailwarden.throttle import SignInThrottle

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
EVERYONE: frozenset[Role] = frozenset(Role)
STAFF: frozenset[Role] = frozenset({Role.ADMIN, Role.ANALYST})
ADMINS: frozenset[Role] = frozenset({Role.ADMIN})
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600


class Refusal(Exception):
    """Raised inside a handler: answer with this status and message instead of the page."""

    def __init__(self, status: int, message_key: str) -> None:
        super().__init__(message_key)
        self.status = status
        self.message_key = message_key


@dataclass
class View:
    """What a handler gets: the request's inputs, the principal, the language and the page's CSRF token."""

    request: Request
    principal: Principal | None
    session_id: str | None
    t: Translator
    csrf: str
    form: dict[str, list[str]] = field(default_factory=dict)

    @property
    def tz_name(self) -> str:
        """The user's time zone (the `mw_tz` cookie), UTC when none is set."""
        return zone_of(self.request.cookies.get(TZ_COOKIE))[0]

    @property
    def htmx(self) -> bool:
        return self.request.headers.get("HX-Request") == "true"

    def arg(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default).strip()

    def value(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0] if values else default

    def values(self, name: str) -> list[str]:
        return self.form.get(name, [])

    def failure(self, exc: Exception) -> str:
        """A service's refusal on a page. Its words are the service's own, in English as the API and the CLI
        give them; in another language they follow "not done" in that language, marked as English text."""
        if self.t.language == DEFAULT_LANGUAGE:
            return str(exc)
        return Markup('{} <span lang="en" translate="no">{}</span>').format(self.t("error.not_done"), str(exc))

    @property
    def user(self) -> Principal:
        assert self.principal is not None  # pages that need no sign-in never ask
        return self.principal


class Console:
    """The console's state: the runtime's stores, accounts, CSRF key, login limits and templates."""

    def __init__(self, rt: Runtime, *, limiter: SignInThrottle | None = None, signer: CsrfSigner | None = None) -> None:
        self.rt = rt
        self.limiter = limiter or SignInThrottle()
        self.signer = signer or CsrfSigner()
        # Secure cookies when the config says so, and always when users reach the console over https;
        # only a plain-http console (a loopback test) goes without.
        self.secure_cookies = rt.config.api.secure_cookies or urlsplit(rt.config.console.public_url).scheme == "https"
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(("html", "svg")),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = when_filter
        self.templates.globals["event_detail"] = event_detail

    @cached_property
    def accounts(self) -> Accounts:
        return Accounts(self.rt.db)

    # -- rendering -----------------------------------------------------------------------------

    def organisations(self, view: View) -> list[str]:
        """The organisations the user may pick from: their own when bound to one, else every one."""
        if view.user.organisation is not None:
            return [view.user.organisation]
        return [o.name for o in self.rt.policies.list_organisations()]

    @staticmethod
    def chosen_organisation(view: View) -> str | None:
        """The `org` the page was asked for (None: all); a bound user gets theirs, and 403 for another."""
        bound = view.user.organisation
        wanted = view.arg("org") or None
        if bound is not None:
            if wanted is not None and wanted != bound:
                raise Refusal(403, "forbidden")
            return bound
        return wanted

    def render(self, view: View, template: str, code: int = 200, /, **values: Any) -> HTMLResponse:
        tz_name, tz_zone = zone_of(view.request.cookies.get(TZ_COOKIE))
        html = self.templates.get_template(template).render(
            tz_name=tz_name,
            tz_zone=tz_zone,
            t=view.t,
            lang=view.t.language,
            languages=LANGUAGES,
            principal=view.principal,
            csrf=view.csrf,
            csrf_field=CSRF_FIELD,
            csrf_header=CSRF_HEADER,
            path=view.request.url.path,
            Role=Role,
            **values,
        )
        return HTMLResponse(html, status_code=code)

    def refusal(self, view: View, status: int, message_key: str) -> HTMLResponse:
        if view.htmx:
            return self.render(view, "_message.html", status, message=view.t(message_key), error=True)
        return self.render(view, "error.html", status, message=view.t(message_key))

    # -- the dispatcher ------------------------------------------------------------------------

    async def page(
        self,
        request: Request,
        handler: Callable[[View], Response],
        *,
        roles: Collection[Role] | None = EVERYONE,
    ) -> Response:
        """Run `handler` for a request; `roles=None` is a page open without signing in (login)."""
        csrf_cookie = request.cookies.get(CSRF_COOKIE)
        new_cookie = None
        if not csrf_cookie:
            csrf_cookie = new_cookie = self.signer.new_cookie()
        session_id = request.cookies.get(SESSION_COOKIE)
        principal = await asyncio.to_thread(self.accounts.session, session_id) if session_id else None
        if principal is None:
            session_id = None
        t = Translator(negotiate(request.headers.get("Accept-Language"), request.cookies.get(LANGUAGE_COOKIE)))
        view = View(request, principal, session_id, t, self.signer.token(csrf_cookie, session_id))
        if request.method == "POST":
            view.form = await _form(request)
            sent = view.value(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
            if new_cookie is not None or not self.signer.check(csrf_cookie, session_id, sent):
                return self._finish(self.refusal(view, 403, "csrf.failed"), new_cookie)
        if roles is not None:
            if principal is None:
                return self._finish(self._to_login(view), new_cookie)
            if principal.role not in roles:
                return self._finish(self.refusal(view, 403, "forbidden"), new_cookie)
        try:
            response = await asyncio.to_thread(handler, view)
        except Refusal as refused:
            response = self.refusal(view, refused.status, refused.message_key)
        return self._finish(response, new_cookie)

    def _to_login(self, view: View) -> Response:
        if view.htmx:  # htmx follows a redirect inside the target; make it load the whole page instead
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)

    def _finish(self, response: Response, new_csrf_cookie: str | None) -> Response:
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)
        if new_csrf_cookie is not None:
            self.set_cookie(response, CSRF_COOKIE, new_csrf_cookie, max_age=None)
        return response

    def set_cookie(self, response: Response, name: str, value: str, *, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure_cookies,
            httponly=True,
            samesite="strict",
        )

    def sign_in(self, response: Response, session_id: str) -> None:
        self.set_cookie(response, SESSION_COOKIE, session_id, max_age=int(SESSION_TTL.total_seconds()))

    def sign_out(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", secure=self.secure_cookies, httponly=True, samesite="strict")

    def remember_language(self, response: Response, language: str) -> None:
        self.set_cookie(response, LANGUAGE_COOKIE, language, max_age=LANGUAGE_COOKIE_AGE)

    def remember_time_zone(self, response: Response, zone: str) -> None:
        # not HttpOnly: console.js sets the same cookie from the browser's zone when there is none
        response.set_cookie(TZ_COOKIE, zone, max_age=LANGUAGE_COOKIE_AGE, path="/", secure=self.secure_cookies,
                            httponly=False, samesite="strict")  # fmt: skip


async def _form(request: Request) -> dict[str, list[str]]:
    form = await request.form()
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            out.setdefault(key, []).append(value)
    return out


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def local_redirect(target: str, default: str = "/") -> str:
    """`target` when it is a path on this site, else `default` (no open redirect through ?next=)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target
