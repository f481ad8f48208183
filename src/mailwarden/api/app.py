"""The REST API's ASGI application under /api/v1 (`console.web_app` mounts the console on it)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from mailwarden import __version__
from mailwarden.api import errors
from mailwarden.api.deps import Staff
from mailwarden.api.docs import install_docs
from mailwarden.api.errors import ErrorBody
from mailwarden.api.routes import (
    audit,
    clawback,
    enforcing,
    events,
    hunts,
    messages,
    operations,
    organisations,
    reports,
    senders,
    users,
)
from mailwarden.api.routes import quarantine as quarantine_routes
from mailwarden.metrics import exposition
from mailwarden.model import Policy
from mailwarden.quarantine.service import Quarantine
from mailwarden.service.accounts import Accounts
from mailwarden.service.runtime import Runtime

API_PREFIX = "/api/v1"
# every operation may answer with these; listed so the OpenAPI document names the error shape
_ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No valid token or session"},
    403: {"model": ErrorBody, "description": "The role or token scope does not allow it"},
    404: {"model": ErrorBody, "description": "No such object (or not visible to the caller)"},
    422: {"model": ErrorBody, "description": "Invalid input; `field` names it"},
}


def create_app(rt: Runtime, *, accounts: Accounts | None = None, quarantine: Quarantine | None = None) -> FastAPI:
    """The API over one runtime's stores.

    `app.state.rt`, `app.state.accounts` and `app.state.quarantine` are what the routes (and a console
    mounted on the app) work with. Without a release dispatcher the quarantine marks releases and the
    server's release job queues them for delivery.
    """
    app = FastAPI(
        title="mailwarden",
        version=__version__,
        description="Message trace, quarantine, policies, transport rules, reports, users and tokens.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served below from packaged assets: the docs work with no internet access
        redoc_url=None,
    )
    app.state.rt = rt
    app.state.accounts = accounts or Accounts(rt.db)
    app.state.quarantine = quarantine or Quarantine(rt.db, rt.blobs, rt.history, policies=_policy_of(rt))
    errors.install(app)
    for module in (
        messages,
        quarantine_routes,
        clawback,
        organisations,
        enforcing,
        reports,
        hunts,
        events,
        senders,
        operations,
        users,
        audit,
    ):
        app.include_router(module.router, prefix=API_PREFIX, responses=_ERROR_RESPONSES)
    install_docs(app, API_PREFIX)
    app.add_api_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    app.add_api_route("/healthz", _alive, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", _ready, methods=["GET"], include_in_schema=False)
    return app


def _alive() -> dict[str, str]:
    """Liveness: the process answers (no sign-in: probes carry no credentials, and this says nothing)."""
    return {"status": "alive"}


async def _ready(request: Request) -> JSONResponse:
    """Readiness: the database answers and, under `serve`, the spool is open and the listeners listen.
    503 with the names of what is not ready (no detail beyond that: probes need no sign-in)."""
    checks: dict[str, bool] = {"database": await run_in_threadpool(_database_answers, request.app.state.rt)}
    server = getattr(request.app.state, "readiness", None)
    if server is not None:
        checks |= server()
    failing = sorted(name for name, ok in checks.items() if not ok)
    return JSONResponse({"ready": not failing, "failing": failing}, status_code=503 if failing else 200)


def _database_answers(rt: Runtime) -> bool:
    try:
        with rt.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def _metrics(_: Staff) -> Response:
    """Prometheus metrics of this process, for administrators and analysts (a token with the read scope)."""
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def _policy_of(rt: Runtime) -> Callable[[str | None], Policy]:
    def policy(organisation: str | None) -> Policy:
        return Policy() if organisation is None else rt.policies.get_policy(organisation)

    return policy
