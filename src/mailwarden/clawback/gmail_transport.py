"""How the Gmail connector talks to Google: one access token per mailbox (service account with domain-wide
delegation, via google-auth), single calls or batches of calls, and the waits on 429 and 5xx.

Kept apart from `gmail.py` so the connector reads as Gmail's semantics (labels, trash, spam) and this module
as the plumbing every call shares: which token, which request, when to try again and what a refusal means.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import google.auth.exceptions
import google.auth.transport.requests
import httpx
import requests
import structlog
from google.oauth2 import service_account
from requests.adapters import HTTPAdapter

from mailwarden.clawback.connector import MAX_WAIT_SECONDS, ConnectorError, MailboxNotFound
from mailwarden.clawback.gmail_batch import ApiCall, ApiReply, BatchFormatError, decode_batch, encode_batch

log = structlog.get_logger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
TOKEN_CONCURRENCY = 8  # token requests in flight at once (each holds a worker thread)
# Google's token endpoint says this (400 invalid_grant) when the delegated user does not exist.
UNKNOWN_USER_DESCRIPTION = "Invalid email or User ID"


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's trust store, plus `ca_file` when set (a private CA, or the tests' one)."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


class _ContextAdapter(HTTPAdapter):
    """requests' adapter with our SSL context, so the token endpoint is trusted like the API."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def _token_error(mailbox: str, exc: google.auth.exceptions.RefreshError) -> ConnectorError:
    data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], Mapping) else {}
    error = str(data.get("error", "")) or "refused"
    description = str(data.get("error_description", "")) or str(exc.args[0] if exc.args else "")
    if error == "invalid_grant" and UNKNOWN_USER_DESCRIPTION in description:
        return MailboxNotFound(mailbox, f"Google knows no user {mailbox} ({error}: {description})")
    reason = f"Google refused an access token for {mailbox}: {error}: {description}"
    return ConnectorError(reason, retryable=bool(getattr(exc, "retryable", False)))


class Tokens:
    """One delegated credential per mailbox, refreshed when expired; google-auth signs the JWT bearer
    grant and posts it to the token endpoint (synchronously, so in a worker thread)."""

    def __init__(self, info: Mapping[str, Any], scopes: Sequence[str], context: ssl.SSLContext) -> None:
        self._base = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            dict(info), scopes=list(scopes)
        )
        session = requests.Session()
        session.mount("https://", _ContextAdapter(context))
        self._session = session
        self._request = google.auth.transport.requests.Request(session=session)
        self._credentials: dict[str, service_account.Credentials] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._gate = asyncio.Semaphore(TOKEN_CONCURRENCY)

    async def token(self, mailbox: str) -> str:
        """A valid access token for `mailbox` (from the cache, or fetched now)."""
        async with self._locks.setdefault(mailbox, asyncio.Lock()):
            credentials = self._credentials.get(mailbox)
            if credentials is None:
                credentials = self._base.with_subject(mailbox)
                self._credentials[mailbox] = credentials
            if not credentials.valid:
                async with self._gate:
                    await asyncio.to_thread(self._refresh, credentials, mailbox)
            return str(credentials.token)

    def _refresh(self, credentials: service_account.Credentials, mailbox: str) -> None:
        try:
            credentials.refresh(self._request)  # type: ignore[no-untyped-call]
        except google.auth.exceptions.RefreshError as exc:
            raise _token_error(mailbox, exc) from None
        except google.auth.exceptions.TransportError as exc:
            raise ConnectorError(f"token endpoint unreachable: {exc}", retryable=True) from None

    def forget(self, mailbox: str) -> None:
        """Drop the cached token (the API said it is no longer good)."""
        self._credentials.pop(mailbox, None)

    def close(self) -> None:
        self._session.close()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare from Google; the exponential backoff applies


def _describe(reply: ApiReply) -> tuple[str, str, str]:
    """Google's error body as (reason, status, message), e.g. ("rateLimitExceeded", "RESOURCE_EXHAUSTED", ...)."""
    error = reply.body.get("error") if isinstance(reply.body, Mapping) else None
    if not isinstance(error, Mapping):
        return "", "", str(reply.body or "")[:200]
    errors = error.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], Mapping) else {}
    return str(first.get("reason", "")), str(error.get("status", "")), str(error.get("message", ""))


def reply_error(reply: ApiReply, call: ApiCall) -> ConnectorError:
    """What a failed API answer means for the job engine; the reason quotes Google's code and message."""
    reason, status, message = _describe(reply)
    text = f"Gmail API {reply.status} {reason or status or 'error'}: {message}".rstrip(": ")
    is_list = call.path.split("?", 1)[0].endswith("/messages")
    if status == "FAILED_PRECONDITION" or reason == "failedPrecondition" or (reply.status == 404 and is_list):
        return MailboxNotFound(call.mailbox, f"{call.mailbox}: {text}")
    retryable = reply.status in RETRY_STATUSES
    return ConnectorError(text, retryable=retryable, retry_after=_retry_after(reply.headers) if retryable else None)


@dataclass
class _Round:
    """What one attempt left to do: the calls to send again, and the longest wait the server asked for."""

    again: list[int]
    throttled: bool = False
    retry_after: float | None = None
    last: ConnectorError | None = None


