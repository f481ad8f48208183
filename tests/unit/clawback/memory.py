"""Mailboxes in memory behind the connector interface, for the provider-neutral parts (the round, jobs).

Only for unit tests: each provider's own connector is tested against its real server or published-API fake.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from mailwarden.clawback.connector import BaseConnector, ConnectorError, Folder, Found, MailboxNotFound

NAMES = {Folder.INBOX: "Inbox", Folder.JUNK: "Junk", Folder.TRASH: "Trash", Folder.RECOVERABLE: "Trash"}


class MemoryMailboxes(BaseConnector):
    kind = "memory"

    def __init__(self) -> None:
        self.boxes: dict[str, dict[str, tuple[str, Folder]]] = {}  # mailbox → ref → (Message-ID, folder)
        self.failures: dict[str, ConnectorError] = {}  # mailbox → what every call on it raises
        self.calls: list[str] = []
        self._ids = itertools.count(1)

    def put(self, mailbox: str, message_id: str, folder: Folder = Folder.INBOX) -> None:
        self.boxes.setdefault(mailbox, {})[f"m{next(self._ids)}"] = (message_id, folder)

    def folders(self, mailbox: str, message_id: str) -> list[Folder]:
        return sorted(f for mid, f in self.boxes.get(mailbox, {}).values() if mid == message_id)

    def _box(self, mailbox: str) -> dict[str, tuple[str, Folder]]:
        if mailbox in self.failures:
            raise self.failures[mailbox]
        if mailbox not in self.boxes:
            raise MailboxNotFound(mailbox)
        return self.boxes[mailbox]

    async def find(self, mailbox: str, internet_message_id: str) -> list[Found]:
        self.calls.append(f"find {mailbox}")
        box = self._box(mailbox)
        return [
            Found(mailbox, ref, folder, NAMES.get(folder, "Other"))
            for ref, (mid, folder) in box.items()
            if mid == internet_message_id
        ]

    async def move(self, found: Found, to: Folder) -> Found:
        self.calls.append(f"move {found.mailbox} {to.value}")
        box = self._box(found.mailbox)
        mid, _ = box[found.ref]
        box[found.ref] = (mid, Folder.TRASH if to is Folder.RECOVERABLE else to)
        return Found(found.mailbox, found.ref, box[found.ref][1], NAMES[to])

    async def delete(self, found: Found) -> None:
        self.calls.append(f"delete {found.mailbox}")
        del self._box(found.mailbox)[found.ref]

    async def find_many(self, pairs: Sequence[tuple[str, str]]) -> list[list[Found] | ConnectorError]:
        return await super().find_many(pairs)
