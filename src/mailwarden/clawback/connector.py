"""One interface to the mailboxes a message was delivered to: find it by Message-ID, move it, delete it.

Three implementations live beside this module (`graph.py` for Microsoft 365, `gmail.py` for Google
Workspace, `imap.py` for any IMAP server). They speak their provider's protocol and nothing else: which
recipient lives where, jobs, retries over minutes and the timeline are `clawback/actions.py`'s and the
service's business. A connector honours the provider's short throttling answers itself (429/503 with
`Retry-After` up to `MAX_WAIT_SECONDS`) and raises `ConnectorError` for the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

# Longest single wait a connector spends inside one call on a provider's Retry-After; longer answers
# become a retryable ConnectorError and the job engine comes back later.
MAX_WAIT_SECONDS = 30.0


class Folder(StrEnum):
    """Where a message is, or goes, in the words every provider can map."""

    INBOX = "inbox"
    JUNK = "junk"  # Graph junkemail, Gmail SPAM label, IMAP \Junk (or "Junk")
    TRASH = "trash"  # Graph deleteditems, Gmail TRASH, IMAP \Trash (or "Trash"): soft delete
    RECOVERABLE = "recoverable"  # Graph recoverableitemsdeletions; Gmail and IMAP: same as TRASH
    OTHER = "other"  # any other folder (a user's own, Sent, Archive ...)


@dataclass(frozen=True)
class Found:
    """One copy of the message in one mailbox. `ref` is the provider's handle (Graph message id, Gmail
    message id, IMAP `folder` + UID), enough for `move` and `delete` without another search."""

    mailbox: str
    ref: str
    folder: Folder
    folder_name: str  # as the provider names it, for people ("Deleted Items", "[Gmail]/Spam", "INBOX.Trash")


class ConnectorError(Exception):
    """The provider refused or failed. `retryable`: try again later (throttled, 5xx, network); otherwise
    the refusal is final for this mailbox (unknown user, permission missing) and says why."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class MailboxNotFound(ConnectorError):
    """The provider has no such mailbox (or the connector may not open it)."""

    def __init__(self, mailbox: str, reason: str = "") -> None:
        super().__init__(reason or f"no mailbox {mailbox}", retryable=False)
        self.mailbox = mailbox


@runtime_checkable
class MailboxConnector(Protocol):
    """What the job engine needs of a provider. All calls are coroutines; one connector serves many
    mailboxes of one organisation and may be called concurrently."""

    kind: ClassVar[str]

    async def find(self, mailbox: str, internet_message_id: str) -> list[Found]:
        """Every copy of the message in every folder of `mailbox` (junk and trash included); [] if none.
        `internet_message_id` is the Message-ID with its angle brackets."""
        ...

    async def move(self, found: Found, to: Folder) -> Found:
        """Move one copy to `to` (INBOX to restore); returns where it is now."""
        ...

    async def delete(self, found: Found) -> None:
        """Delete one copy for good (no Deleted Items, no Trash)."""
        ...

    async def find_many(self, pairs: Sequence[tuple[str, str]]) -> list[list[Found] | ConnectorError]:
        """`find` for many (mailbox, Message-ID) pairs, in order; a provider with batching sends them in
        batches. A failure for one pair is returned in its place, never raised."""
        ...

    async def move_many(self, items: Sequence[tuple[Found, Folder]]) -> list[Found | ConnectorError]:
        """`move` for many copies, in order, batched where the provider batches; failures in place."""
        ...

    async def delete_many(self, items: Sequence[Found]) -> list[ConnectorError | None]:
        """`delete` for many copies, in order, batched where the provider batches; failures in place."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class BaseConnector:
    """Defaults for the batch call: concurrent single calls, at most `concurrency` at once."""

    kind: ClassVar[str] = ""
    concurrency: int = 8

    async def find(self, mailbox: str, internet_message_id: str) -> list[Found]:
        raise NotImplementedError

    async def find_many(self, pairs: Sequence[tuple[str, str]]) -> list[list[Found] | ConnectorError]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(mailbox: str, message_id: str) -> list[Found] | ConnectorError:
            async with gate:
                try:
                    return await self.find(mailbox, message_id)
                except ConnectorError as exc:
                    return exc

        return list(await asyncio.gather(*(one(m, i) for m, i in pairs)))

    async def move(self, found: Found, to: Folder) -> Found:
        raise NotImplementedError

    async def delete(self, found: Found) -> None:
        raise NotImplementedError

    async def move_many(self, items: Sequence[tuple[Found, Folder]]) -> list[Found | ConnectorError]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(found: Found, to: Folder) -> Found | ConnectorError:
            async with gate:
                try:
                    return await self.move(found, to)
                except ConnectorError as exc:
                    return exc

        return list(await asyncio.gather(*(one(f, t) for f, t in items)))

    async def delete_many(self, items: Sequence[Found]) -> list[ConnectorError | None]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(found: Found) -> ConnectorError | None:
            async with gate:
                try:
                    await self.delete(found)
                except ConnectorError as exc:
                    return exc
                return None

        return list(await asyncio.gather(*(one(f) for f in items)))

    async def aclose(self) -> None:
        return None
