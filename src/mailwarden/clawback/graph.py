"""Microsoft 365 mailboxes through Microsoft Graph (app-only, client-credentials grant).

find: `GET /users/{u}/messages?$filter=internetMessageId eq '...'` covers every folder of the mailbox's
folder tree (Deleted Items and Junk Email included) but not the Recoverable Items dumpster, so the
`recoverableitemsdeletions` folder is searched too: a restore must find what was soft-deleted. A copy's
`parentFolderId` is mapped to `Folder` through the well-known folder names, looked up once per mailbox.
move: `POST /users/{u}/messages/{id}/move` with a well-known destination name; it answers the moved copy
with its new id. Folder.RECOVERABLE is a move into `recoverableitemsdeletions`, the folder the mailFolder
documentation names for soft-deleted items. delete: `POST .../permanentDelete`.
Many calls travel as JSON batches (`POST /v1.0/$batch`, at most 20 requests each); a throttled request
(429/503, alone or inside a batch) is sent again after its Retry-After, within `MAX_WAIT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from mailwarden.clawback.connector import (
    MAX_WAIT_SECONDS,
    BaseConnector,
    ConnectorError,
    Folder,
    Found,
    MailboxNotFound,
)
from mailwarden.clawback.graph_token import TokenSource

__all__ = ["KIND", "GraphConnector", "Secret", "Settings", "connect"]

KIND = "graph"
_T = TypeVar("_T")
log = structlog.get_logger(__name__)

MAX_BATCH = 20  # Graph's limit of requests in one JSON batch
BATCH_CONCURRENCY = 4  # batches in flight at once for one connector call
MAX_ATTEMPTS = 4  # sends of one request before a throttled answer becomes a retryable ConnectorError
DEFAULT_RETRY_AFTER = 2.0  # when a throttled answer or a network failure names no Retry-After
REQUEST_TIMEOUT_SECONDS = 30.0
THROTTLED = frozenset({429, 500, 502, 503, 504, 0})  # 0: no answer (network)
NO_SUCH_MAILBOX = frozenset({"ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "MailboxNotFound"})
WELL_KNOWN: dict[Folder, str] = {
    Folder.INBOX: "inbox",
    Folder.JUNK: "junkemail",
    Folder.TRASH: "deleteditems",
    Folder.RECOVERABLE: "recoverableitemsdeletions",
}
DEFAULT_NAMES: dict[Folder, str] = {
    Folder.INBOX: "Inbox",
    Folder.JUNK: "Junk Email",
    Folder.TRASH: "Deleted Items",
    Folder.RECOVERABLE: "Recoverable Items (Deletions)",
}


class Settings(BaseModel):
    """Where the organisation's Microsoft 365 tenant is and which app registration acts on it."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(description="Directory (tenant) ID of the Microsoft 365 organisation (GUID or domain).")
    client_id: str = Field(description="Application (client) ID of the app registration granted Mail.ReadWrite.")
    login_url: str = Field(
        "https://login.microsoftonline.com",
        description="Microsoft identity platform host (another for national clouds).",
    )
    graph_url: str = Field(
        "https://graph.microsoft.com", description="Microsoft Graph host; the token scope is '<graph_url>/.default'."
    )
    ca_file: Path | None = Field(None, description="PEM CA bundle trusted in addition to the system's store.")


class Secret(BaseModel):
    """The app's credential: a client secret, or a certificate's private key and its SHA-1 thumbprint."""

    model_config = ConfigDict(extra="forbid")

    client_secret: SecretStr | None = Field(None, description="Client secret value (not its ID).")
    certificate_key: SecretStr | None = Field(None, description="PEM private key of the certificate uploaded.")
    certificate_thumbprint: SecretStr | None = Field(None, description="SHA-1 thumbprint (hex) of that certificate.")

    @model_validator(mode="after")
    def _one_form(self) -> Secret:
        certificate = (self.certificate_key is not None, self.certificate_thumbprint is not None)
        if certificate[0] != certificate[1]:
            raise ValueError("certificate_key and certificate_thumbprint go together")
        if (self.client_secret is not None) == certificate[0]:
            raise ValueError("give either client_secret or certificate_key + certificate_thumbprint, not both")
        return self

    def credential(self) -> str | dict[str, str]:
        """msal's client_credential: the secret string, or the private key + thumbprint dict."""
        if self.client_secret is not None:
            return self.client_secret.get_secret_value()
        assert self.certificate_key is not None and self.certificate_thumbprint is not None
        thumbprint = self.certificate_thumbprint.get_secret_value().replace(":", "").strip()
        return {"private_key": self.certificate_key.get_secret_value(), "thumbprint": thumbprint}


