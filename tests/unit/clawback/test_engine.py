"""One round against mailboxes in memory: what each recipient's status and timeline say afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailwarden.clawback.connector import ConnectorError, Folder
from mailwarden.clawback.engine import RetryRule, Round
from mailwarden.model.clawback import Claimed, ClawbackAction, ItemStatus, Target
from mailwarden.model.trace import EventType

from .memory import MemoryMailboxes

MID = "<evil-1@attacker.example>"


def claimed(n: int, recipient: str, action: ClawbackAction, attempts: int = 0) -> Claimed:
    return Claimed(n, "JOB1", "corp", action, Target("MSG1", MID, recipient), attempts, "ann", "phishing wave")


async def run(boxes: MemoryMailboxes, *items: Claimed, retry: RetryRule | None = None) -> Round:
    r = Round(boxes, name="memory:test", retry=retry or RetryRule())
    await r.run(list(items))
    return r


@pytest.fixture
def boxes() -> MemoryMailboxes:
    b = MemoryMailboxes()
    b.put("bob@corp.example", MID)
    b.put("carol@corp.example", MID, Folder.JUNK)
    b.boxes["dave@corp.example"] = {}
    return b


async def test_every_copy_moves_and_each_recipient_says_where(boxes: MemoryMailboxes) -> None:
    r = await run(
        boxes,
        claimed(1, "bob@corp.example", ClawbackAction.TRASH),
        claimed(2, "carol@corp.example", ClawbackAction.TRASH),
        claimed(3, "dave@corp.example", ClawbackAction.TRASH),
    )
    status = {o.item_id: o.status for o in r.outcomes}
    assert status == {1: ItemStatus.MOVED, 2: ItemStatus.MOVED, 3: ItemStatus.NOT_FOUND}
    assert boxes.folders("bob@corp.example", MID) == [Folder.TRASH]
    assert boxes.folders("carol@corp.example", MID) == [Folder.TRASH]
    kinds = [(e.recipient, e.type) for _, e in r.events]
    assert ("bob@corp.example", EventType.CLAWBACK) in kinds
    assert all("ann" in e.detail and "phishing wave" in e.detail for _, e in r.events)


async def test_a_second_clawback_finds_nothing_more_to_do(boxes: MemoryMailboxes) -> None:
    await run(boxes, claimed(1, "bob@corp.example", ClawbackAction.RECOVERABLE))
    boxes.calls.clear()
    r = await run(boxes, claimed(2, "bob@corp.example", ClawbackAction.RECOVERABLE))
    assert [o.status for o in r.outcomes] == [ItemStatus.ALREADY]
    assert "nothing to do" in r.outcomes[0].detail
    assert not [c for c in boxes.calls if c.startswith("move")]


async def test_restore_brings_back_only_what_a_clawback_moved(boxes: MemoryMailboxes) -> None:
    await run(boxes, claimed(1, "bob@corp.example", ClawbackAction.JUNK))
    boxes.put("bob@corp.example", MID, Folder.OTHER)  # a copy the user filed in a folder of their own
    r = await run(boxes, claimed(2, "bob@corp.example", ClawbackAction.RESTORE))
    assert [o.status for o in r.outcomes] == [ItemStatus.RESTORED]
    assert boxes.folders("bob@corp.example", MID) == sorted([Folder.INBOX, Folder.OTHER])
    assert r.events[0][1].type is EventType.RESTORE


async def test_hard_delete_removes_every_copy(boxes: MemoryMailboxes) -> None:
    boxes.put("bob@corp.example", MID, Folder.TRASH)
    r = await run(boxes, claimed(1, "bob@corp.example", ClawbackAction.DELETE))
    assert [o.status for o in r.outcomes] == [ItemStatus.DELETED]
    assert boxes.folders("bob@corp.example", MID) == []


async def test_a_busy_provider_is_retried_later_and_a_refusal_is_final(boxes: MemoryMailboxes) -> None:
    boxes.failures["bob@corp.example"] = ConnectorError("429 throttled", retryable=True, retry_after=120)
    boxes.failures["carol@corp.example"] = ConnectorError("403 ErrorAccessDenied", retryable=False)
    before = datetime.now(UTC)
    r = await run(
        boxes,
        claimed(1, "bob@corp.example", ClawbackAction.TRASH),
        claimed(2, "carol@corp.example", ClawbackAction.TRASH),
        claimed(3, "erin@corp.example", ClawbackAction.TRASH),
    )
    by_id = {o.item_id: o for o in r.outcomes}
    assert by_id[1].status is ItemStatus.RETRYING
    assert by_id[1].retry_at is not None and (by_id[1].retry_at - before).total_seconds() >= 119
    assert by_id[2].status is ItemStatus.FAILED and "ErrorAccessDenied" in by_id[2].detail
    assert by_id[3].status is ItemStatus.FAILED and "no mailbox erin@corp.example" in by_id[3].detail
    assert {e.type for _, e in r.events} == {EventType.CLAWBACK_FAILED}  # a retry is no event yet


async def test_the_last_attempt_fails_for_good(boxes: MemoryMailboxes) -> None:
    boxes.failures["bob@corp.example"] = ConnectorError("503", retryable=True)
    r = await run(boxes, claimed(1, "bob@corp.example", ClawbackAction.TRASH, attempts=2), retry=RetryRule(3))
    assert [o.status for o in r.outcomes] == [ItemStatus.FAILED]
