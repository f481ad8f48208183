"""Sending limits through the guard: exactly at a limit nothing happens, one over restricts as the policy
says; "for today" ends at midnight UTC; alert only restricts nobody; monitor mode only records."""

from __future__ import annotations

from datetime import UTC, datetime

from mailwarden.model import Direction, Mode, Policy
from mailwarden.model.outbound import LimitAction
from mailwarden.model.trace import MessageRecord
from mailwarden.outbound.counters import MemoryCounter
from mailwarden.service.outbound import OutboundGuard, release_sender
from mailwarden.store import Database
from mailwarden.store.restricted import RestrictedSenders
from tests.unit.store.records import build_record

T = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)


def policy(action: LimitAction = LimitAction.BLOCK_USER_FOR_TODAY, external: int = 3) -> Policy:
    return Policy.model_validate({"outbound_spam": {"external_per_hour": external, "action_at_limit": action.value}})


def guard(db: Database, p: Policy) -> OutboundGuard:
    return OutboundGuard(db, lambda org: p, lambda org: frozenset({"corp.example"}), counter=MemoryCounter())


def sent(n_external: int, *, at: datetime = T, mode: Mode = Mode.ENFORCE) -> MessageRecord:
    rcpts = (*(f"r{i}@else.example" for i in range(n_external)), "colleague@corp.example")
    return build_record(at=at, direction=Direction.OUTBOUND, sender="bob@corp.example", recipients=rcpts, mode=mode)


async def test_exactly_at_the_limit_is_fine_one_over_restricts_until_midnight_utc(db: Database) -> None:
    g = guard(db, policy())
    assert await g.recorded([sent(3)]) == []  # 3 external of 3: at the limit
    [made] = await g.recorded([sent(1)])  # the fourth
    assert made.until == datetime(2026, 12, 8, tzinfo=UTC) and "4 external recipients in an hour" in made.reason
    assert made.active(datetime(2026, 12, 7, 23, 59, 59, tzinfo=UTC))
    assert not made.active(datetime(2026, 12, 8, tzinfo=UTC))  # BlockUserForToday ends at midnight UTC


async def test_block_user_lasts_until_released_and_alert_restricts_nobody(db: Database) -> None:
    [made] = await guard(db, policy(LimitAction.BLOCK_USER)).recorded([sent(4)])
    assert made.until is None
    RestrictedSenders(db).release("corp", "bob@corp.example", actor="ann")
    assert await guard(db, policy(LimitAction.ALERT)).recorded([sent(4)]) == []
    assert RestrictedSenders(db).list() == []


async def test_monitor_mode_records_what_would_have_been_restricted(db: Database) -> None:
    [made] = await guard(db, policy()).recorded([sent(4, mode=Mode.MONITOR)])
    assert made.would_have and not made.active(T)


async def test_internal_recipients_count_against_their_own_limit(db: Database) -> None:
    g = guard(db, Policy.model_validate({"outbound_spam": {"internal_per_hour": 2, "external_per_hour": 100}}))
    rec = build_record(at=T, direction=Direction.OUTBOUND, sender="bob@corp.example",
                       recipients=("a@corp.example", "b@corp.example", "c@corp.example"))  # fmt: skip
    [made] = await g.recorded([rec])
    assert "3 internal recipients" in made.reason


async def test_a_sender_of_outbound_spam_is_restricted_at_the_threshold(db: Database) -> None:
    from mailwarden.model import Category

    g = guard(db, Policy.model_validate({"outbound_spam": {"restrict_after_spam": 2, "action_at_limit": "block_user"}}))

    def spam() -> MessageRecord:
        return build_record(at=T, direction=Direction.OUTBOUND, sender="bob@corp.example",
                            recipients=("x@else.example",), category=Category.SPAM)  # fmt: skip

    assert await g.recorded([spam(), sent(1)]) == []  # one spam message; clean mail does not count
    [made] = await g.recorded([spam()])
    assert made.reason == "2 outbound spam messages today (limit 2)" and made.until is None


async def test_a_release_starts_the_senders_hour_afresh(db: Database) -> None:
    """Released by an administrator, the account may send its limit again; it is not restricted by the
    very next message on the counts that restricted it."""
    g = OutboundGuard(db, lambda org: policy(LimitAction.BLOCK_USER), lambda org: frozenset({"corp.example"}))
    assert len(await g.recorded([sent(4)])) == 1
    release_sender(db, "", "corp", "Bob@corp.example", actor="ann")
    assert RestrictedSenders(db).list() == []
    assert await g.recorded([sent(3)]) == []  # three more external recipients: at the limit, no more
    [again] = await g.recorded([sent(1)])
    assert "4 external recipients in an hour" in again.reason


async def test_the_gate_lets_a_released_sender_through_at_once(db: Database) -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from mailwarden.model.outbound import RestrictedSender
    from mailwarden.service.restricted import SenderGate

    tenant = SimpleNamespace(organisation=SimpleNamespace(name="corp", monitor_only=False))
    directory = cast(Any, SimpleNamespace(lookup=lambda address: (tenant, None)))
    gate = SenderGate(db, directory, refresh_seconds=3600)  # the copy is never reloaded in this test
    RestrictedSenders(db).restrict(RestrictedSender("corp", "bob@corp.example", "why", T, None), actor="ann")
    session = cast(Any, None)
    refused = await gate.check("outbound", "bob@corp.example", session)
    assert refused is not None and str(refused).startswith("550 5.1.8")
    release_sender(db, "", "corp", "bob@corp.example", actor="ann")
    assert await gate.check("outbound", "bob@corp.example", session) is None