class Transport:
    """Sends API calls (one alone, several as batches), retrying throttled and failed ones within
    MAX_WAIT_SECONDS and refreshing a token the API rejected once."""

    def __init__(
        self, api_url: str, tokens: Tokens, http: httpx.AsyncClient, *, batch_size: int, max_attempts: int
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._tokens = tokens
        self._http = http
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._batches = asyncio.Semaphore(4)

    async def execute(self, calls: Sequence[ApiCall]) -> list[ApiReply | ConnectorError]:
        """Every call's answer or failure, in order; a call never raises for another."""
        chunks = [list(range(i, min(i + self._batch_size, len(calls)))) for i in range(0, len(calls), self._batch_size)]
        results: list[ApiReply | ConnectorError] = [ConnectorError("not sent", retryable=True)] * len(calls)

        async def one(chunk: list[int]) -> None:
            async with self._batches:
                answers = await self._run([calls[i] for i in chunk])
            for i, answer in zip(chunk, answers, strict=True):
                results[i] = answer

        await asyncio.gather(*(one(chunk) for chunk in chunks))
        return results

    async def _run(self, calls: list[ApiCall]) -> list[ApiReply | ConnectorError]:
        out: list[ApiReply | ConnectorError | None] = [None] * len(calls)
        pending, refreshed, waited, attempt = list(range(len(calls))), set[str](), 0.0, 0
        while pending:
            state = await self._attempt(calls, pending, out, refreshed)
            pending = state.again
            if not pending:
                break
            delay = 0.0
            if state.throttled:
                attempt += 1
                delay = self._delay(attempt, state.retry_after, waited)
                if delay < 0:
                    failure = ConnectorError(
                        state.last.reason if state.last else "Gmail API unavailable",
                        retryable=True,
                        retry_after=state.retry_after or BACKOFF_CAP_SECONDS,
                    )
                    for i in pending:
                        out[i] = failure
                    break
                log.info("gmail_throttled", calls=len(pending), wait_seconds=round(delay, 2), attempt=attempt)
            await asyncio.sleep(delay)
            waited += delay
        return [r if r is not None else ConnectorError("not answered", retryable=True) for r in out]

    def _delay(self, attempt: int, retry_after: float | None, waited: float) -> float:
        """Seconds to wait before the next attempt, or -1 when the budget is spent."""
        if attempt >= self._max_attempts:
            return -1.0
        if retry_after is not None:
            delay = retry_after
        else:
            delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        return delay if waited + delay <= MAX_WAIT_SECONDS else -1.0

    async def _attempt(
        self, calls: list[ApiCall], pending: list[int], out: list[ApiReply | ConnectorError | None], refreshed: set[str]
    ) -> _Round:
        mailboxes = list(dict.fromkeys(calls[i].mailbox for i in pending))
        answers = await asyncio.gather(*(self._tokens.token(m) for m in mailboxes), return_exceptions=True)
        tokens: dict[str, str] = {}
        for mailbox, answer in zip(mailboxes, answers, strict=True):
            if isinstance(answer, BaseException) and not isinstance(answer, ConnectorError):
                raise answer
            if isinstance(answer, str):
                tokens[mailbox] = answer
                continue
            for i in pending:
                if calls[i].mailbox == mailbox:
                    out[i] = answer
        sendable = [i for i in pending if calls[i].mailbox in tokens]
        state = _Round(again=[])
        if not sendable:
            return state
        try:
            replies = await self._send([(calls[i], tokens[calls[i].mailbox]) for i in sendable])
        except (httpx.TransportError, BatchFormatError) as exc:
            state.again, state.throttled = sendable, True
            state.last = ConnectorError(f"Gmail API unreachable: {type(exc).__name__}: {exc}", retryable=True)
            return state
        for i, reply in zip(sendable, replies, strict=True):
            mailbox = calls[i].mailbox
            if reply.status == 401 and mailbox not in refreshed:
                self._tokens.forget(mailbox)
                refreshed.add(mailbox)
                state.again.append(i)
            elif reply.status in RETRY_STATUSES:
                state.again.append(i)
                state.throttled = True
                state.last = reply_error(reply, calls[i])
                asked = _retry_after(reply.headers)
                if asked is not None:
                    state.retry_after = max(state.retry_after or 0.0, asked)
            else:
                out[i] = reply
        return state

    async def _send(self, pairs: list[tuple[ApiCall, str]]) -> list[ApiReply]:
        if len(pairs) == 1:
            call, token = pairs[0]
            response = await self._http.request(
                call.method,
                self._api_url + call.path,
                headers={"Authorization": f"Bearer {token}"},
                json=call.body,
            )
            return [_reply(response)]
        body, content_type = encode_batch(pairs)
        response = await self._http.post(
            self._api_url + "/batch/gmail/v1",
            content=body,
            headers={"Content-Type": content_type, "Authorization": f"Bearer {pairs[0][1]}"},
        )
        if response.status_code != 200:
            return [_reply(response)] * len(pairs)  # the batch as a whole was refused: each call was
        return decode_batch(response.content, response.headers.get("content-type", ""), len(pairs))


def _reply(response: httpx.Response) -> ApiReply:
    try:
        body = response.json() if response.content else None
    except ValueError:
        body = response.text[:200]
    return ApiReply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, body)


def user_path(mailbox: str, rest: str) -> str:
    """`/gmail/v1/users/{mailbox}/{rest}` with the address escaped for a path segment."""
    return f"/gmail/v1/users/{quote(mailbox, safe='@')}/{rest}"