@dataclass(frozen=True)
class _Call:
    method: str
    url: str  # below /v1.0, query included
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Reply:
    status: int  # 0: no answer
    body: Any
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> tuple[str, str]:
        """Graph's documented error body, {"error": {"code", "message"}}, as (code, message)."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict):
            return str(error.get("code", "")), str(error.get("message", ""))
        return "", ""


def connect(settings: Settings, secret: Secret) -> GraphConnector:
    """The connector for one tenant; nothing goes over the network before the first call."""
    return GraphConnector(settings, secret)


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


class GraphConnector(BaseConnector):
    """Find, move and delete copies of a message in the tenant's mailboxes."""

    kind: ClassVar[str] = KIND

    def __init__(self, settings: Settings, secret: Secret) -> None:
        context = tls_context(settings.ca_file)
        graph = settings.graph_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=f"{graph}/v1.0", verify=context, timeout=REQUEST_TIMEOUT_SECONDS)
        self._tokens = TokenSource(
            login_url=settings.login_url,
            tenant_id=settings.tenant_id,
            client_id=settings.client_id,
            credential=secret.credential(),
            scope=f"{graph}/.default",
            context=context,
        )
        self._gate = asyncio.Semaphore(BATCH_CONCURRENCY)
        # per mailbox: folder id → (Folder, display name); filled from the well-known names, then by id
        self._folders: dict[str, dict[str, tuple[Folder, str]]] = {}

    def __repr__(self) -> str:
        return f"GraphConnector({self._tokens!r})"

    # -- the connector interface -----------------------------------------------------------------------

    async def find(self, mailbox: str, internet_message_id: str) -> list[Found]:
        return _raise_or(await self.find_many([(mailbox, internet_message_id)]))

    async def move(self, found: Found, to: Folder) -> Found:
        return _raise_or(await self.move_many([(found, to)]))

    async def delete(self, found: Found) -> None:
        (result,) = await self.delete_many([found])
        if result is not None:
            raise result

    async def find_many(self, pairs: Sequence[tuple[str, str]]) -> list[list[Found] | ConnectorError]:
        try:
            return await self._find_many(pairs)
        except ConnectorError as exc:  # no token: every pair fails alike, in its place
            return [exc] * len(pairs)

    async def move_many(self, items: Sequence[tuple[Found, Folder]]) -> list[Found | ConnectorError]:
        try:
            return await self._move_many(items)
        except ConnectorError as exc:
            return [exc] * len(items)

    async def delete_many(self, items: Sequence[Found]) -> list[ConnectorError | None]:
        try:
            return await self._delete_many(items)
        except ConnectorError as exc:
            return [exc] * len(items)

    async def aclose(self) -> None:
        await self._http.aclose()
        self._tokens.close()

    # -- the batched calls -----------------------------------------------------------------------------

    async def _find_many(self, pairs: Sequence[tuple[str, str]]) -> list[list[Found] | ConnectorError]:
        calls = [call for mailbox, mid in pairs for call in _find_calls(mailbox, mid)]
        replies = await self._run(calls)
        listed: list[list[tuple[str, str]] | ConnectorError] = []
        for n, (mailbox, _) in enumerate(pairs):
            listed.append(_listed(mailbox, replies[2 * n : 2 * n + 2]))
        wanted: dict[str, set[str]] = {}
        for (mailbox, _), items in zip(pairs, listed, strict=True):
            if not isinstance(items, ConnectorError):
                wanted.setdefault(mailbox.lower(), set()).update(fid for _, fid in items)
        failed = await self._resolve_folders({m: ids for m, ids in wanted.items() if ids})
        results: list[list[Found] | ConnectorError] = []
        for (mailbox, _), items in zip(pairs, listed, strict=True):
            if isinstance(items, ConnectorError):
                results.append(items)
            elif not items:
                results.append([])
            elif mailbox.lower() in failed:
                results.append(failed[mailbox.lower()])
            else:
                results.append([self._found(mailbox, gid, fid) for gid, fid in items])
        return results

    async def _move_many(self, items: Sequence[tuple[Found, Folder]]) -> list[Found | ConnectorError]:
        results: list[Found | ConnectorError | None] = [None] * len(items)
        calls: list[_Call] = []
        slots: list[int] = []
        for n, (found, to) in enumerate(items):
            if to is Folder.OTHER:
                results[n] = ConnectorError("no folder to move to: OTHER names none", retryable=False)
            elif found.folder is to:
                results[n] = found  # already there: no call
            else:
                slots.append(n)
                body = {"destinationId": WELL_KNOWN[to]}
                calls.append(_Call("POST", f"{_user(found.mailbox)}/messages/{quote(found.ref, safe='')}/move", body))
        for n, reply in zip(slots, await self._run(calls), strict=True):
            found, to = items[n]
            results[n] = self._moved(found, to, reply) if reply.ok else _error(found.mailbox, reply)
        return [r for r in results if r is not None]

    async def _delete_many(self, items: Sequence[Found]) -> list[ConnectorError | None]:
        calls = [_Call("POST", f"{_user(f.mailbox)}/messages/{quote(f.ref, safe='')}/permanentDelete") for f in items]
        replies = await self._run(calls)
        return [None if reply.ok else _error(found.mailbox, reply) for found, reply in zip(items, replies, strict=True)]

    # -- folders ---------------------------------------------------------------------------------------

    def _found(self, mailbox: str, gid: str, folder_id: str) -> Found:
        folder, name = self._folders.get(mailbox.lower(), {}).get(folder_id, (Folder.OTHER, folder_id))
        return Found(mailbox=mailbox, ref=gid, folder=folder, folder_name=name)

    def _moved(self, found: Found, to: Folder, reply: _Reply) -> Found:
        body = reply.body if isinstance(reply.body, dict) else {}
        names = self._folders.get(found.mailbox.lower(), {})
        name = next((n for f, n in names.values() if f is to), DEFAULT_NAMES[to])
        return Found(mailbox=found.mailbox, ref=str(body.get("id", found.ref)), folder=to, folder_name=name)

    async def _resolve_folders(self, wanted: dict[str, set[str]]) -> dict[str, ConnectorError]:
        """Learn the well-known folders of each mailbox once, then any other folder id still unknown."""
        failed: dict[str, ConnectorError] = {}
        fresh = [m for m in wanted if m not in self._folders]
        calls = [_Call("GET", f"{_user(m)}/mailFolders/{name}") for m in fresh for name in WELL_KNOWN.values()]
        replies = await self._run(calls)
        for n, mailbox in enumerate(fresh):
            known: dict[str, tuple[Folder, str]] = {}
            for (folder, _), reply in zip(WELL_KNOWN.items(), replies[4 * n : 4 * n + 4], strict=True):
                if reply.ok and isinstance(reply.body, dict):
                    known[str(reply.body.get("id"))] = (folder, str(reply.body.get("displayName", "")))
                elif reply.status != 404 or reply.error()[0] in NO_SUCH_MAILBOX:
                    failed[mailbox] = _error(mailbox, reply)
            if mailbox not in failed:
                self._folders[mailbox] = known
        others = [
            (m, fid) for m, ids in wanted.items() if m not in failed for fid in ids if fid not in self._folders[m]
        ]
        replies = await self._run([_Call("GET", f"{_user(m)}/mailFolders/{quote(fid, safe='')}") for m, fid in others])
        for (mailbox, fid), reply in zip(others, replies, strict=True):
            name = str(reply.body.get("displayName", fid)) if reply.ok and isinstance(reply.body, dict) else fid
            self._folders[mailbox][fid] = (Folder.OTHER, name)
        return failed

    # -- transport -------------------------------------------------------------------------------------

    async def _run(self, calls: Sequence[_Call]) -> list[_Reply]:
        """Every call's final reply, in order: throttled ones sent again after their Retry-After (within
        MAX_WAIT_SECONDS in all), and the whole lot once more with a new token if Graph says it expired."""
        replies: list[_Reply] = [_Reply(0, None)] * len(calls)
        pending = list(range(len(calls)))
        waited, renewed = 0.0, False
        for attempt in range(MAX_ATTEMPTS):
            if not pending:
                break
            token = await self._tokens.token()
            answers = await self._transmit(token, [calls[i] for i in pending])
            again, wait, expired = [], 0.0, False
            for i, reply in zip(pending, answers, strict=True):
                replies[i] = reply
                if reply.status in THROTTLED:
                    again.append(i)
                    wait = max(wait, reply.retry_after if reply.retry_after is not None else DEFAULT_RETRY_AFTER)
                elif reply.status == 401 and not renewed:
                    again.append(i)
                    expired = True
            if expired:
                renewed = True
                await self._tokens.forget(token)
            if not again or attempt == MAX_ATTEMPTS - 1 or waited + wait > MAX_WAIT_SECONDS:
                break
            log.info("graph throttled", requests=len(again), retry_after=wait, attempt=attempt + 1)
            await asyncio.sleep(wait)
            waited += wait
            pending = again
        return replies

    async def _transmit(self, token: str, calls: list[_Call]) -> list[_Reply]:
        """One send of each call: alone when one or two, otherwise in JSON batches."""
        if len(calls) <= 2:
            return list(await asyncio.gather(*(self._single(token, call) for call in calls)))
        chunks = [calls[i : i + MAX_BATCH] for i in range(0, len(calls), MAX_BATCH)]
        answers = await asyncio.gather(*(self._batch(token, chunk) for chunk in chunks))
        return [reply for chunk in answers for reply in chunk]

    async def _single(self, token: str, call: _Call) -> _Reply:
        try:
            response = await self._http.request(
                call.method, call.url, json=call.body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as exc:
            return _Reply(0, {"error": {"code": type(exc).__name__, "message": "no answer from Graph"}})
        return _Reply(response.status_code, _body(response), _retry_after(response.headers))

    async def _batch(self, token: str, calls: list[_Call]) -> list[_Reply]:
        requests = []
        for n, call in enumerate(calls):
            request: dict[str, Any] = {"id": str(n), "method": call.method, "url": call.url}
            if call.body is not None:
                request |= {"body": call.body, "headers": {"Content-Type": "application/json"}}
            requests.append(request)
        async with self._gate:
            whole = await self._single(token, _Call("POST", "/$batch", {"requests": requests}))
        if not whole.ok or not isinstance(whole.body, dict):
            return [whole] * len(calls)  # the batch itself was refused or throttled: so is every request
        by_id = {str(r.get("id")): r for r in whole.body.get("responses", []) if isinstance(r, dict)}
        replies = []
        for n in range(len(calls)):
            answer = by_id.get(str(n), {})
            headers = answer.get("headers") if isinstance(answer.get("headers"), dict) else {}
            replies.append(_Reply(int(answer.get("status", 0)), answer.get("body"), _retry_after(headers)))
        return replies


def _user(mailbox: str) -> str:
    return f"/users/{quote(mailbox, safe='@')}"


def _find_calls(mailbox: str, internet_message_id: str) -> list[_Call]:
    """The mailbox's folder tree, then the Recoverable Items deletions folder the tree does not include."""
    escaped = internet_message_id.replace("'", "''")  # OData: a quote inside a string literal is doubled
    query = "$filter=" + quote(f"internetMessageId eq '{escaped}'", safe="") + "&$select=id,parentFolderId&$top=100"
    user = _user(mailbox)
    return [
        _Call("GET", f"{user}/messages?{query}"),
        _Call("GET", f"{user}/mailFolders/{WELL_KNOWN[Folder.RECOVERABLE]}/messages?{query}"),
    ]


def _listed(mailbox: str, replies: Sequence[_Reply]) -> list[tuple[str, str]] | ConnectorError:
    """(message id, parent folder id) of each copy the two searches found, or the first refusal."""
    items: dict[str, str] = {}
    for n, reply in enumerate(replies):
        if not reply.ok:
            if n == 1 and reply.status == 404 and reply.error()[0] not in NO_SUCH_MAILBOX:
                continue  # a mailbox without a Recoverable Items deletions folder
            return _error(mailbox, reply)
        for message in reply.body.get("value", []) if isinstance(reply.body, dict) else []:
            items.setdefault(str(message.get("id")), str(message.get("parentFolderId")))
    return list(items.items())


def _error(mailbox: str, reply: _Reply) -> ConnectorError:
    code, message = reply.error()
    if reply.status == 404 and code in NO_SUCH_MAILBOX:
        return MailboxNotFound(mailbox, f"Graph: {code}: {message}")
    if reply.status in THROTTLED:
        reason = f"Graph busy: {reply.status} {code}".rstrip()
        return ConnectorError(reason, retryable=True, retry_after=reply.retry_after or DEFAULT_RETRY_AFTER)
    return ConnectorError(f"Graph refused: {reply.status} {code}: {message}", retryable=False)


def _raise_or(results: list[_T | ConnectorError]) -> _T:
    (result,) = results
    if isinstance(result, ConnectorError):
        raise result
    return result


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(headers: Any) -> float | None:
    for name, value in dict(headers).items():
        if str(name).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
