"""Request dependencies: who is asking (bearer token or console session) and what their role allows."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from mailwarden.api.errors import ApiError, forbidden
from mailwarden.model.accounts import Principal, Role, Scope
from mailwarden.service.accounts import Accounts
from mailwarden.service.runtime import Runtime

SESSION_COOKIE = "mailwarden_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="An API token: `mailwarden token create`")
_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="The web console's session")


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


def accounts(request: Request) -> Accounts:
    found: Accounts = request.app.state.accounts
    return found


def authenticated(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session_id: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    """The principal of a valid token or session; 401 otherwise, 403 when a token lacks the write scope.

    A request that rides on the session cookie and changes something must carry the console's CSRF
    header (a page on another site cannot set it); when the console installed a checker, it must pass.
    """
    store = accounts(request)
    principal: Principal | None
    if request.headers.get("authorization"):
        principal = None if bearer is None else store.principal_for_token(bearer.credentials)
        if principal is None:
            raise ApiError(401, "unauthenticated", "the bearer token is unknown, expired or revoked")
    elif session_id:
        principal = store.session(session_id)
        if principal is None:
            raise ApiError(401, "unauthenticated", "the session has ended; sign in again")
        if request.method not in SAFE_METHODS:
            token = request.headers.get(CSRF_HEADER)
            check = getattr(request.app.state, "csrf_check", None)
            if not token or (check is not None and not check(request, session_id, token)):
                raise forbidden(f"a change made with the session cookie needs the {CSRF_HEADER} header")
    else:
        raise ApiError(401, "unauthenticated", "send `Authorization: Bearer <token>` or sign in to the console")
    if request.method not in SAFE_METHODS and Scope.WRITE not in principal.scopes:
        raise forbidden("this token has the read scope only")
    return principal


def staff(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """Administrators and analysts (they read everything)."""
    if principal.role is Role.USER:
        raise forbidden("administrators and analysts only")
    return principal


def admin(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    if principal.role is not Role.ADMIN:
        raise forbidden("administrators only")
    return principal


Caller = Annotated[Principal, Depends(authenticated)]
Staff = Annotated[Principal, Depends(staff)]
Admin = Annotated[Principal, Depends(admin)]
Rt = Annotated[Runtime, Depends(runtime)]
AccountsDep = Annotated[Accounts, Depends(accounts)]


def check_organisation(principal: Principal, organisation: str | None) -> None:
    """A principal bound to an organisation sees nothing of another (404, so names do not leak)."""
    if principal.organisation is not None and organisation != principal.organisation:
        raise ApiError(404, "not_found", f"organisation {organisation!r} does not exist")
