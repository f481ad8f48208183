"""One logged-in IMAP session on one mailbox, and what the IMAP connector does with it (synchronous:
`clawback/imap.py` runs it in a worker thread and turns its failures into `ConnectorError`s).

IMAP names a copy by folder + UID, and a UID means something only while the folder's UIDVALIDITY holds
(RFC 3501 §2.3.1.1), so a `Found.ref` carries both and the Message-ID: a copy whose folder was renumbered
is searched for again instead of touching whatever now has that UID. SEARCH HEADER matches substrings,
so every hit is confirmed against the exact Message-ID before it counts.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

import structlog

from mailwarden.clawback.connector import ConnectorError, Folder, Found

log = structlog.get_logger(__name__)

HEADER_ITEM = b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
HEADER_KEY = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
DELETED = b"\\Deleted"

# Names that say a folder's role when the server has no SPECIAL-USE attribute for it (RFC 6154)
COMMON_NAMES: dict[Folder, tuple[str, ...]] = {
    Folder.TRASH: ("trash", "deleted items", "deleted messages"),
    Folder.JUNK: ("junk", "junk email", "junk e-mail", "spam"),
}
SPECIAL_USE = {b"\\trash": Folder.TRASH, b"\\junk": Folder.JUNK}
UNSELECTABLE = {b"\\noselect", b"\\nonexistent"}


@dataclass(frozen=True)
class Ref:
    """Where one copy is: folder, UIDVALIDITY, UID; and which message it is, to search for it again."""

    folder: str
    uidvalidity: int
    uid: int
    message_id: str

    def encode(self) -> str:
        return json.dumps([self.folder, self.uidvalidity, self.uid, self.message_id], ensure_ascii=False)

    @classmethod
    def decode(cls, ref: str) -> Ref:
        try:
            folder, uidvalidity, uid, message_id = json.loads(ref)
            return cls(str(folder), int(uidvalidity), int(uid), str(message_id))
        except (ValueError, TypeError) as exc:
            raise ConnectorError(f"not an IMAP clawback reference: {ref[:80]!r}", retryable=False) from exc


@dataclass(frozen=True)
class Mailbox:
    """A selectable folder of the mailbox as LIST shows it."""

    name: str
    delimiter: str
    flags: frozenset[bytes]


@dataclass
class Roles:
    """Which folder is Trash and which is Junk: the settings' names first, then SPECIAL-USE, then names."""

    trash: str | None = None
    junk: str | None = None

    def role(self, name: str) -> Folder:
        if name.upper() == "INBOX":
            return Folder.INBOX
        if name == self.trash:
            return Folder.TRASH
        if name == self.junk:
            return Folder.JUNK
        return Folder.OTHER

    def destination(self, to: Folder) -> str | None:
        if to is Folder.INBOX:
            return "INBOX"
        if to in (Folder.TRASH, Folder.RECOVERABLE):
            return self.trash
        if to is Folder.JUNK:
            return self.junk
        return None


def assign_roles(boxes: Sequence[Mailbox], overrides: dict[Folder, str]) -> Roles:
    """Trash and Junk of this mailbox (RFC 6154 attributes, else the usual names, last path component)."""
    found: dict[Folder, str] = dict(overrides)
    for box in boxes:
        for flag in box.flags:
            role = SPECIAL_USE.get(flag)
            if role is not None:
                found.setdefault(role, box.name)
    for role, names in COMMON_NAMES.items():
        for wanted in names:
            for box in boxes:
                leaf = box.name.rsplit(box.delimiter, 1)[-1] if box.delimiter else box.name
                if leaf.lower() == wanted:
                    found.setdefault(role, box.name)
    return Roles(found.get(Folder.TRASH), found.get(Folder.JUNK))


def exact_message_id(header_block: bytes) -> str:
    """The Message-ID field body of a fetched header block (unfolded, without surrounding space)."""
    value = BytesHeaderParser(policy=compat32).parsebytes(header_block).get("Message-ID", "")
    return "".join(str(value).split())


