"""Google Workspace mailboxes through the Gmail API: find a delivered message by its Message-ID
(`rfc822msgid:`, spam and trash included), trash it, mark it spam, delete it for good, or restore it.

Access is a service account with domain-wide delegation: the administrator grants the account's client id
the scope `https://mail.google.com/` in the Admin console, and the connector acts as each recipient in turn.
Gmail has labels, not folders: TRASH and SPAM are where a message "is" when it carries them, INBOX next,
anything else is another folder. Campaigns go through the batch endpoint, up to `batch_size` calls at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from mailwarden.clawback.connector import BaseConnector, ConnectorError, Folder, Found
from mailwarden.clawback.gmail_batch import MAX_BATCH, ApiCall, ApiReply
from mailwarden.clawback.gmail_transport import Tokens, Transport, reply_error, ssl_context, user_path

KIND = "gmail"
FULL_SCOPE = "https://mail.google.com/"  # the only scope that allows permanent delete
LIST_PAGE = 500  # Gmail's largest page; one Message-ID has a handful of copies at most
KEY_FIELDS = ("client_email", "private_key", "token_uri")

_FOLDER_OF_LABEL = {"TRASH": Folder.TRASH, "SPAM": Folder.JUNK, "INBOX": Folder.INBOX}
_LABEL_NAMES = {"INBOX": "Inbox", "SPAM": "Spam", "TRASH": "Trash", "SENT": "Sent", "DRAFT": "Drafts"}
_SYSTEM_LABELS = frozenset({"UNREAD", "STARRED", "IMPORTANT", "CHAT"})


class Settings(BaseModel):
    """Where the Gmail API and Google's token endpoint are; the service account itself is the Secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_url: str = Field("https://gmail.googleapis.com", description="Base URL of the Gmail API.")
    token_url: str | None = Field(
        None, description="Token endpoint for the JWT bearer grant; default: the key file's token_uri."
    )
    ca_file: Path | None = Field(
        None, description="PEM file of a CA to trust in addition to the system's (a TLS-inspecting proxy)."
    )
    scopes: tuple[str, ...] = Field(
        (FULL_SCOPE,),
        description="OAuth scopes to ask for. https://mail.google.com/ is needed for hard delete; "
        "https://www.googleapis.com/auth/gmail.modify is enough to find, trash, mark spam and restore.",
    )
    batch_size: int = Field(50, ge=1, le=MAX_BATCH, description="Calls per batch request (Google advises <= 50).")
    max_attempts: int = Field(4, ge=1, le=10, description="Tries of one call on 429/5xx before giving up.")
    timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one HTTP request.")


class Secret(BaseModel):
    """The service account's JSON key file, as downloaded from the Google Cloud console."""

    model_config = ConfigDict(extra="forbid")

    service_account_json: SecretStr = Field(description="The whole key file (JSON) of the service account.")


def _key_info(secret: Secret, token_url: str | None) -> dict[str, Any]:
    """The key file as a dict; the reasons name fields, never values (the file holds the private key)."""
    try:
        info = json.loads(secret.service_account_json.get_secret_value())
    except ValueError:
        raise ConnectorError("service_account_json is not JSON", retryable=False) from None
    if not isinstance(info, dict) or info.get("type", "service_account") != "service_account":
        raise ConnectorError("service_account_json is not a service account key file", retryable=False)
    missing = [name for name in KEY_FIELDS if not info.get(name)]
    if missing:
        raise ConnectorError(f"service_account_json lacks {', '.join(missing)}", retryable=False)
    if token_url:
        info["token_uri"] = token_url
    return info


def connect(settings: Settings, secret: Secret) -> GmailConnector:
    """A connector for one organisation's Google Workspace; no network until the first call."""
    info = _key_info(secret, settings.token_url)
    context = ssl_context(settings.ca_file)
    try:
        tokens = Tokens(info, settings.scopes, context)
    except ValueError:  # google-auth could not read the private key; its message may quote the key
        raise ConnectorError("service_account_json has an unreadable private_key", retryable=False) from None
    http = httpx.AsyncClient(verify=context, timeout=settings.timeout_seconds)
    transport = Transport(
        settings.api_url, tokens, http, batch_size=settings.batch_size, max_attempts=settings.max_attempts
    )
    return GmailConnector(transport, tokens, http)


def folder_of(labels: Sequence[str]) -> tuple[Folder, str]:
    """Where a message with these label ids is, and how a person would name it."""
    for label, folder in _FOLDER_OF_LABEL.items():
        if label in labels:
            return folder, _LABEL_NAMES[label]
    others = [label for label in labels if label not in _SYSTEM_LABELS and not label.startswith("CATEGORY_")]
    return Folder.OTHER, _LABEL_NAMES.get(others[0], others[0]) if others else "All Mail"


def search_query(internet_message_id: str) -> str:
    """`rfc822msgid:` and the Message-ID without its angle brackets, in double quotes when it holds a
    character the search syntax would split on. A Message-ID with a double quote in it cannot be written
    in Gmail's syntax; it goes as it is and Google answers 400 invalidArgument."""
    bare = internet_message_id.strip().removeprefix("<").removesuffix(">")
    if any(c.isspace() or c in '"(){}' for c in bare) and '"' not in bare:
        return f'rfc822msgid:"{bare}"'
    return f"rfc822msgid:{bare}"


def _labels(reply: ApiReply) -> list[str]:
    labels = reply.body.get("labelIds", []) if isinstance(reply.body, Mapping) else []
    return [str(label) for label in labels]


