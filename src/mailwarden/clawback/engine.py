"""One round of work for one connector: find every claimed copy, act on it, and say what became of it.

The round is provider-neutral: it asks the connector in batches (find, then move or delete) and turns
each answer into an item outcome and, for the timeline, an event. Retrying later, leases and jobs are the
caller's; here a retryable failure only becomes "retry at" with a growing pause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailwarden.clawback.connector import ConnectorError, Folder, Found, MailboxConnector, MailboxNotFound
from mailwarden.model.clawback import Claimed, ClawbackAction, ItemOutcome, ItemStatus
from mailwarden.model.trace import EventRecord, EventType

DESTINATION = {
    ClawbackAction.TRASH: Folder.TRASH,
    ClawbackAction.JUNK: Folder.JUNK,
    ClawbackAction.RECOVERABLE: Folder.RECOVERABLE,
    ClawbackAction.RESTORE: Folder.INBOX,
}
# where a restore takes copies from: what a clawback put them in, never the user's own folders
RESTORABLE = frozenset({Folder.TRASH, Folder.JUNK, Folder.RECOVERABLE})


@dataclass(frozen=True)
class RetryRule:
    max_attempts: int = 8
    first_pause: float = 30.0
    longest_pause: float = 3600.0

    def retry_at(self, attempts: int, retry_after: float | None, now: datetime) -> datetime | None:
        """When to try again after the `attempts`-th failure, or None when the attempts are spent."""
        if attempts + 1 >= self.max_attempts:
            return None
        pause = min(self.first_pause * 2**attempts, self.longest_pause)
        return now + timedelta(seconds=max(pause, retry_after or 0.0))


def lands_in(kind: str, destination: Folder) -> frozenset[Folder]:
    """The folders a copy counts as already moved to: outside Microsoft 365, Recoverable Items is the Trash."""
    if destination is Folder.RECOVERABLE and kind != "graph":
        return frozenset({Folder.TRASH, Folder.RECOVERABLE})
    return frozenset({destination})


@dataclass
class _Plan:
    item: Claimed
    copies: list[Found]
    todo: list[Found]


class Round:
    def __init__(self, connector: MailboxConnector, *, name: str, retry: RetryRule) -> None:
        self.connector = connector
        self.name = name  # the connector's name, for the timeline
        self.retry = retry
        self.outcomes: list[ItemOutcome] = []
        self.events: list[tuple[str, EventRecord]] = []

    async def run(self, items: Sequence[Claimed]) -> None:
        found = await self.connector.find_many([(i.target.recipient, i.target.internet_message_id) for i in items])
        plans: list[_Plan] = []
        for item, answer in zip(items, found, strict=True):
            if isinstance(answer, ConnectorError):
                self._failed(item, answer, "find")
            elif not answer:
                self._final(item, ItemStatus.NOT_FOUND, "not in the mailbox (deleted or moved away by then?)")
            else:
                plan = _Plan(item, answer, self._todo(item.action, answer))
                if plan.todo:
                    plans.append(plan)
                else:
                    self._final(item, ItemStatus.ALREADY, "nothing to do: " + _where(answer))
        deleting = [p for p in plans if p.item.action is ClawbackAction.DELETE]
        moving = [p for p in plans if p.item.action is not ClawbackAction.DELETE]
        if moving:
            await self._move(moving)
        if deleting:
            await self._delete(deleting)

    def _todo(self, action: ClawbackAction, copies: list[Found]) -> list[Found]:
        if action is ClawbackAction.DELETE:
            return list(copies)
        if action is ClawbackAction.RESTORE:
            return [c for c in copies if c.folder in RESTORABLE]
        there = lands_in(self.connector.kind, DESTINATION[action])
        return [c for c in copies if c.folder not in there]

    async def _move(self, plans: list[_Plan]) -> None:
        pairs = [(copy, DESTINATION[p.item.action]) for p in plans for copy in p.todo]
        answers = iter(await self.connector.move_many(pairs))
        for p in plans:
            results = [next(answers) for _ in p.todo]
            error = next((r for r in results if isinstance(r, ConnectorError)), None)
            if error is not None:
                self._failed(p.item, error, "move")
                continue
            moved = [r for r in results if isinstance(r, Found)]
            if p.item.action is ClawbackAction.RESTORE:
                self._final(p.item, ItemStatus.RESTORED, "restored to " + _where(moved))
            else:
                self._final(p.item, ItemStatus.MOVED, "moved to " + _where(moved))

    async def _delete(self, plans: list[_Plan]) -> None:
        answers = iter(await self.connector.delete_many([copy for p in plans for copy in p.todo]))
        for p in plans:
            results = [next(answers) for _ in p.todo]
            error = next((r for r in results if isinstance(r, ConnectorError)), None)
            if error is not None:
                self._failed(p.item, error, "delete")
            else:
                self._final(p.item, ItemStatus.DELETED, f"deleted for good ({len(results)} copies)")

    # ---- outcomes ------------------------------------------------------------------------------
    def _final(self, item: Claimed, status: ItemStatus, detail: str) -> None:
        self.outcomes.append(ItemOutcome(item.item_id, status, detail))
        kind = EventType.RESTORE if item.action is ClawbackAction.RESTORE else EventType.CLAWBACK
        if status is ItemStatus.FAILED:
            kind = EventType.CLAWBACK_FAILED
        self.events.append((item.target.message_id, self._event(item, kind, f"{status.value}: {detail}")))

    def _failed(self, item: Claimed, error: ConnectorError, step: str) -> None:
        now = datetime.now(UTC)
        reason = f"{step}: {error.reason}"
        if isinstance(error, MailboxNotFound):
            reason = f"{step}: the provider has no mailbox {item.target.recipient}"
        retry_at = self.retry.retry_at(item.attempts, error.retry_after, now) if error.retryable else None
        if retry_at is None:
            self._final(item, ItemStatus.FAILED, reason)
        else:
            self.outcomes.append(ItemOutcome(item.item_id, ItemStatus.RETRYING, reason, retry_at=retry_at))

    def _event(self, item: Claimed, kind: EventType, detail: str) -> EventRecord:
        why = f" — {item.reason}" if item.reason else ""
        text = f"{detail} [{self.name}; {item.action.value} by {item.requested_by}, job {item.job_id}{why}]"
        return EventRecord(kind, text, recipient=item.target.recipient)


def _where(copies: Sequence[Found]) -> str:
    names = sorted({c.folder_name for c in copies})
    return ", ".join(names) if names else "no folder"