class Session:
    """A logged-in IMAPClient on one mailbox. `client` is imapclient's IMAPClient (untyped library)."""

    def __init__(self, mailbox: str, client: Any, overrides: dict[Folder, str], use_move: bool) -> None:
        self.mailbox = mailbox
        self.client = client
        self.overrides = overrides
        self.use_move = use_move
        self._boxes: list[Mailbox] | None = None
        self._roles: Roles | None = None

    def boxes(self) -> list[Mailbox]:
        """Every selectable folder (listed once per session)."""
        if self._boxes is None:
            listed = self.client.list_folders()
            self._boxes = [
                Mailbox(str(name), _text(delimiter), frozenset(bytes(f).lower() for f in flags))
                for flags, delimiter, name in listed
                if not UNSELECTABLE & {bytes(f).lower() for f in flags}
            ]
        return self._boxes

    def roles(self) -> Roles:
        if self._roles is None:
            self._roles = assign_roles(self.boxes(), self.overrides)
        return self._roles

    def find(self, message_id: str) -> list[Found]:
        """Every copy in every selectable folder."""
        found: list[Found] = []
        roles = self.roles()
        for box in self.boxes():
            selected = self.client.select_folder(box.name, readonly=True)
            if not int(selected.get(b"EXISTS", 0)):
                continue
            uidvalidity = int(selected[b"UIDVALIDITY"])
            for uid in self._confirmed(message_id):
                ref = Ref(box.name, uidvalidity, uid, message_id)
                found.append(Found(self.mailbox, ref.encode(), roles.role(box.name), box.name))
        return found

    def _confirmed(self, message_id: str, since_uid: int = 1) -> list[int]:
        """UIDs in the selected folder (from `since_uid` on) whose Message-ID is exactly `message_id`."""
        criteria: list[Any] = ["UID", f"{since_uid}:*"] if since_uid > 1 else []
        criteria += ["NOT", "DELETED", "HEADER", "Message-ID", message_id]
        uids = [int(u) for u in self.client.search(criteria) if int(u) >= since_uid]
        if not uids:
            return []
        fetched = self.client.fetch(uids, [HEADER_ITEM])
        return sorted(uid for uid, data in fetched.items() if exact_message_id(data.get(HEADER_KEY, b"")) == message_id)

    def locate(self, ref: Ref, readonly: bool) -> int:
        """Select the copy's folder and return its UID now; a renumbered folder is searched again."""
        selected = self.client.select_folder(ref.folder, readonly=readonly)
        if int(selected[b"UIDVALIDITY"]) == ref.uidvalidity:
            if self.client.search(["UID", str(ref.uid), "NOT", "DELETED"]):
                return ref.uid
        else:
            log.info("clawback.imap.uidvalidity_changed", mailbox=self.mailbox, folder=ref.folder)
            uids = self._confirmed(ref.message_id)
            if uids:
                return uids[0]
        raise ConnectorError(
            f"the copy in {ref.folder} of {self.mailbox} is gone (moved or deleted since it was found)",
            retryable=False,
        )

    def move(self, found: Found, to: Folder) -> Found:
        """MOVE where the server has it (RFC 6851), else COPY + \\Deleted + UID EXPUNGE (RFC 4315)."""
        ref = Ref.decode(found.ref)
        dest = self.roles().destination(to)
        if dest is None:
            raise ConnectorError(f"{self.mailbox} has no {to.value} folder", retryable=False)
        uid = self.locate(ref, readonly=False)
        uidnext = int(self.client.folder_status(dest, [b"UIDNEXT"])[b"UIDNEXT"])
        if self.use_move and self.client.has_capability("MOVE"):
            self.client.move([uid], dest)
        else:
            self.client.copy([uid], dest)
            self.client.add_flags([uid], [DELETED], silent=True)
            self._expunge(uid, ref.folder, "moved")
        return self._found_after_move(dest, uidnext, ref.message_id)

    def _found_after_move(self, dest: str, uidnext: int, message_id: str) -> Found:
        """The moved copy in `dest`: the newest copy with this Message-ID from the UIDNEXT seen before.
        (Searched for rather than read from COPYUID: imapclient does not hand out that response code.)"""
        selected = self.client.select_folder(dest, readonly=True)
        uids = self._confirmed(message_id, since_uid=uidnext) or self._confirmed(message_id)
        if not uids:
            raise ConnectorError(f"moved to {dest} of {self.mailbox}, but not found there", retryable=True)
        return self._found(dest, int(selected[b"UIDVALIDITY"]), uids[-1], message_id)

    def _found(self, folder: str, uidvalidity: int, uid: int, message_id: str) -> Found:
        ref = Ref(folder, uidvalidity, uid, message_id)
        return Found(self.mailbox, ref.encode(), self.roles().role(folder), folder)

    def delete(self, found: Found) -> None:
        """\\Deleted + UID EXPUNGE of this one UID."""
        ref = Ref.decode(found.ref)
        uid = self.locate(ref, readonly=False)
        self.client.add_flags([uid], [DELETED], silent=True)
        if not self._expunge(uid, ref.folder, "deleted"):
            raise ConnectorError(
                f"{self.mailbox}: the server has no UIDPLUS, so the copy in {ref.folder} is only flagged "
                "\\Deleted (a plain EXPUNGE would also remove every other message the user flagged)",
                retryable=False,
            )

    def _expunge(self, uid: int, folder: str, why: str) -> bool:
        """UID EXPUNGE of one UID; without UIDPLUS the copy stays flagged \\Deleted (whether it went)."""
        if self.client.has_capability("UIDPLUS"):
            self.client.uid_expunge([uid])
            return True
        log.warning("clawback.imap.no_uidplus", mailbox=self.mailbox, folder=folder, action=why)
        return False

    def close(self) -> None:
        close_client(self.client)


def close_client(client: Any) -> None:
    """LOGOUT; a connection that already broke is just closed (nothing left to report)."""
    try:
        client.logout()
    except Exception:
        with contextlib.suppress(Exception):
            client.shutdown()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return "" if value is None else str(value)