class GmailConnector(BaseConnector):
    """`MailboxConnector` for the Gmail API; batched forms send up to `batch_size` calls per request."""

    kind: ClassVar[str] = KIND

    def __init__(self, transport: Transport, tokens: Tokens, http: httpx.AsyncClient) -> None:
        self._transport = transport
        self._tokens = tokens
        self._http = http

    def __repr__(self) -> str:
        return f"GmailConnector(kind={self.kind!r})"

    async def find(self, mailbox: str, internet_message_id: str) -> list[Found]:
        result = (await self.find_many([(mailbox, internet_message_id)]))[0]
        if isinstance(result, ConnectorError):
            raise result
        return result

    async def move(self, found: Found, to: Folder) -> Found:
        result = (await self.move_many([(found, to)]))[0]
        if isinstance(result, ConnectorError):
            raise result
        return result

    async def delete(self, found: Found) -> None:
        result = (await self.delete_many([found]))[0]
        if result is not None:
            raise result

    async def find_many(self, pairs: Sequence[tuple[str, str]]) -> list[list[Found] | ConnectorError]:
        """List each pair's copies (one call per pair), then read each copy's labels (one call per copy)."""
        query = {"maxResults": LIST_PAGE, "includeSpamTrash": "true"}
        lists = [
            ApiCall(mailbox, "GET", user_path(mailbox, "messages?" + urlencode({**query, "q": search_query(mid)})))
            for mailbox, mid in pairs
        ]
        listed = await self._transport.execute(lists)
        out: list[list[Found] | ConnectorError] = []
        gets: list[ApiCall] = []
        owners: list[int] = []
        for n, (call, reply) in enumerate(zip(lists, listed, strict=True)):
            if isinstance(reply, ConnectorError) or reply.status != 200:
                out.append(reply if isinstance(reply, ConnectorError) else reply_error(reply, call))
                continue
            out.append([])
            for entry in reply.body.get("messages", []) if isinstance(reply.body, Mapping) else []:
                gets.append(
                    ApiCall(call.mailbox, "GET", user_path(call.mailbox, f"messages/{entry['id']}?format=minimal"))
                )
                owners.append(n)
        for n, call, reply in zip(owners, gets, await self._transport.execute(gets), strict=True):
            found = out[n]
            if isinstance(found, ConnectorError):
                continue
            if isinstance(reply, ConnectorError):
                out[n] = reply
            elif reply.status == 200:
                folder, name = folder_of(_labels(reply))
                found.append(Found(call.mailbox, str(reply.body["id"]), folder, name))
            elif reply.status != 404:  # 404: deleted between the list and the read; not there any more
                out[n] = reply_error(reply, call)
        return out

    async def move_many(self, items: Sequence[tuple[Found, Folder]]) -> list[Found | ConnectorError]:
        """Each move is one or two calls (a restore from trash untrashes, then relabels); the first calls of
        all items go in one run of batches, then the second ones."""
        out: list[Found | ConnectorError] = []
        plans: list[list[ApiCall]] = []
        for found, to in items:
            try:
                plans.append(_plan(found, to))
                out.append(found)
            except ConnectorError as exc:
                plans.append([])
                out.append(exc)
        for step in range(2):
            todo = [n for n, plan in enumerate(plans) if len(plan) > step and not isinstance(out[n], ConnectorError)]
            calls = [plans[n][step] for n in todo]
            for n, call, reply in zip(todo, calls, await self._transport.execute(calls), strict=True):
                out[n] = self._moved(items[n][0], call, reply)
        return out

    def _moved(self, found: Found, call: ApiCall, reply: ApiReply | ConnectorError) -> Found | ConnectorError:
        if isinstance(reply, ConnectorError):
            return reply
        if reply.status != 200:
            return reply_error(reply, call)
        folder, name = folder_of(_labels(reply))
        return Found(found.mailbox, found.ref, folder, name)

    async def delete_many(self, items: Sequence[Found]) -> list[ConnectorError | None]:
        calls = [ApiCall(f.mailbox, "DELETE", user_path(f.mailbox, f"messages/{f.ref}")) for f in items]
        out: list[ConnectorError | None] = []
        for call, reply in zip(calls, await self._transport.execute(calls), strict=True):
            if isinstance(reply, ConnectorError):
                out.append(reply)
            else:
                out.append(None if reply.status in (200, 204) else reply_error(reply, call))
        return out

    async def aclose(self) -> None:
        await self._http.aclose()
        self._tokens.close()


def _plan(found: Found, to: Folder) -> list[ApiCall]:
    """The calls that take one copy to `to`; none when it is there already."""
    target = Folder.TRASH if to is Folder.RECOVERABLE else to
    if target is found.folder:
        return []
    base = user_path(found.mailbox, f"messages/{found.ref}")
    untrash = [ApiCall(found.mailbox, "POST", f"{base}/untrash")] if found.folder is Folder.TRASH else []
    if target is Folder.TRASH:
        return [ApiCall(found.mailbox, "POST", f"{base}/trash")]
    if target is Folder.JUNK:
        labels = {"addLabelIds": ["SPAM"], "removeLabelIds": ["INBOX"]}
        return [*untrash, ApiCall(found.mailbox, "POST", f"{base}/modify", labels)]
    if target is Folder.INBOX:
        labels = {"addLabelIds": ["INBOX"], "removeLabelIds": ["SPAM"]}
        return [*untrash, ApiCall(found.mailbox, "POST", f"{base}/modify", labels)]
    raise ConnectorError(f"a message is moved to inbox, junk, trash or recoverable, not {to}", retryable=False)
