"""The API's one error shape, `{"code", "message", "field"}`, mapped once from the product's error tree."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailwarden.errors import MailwardenError, NotFoundError, PolicyError
from mailwarden.model.accounts import AccountError
from mailwarden.model.quarantine import PermissionDeniedError, QuarantineError
from mailwarden.service.clawback import ClawbackError
from mailwarden.store.history_search import HistoryQueryError


class ErrorBody(BaseModel):
    """Every error response: a stable machine code, a sentence for people, the input field when one is at fault."""

    code: str
    message: str
    field: str | None = None


class ApiError(Exception):
    """An error the API answers with on purpose (permission refused, conflict, bad parameter)."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        self.status, self.code, self.message, self.field = status, code, message, field
        super().__init__(message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


def error_response(status: int, code: str, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    return JSONResponse(ErrorBody(code=code, message=message, field=field).model_dump(), status, headers=headers)


def policy_field(exc: PolicyError) -> str | None:
    """The field path of the first error in a PolicyError (`policy.spam.bcl_threshold: ...` → that path)."""
    first = exc.errors[0] if exc.errors else ""
    path, sep, _ = first.partition(": ")
    return path if sep and " " not in path else None


def install(app: FastAPI) -> None:
    """Register the handlers that turn every raised error into the one JSON shape."""

    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return error_response(exc.status, exc.code, exc.message, exc.field, **headers)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors: list[Any] = list(exc.errors())
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ())]
        # ("body", "policy", "spam") → "policy.spam"; ("query", "limit") → "limit"
        if loc and loc[0] in ("body", "query", "path", "header", "cookie", "form"):
            loc = loc[1:]
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        field = ".".join(loc) or None
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        return error_response(422, "invalid", f"{field}: {message}" if field else message, field)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), None, **(exc.headers or {}))

    async def mailwarden_error(_request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, NotFoundError):
            return error_response(404, "not_found", str(exc))
        if isinstance(exc, PolicyError):
            return error_response(422, "invalid_policy", "; ".join(exc.errors), policy_field(exc))
        if isinstance(exc, AccountError):
            status = 409 if exc.conflict else 422
            return error_response(status, "conflict" if exc.conflict else "invalid", str(exc), exc.field)
        if isinstance(exc, PermissionDeniedError):
            return error_response(403, "forbidden", str(exc))
        if isinstance(exc, QuarantineError):
            return error_response(409, "conflict", str(exc))
        if isinstance(exc, ClawbackError):
            return error_response(422, "invalid", str(exc), exc.field)
        if isinstance(exc, HistoryQueryError):
            return error_response(422, "invalid", str(exc))
        return error_response(400, "refused", str(exc))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(MailwardenError, mailwarden_error)
