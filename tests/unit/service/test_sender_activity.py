"""The compromised-account signals: the sender's activity as the store keeps it, the facts the service
sums from it, and the findings the outbound spam filter makes of them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from mailwarden.model import Direction
from mailwarden.pipeline.facts import SenderFacts
from mailwarden.pipeline.spam.compromise import (
    COMPROMISE_WEIGHTS,
    NDRS,
    NEW_RECIPIENTS,
    VOLUME_SPIKE,
    CompromiseSignals,
    compromise_findings,
)
from mailwarden.service.sender_activity import SenderActivityLookup, summarise
from mailwarden.store import Database
from mailwarden.store.sender_activity import CONTACT_DAYS, Activity, Ask, SenderActivity, SenderHistory, epoch_hour
from tests.unit.store.records import build_record

NOW = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
OWN = frozenset({"corp.example"})


def external(n: int, start: int = 0) -> list[str]:
    return [f"p{i}@else.example" for i in range(start, start + n)]


def codes(facts: SenderFacts) -> set[str]:
    return {f.code for f in compromise_findings(facts, CompromiseSignals(), COMPROMISE_WEIGHTS, "spam")}


def test_new_recipients_are_those_never_written_to_within_the_contact_window(db: Database) -> None:
    store = SenderActivity(db)
    assert store.note_sent("corp", "Bob@corp.example", NOW - timedelta(days=3), 3, external(3)) == 3
    assert store.note_sent("corp", "bob@corp.example", NOW, 4, ["P1@else.example", *external(3, start=5)]) == 3
    long_ago = NOW - timedelta(days=CONTACT_DAYS + 1)
    assert store.note_sent("corp", "ann@corp.example", long_ago, 1, ["p1@else.example"]) == 1
    assert store.note_sent("corp", "ann@corp.example", NOW, 1, ["p1@else.example"]) == 1  # forgotten: new again
    history = store.history("corp", "bob@corp.example", NOW, ["p2@else.example", "new@else.example"])
    assert history.known == {"p2@else.example"}
    assert history.hours[epoch_hour(NOW)] == (4, 3, 0)


def test_in_one_batch_a_contact_is_known_to_later_messages_of_its_own_sender_only(db: Database) -> None:
    store = SenderActivity(db)
    store.note_sent("corp", "bob@corp.example", NOW - timedelta(days=1), 1, ["p0@else.example"])
    batch = [
        Activity("corp", "bob@corp.example", NOW, 3, ("p0@else.example", "p1@else.example", "p2@else.example")),
        Activity("corp", "Bob@corp.example", NOW, 2, ("P2@else.example", "p3@else.example")),
        Activity("corp", "ann@corp.example", NOW, 2, ("p0@else.example", "p2@else.example")),
        Activity("other", "bob@corp.example", NOW, 1, ("p0@else.example",)),
    ]
    assert store.note(batch) == [2, 1, 2, 1]
    assert store.history("corp", "bob@corp.example", NOW, external(5)).known == set(external(4))


def test_an_hour_and_a_contact_already_on_record_add_up_and_move_on(db: Database) -> None:
    store = SenderActivity(db)
    store.note_sent("corp", "bob@corp.example", NOW - timedelta(days=CONTACT_DAYS - 1), 1, ["p0@else.example"])
    assert store.note_sent("corp", "bob@corp.example", NOW, 2, ["p1@else.example"]) == 1
    assert store.note_sent("corp", "bob@corp.example", NOW, 3, ["p0@else.example", "p1@else.example"]) == 0
    store.note_ndr("corp", "bob@corp.example", NOW, count=2)

    history = store.history("corp", "bob@corp.example", NOW + timedelta(days=2), ["p0@else.example"])

    assert history.hours[epoch_hour(NOW)] == (5, 1, 2)  # both messages and the reports, in one hour
    assert history.known == {"p0@else.example"}  # its contact moved to NOW: still within the window


def test_a_batch_of_asks_is_answered_per_sender_and_per_time_as_one_ask_each(db: Database) -> None:
    store = SenderActivity(db)
    store.note_sent("corp", "bob@corp.example", NOW - timedelta(days=20), 7, ["old@else.example"])
    store.note_sent("corp", "bob@corp.example", NOW - timedelta(days=3), 2, ["p0@else.example"])
    store.note_sent("corp", "bob@corp.example", NOW, 1, ["p1@else.example"])
    store.note_sent("corp", "ann@corp.example", NOW - timedelta(days=1), 4, ["p1@else.example"])
    store.note_sent("other", "bob@corp.example", NOW, 9, ["p2@else.example"])
    asks = [
        Ask("corp", "Bob@corp.example", NOW, ("P0@else.example", "p1@else.example", "p2@else.example")),
        Ask("corp", "bob@corp.example", NOW - timedelta(days=10), ("old@else.example", "p1@else.example")),
        Ask("corp", "ann@corp.example", NOW, ("p0@else.example", "p1@else.example")),
        Ask("other", "bob@corp.example", NOW, ("p2@else.example",)),
        Ask("corp", "nobody@corp.example", NOW, ()),
    ]

    answers = store.histories(asks)

    assert answers == [store.history(a.organisation, a.sender, a.at, a.external) for a in asks]
    bob_now, bob_before, ann, other, nobody = answers
    assert sorted(bob_now.hours.values()) == [(1, 1, 0), (2, 1, 0)] and bob_now.known == {
        "p0@else.example",
        "p1@else.example",
    }
    assert list(bob_before.hours.values()) == [(7, 1, 0)]  # its own fortnight, not the later hours
    assert bob_before.known == {"old@else.example", "p1@else.example"}  # a contact keeps its latest hour only
    assert list(ann.hours.values()) == [(4, 1, 0)] and ann.known == {"p1@else.example"}
    assert list(other.hours.values()) == [(9, 1, 0)] and other.known == {"p2@else.example"}
    assert nobody.hours == {} and nobody.known == frozenset() and store.histories([]) == []


async def test_the_outbound_messages_of_a_batch_are_looked_up_together(db: Database) -> None:
    lookup = SenderActivityLookup(db, lambda org: OWN)
    lookup.store.note_sent("corp", "bob@corp.example", NOW, 2, ["x@else.example"])
    calls: list[int] = []
    histories = lookup.store.histories

    def counted(asks: Sequence[Ask]) -> list[SenderHistory]:
        calls.append(len(asks))
        return histories(asks)

    lookup.store.histories = counted  # type: ignore[method-assign]

    bob, ann = await asyncio.gather(
        lookup.facts("corp", "bob@corp.example", ["x@else.example", "y@else.example"], OWN, NOW),
        lookup.facts("corp", "ann@corp.example", ["x@else.example"], OWN, NOW),
    )

    assert calls == [2]
    assert bob == SenderFacts(window_hours=2, recipients=4, new_external=2, ndrs=0, baseline=None)
    assert ann == SenderFacts(window_hours=2, recipients=1, new_external=1, ndrs=0, baseline=None)
    assert await lookup.facts("corp", "bob@corp.example", [], OWN, NOW) is not None and calls == [2, 1]


def test_asks_left_on_a_loop_that_stopped_hold_up_no_other_loop(db: Database) -> None:
    lookup = SenderActivityLookup(db, lambda org: OWN)
    stopped = asyncio.new_event_loop()
    left = stopped.create_task(lookup.facts("corp", "bob@corp.example", ["x@else.example"], OWN, NOW))
    stopped.call_soon(stopped.stop)
    stopped.run_forever()  # it asked, then its loop stopped before the ask was read

    async def ask() -> SenderFacts | None:
        return await asyncio.wait_for(lookup.facts("corp", "ann@corp.example", ["y@else.example"], OWN, NOW), 5)

    assert asyncio.run(ask()) == SenderFacts(window_hours=2, recipients=1, new_external=1, ndrs=0, baseline=None)
    left.cancel()
    stopped.run_until_complete(asyncio.gather(left, return_exceptions=True))
    stopped.close()


async def test_a_failed_look_up_costs_the_batch_its_signals_not_its_scan(db: Database) -> None:
    lookup = SenderActivityLookup(db, lambda org: OWN)
    db.close()  # the database went away
    lookup.store.histories = lambda asks: (_ for _ in ()).throw(OSError("database is away"))  # type: ignore[method-assign]

    answers = await asyncio.gather(
        *(lookup.facts("corp", f"u{i}@corp.example", ["x@else.example"], OWN, NOW) for i in range(3))
    )

    assert answers == [None, None, None]


def test_a_burst_to_strangers_after_a_quiet_fortnight_makes_both_signals(db: Database) -> None:
    store = SenderActivity(db)
    for day in range(1, 10):  # a quiet sender: five recipients a day, the same partners
        store.note_sent("corp", "bob@corp.example", NOW - timedelta(days=day), 5, external(5))
    history = store.history("corp", "bob@corp.example", NOW, external(60, start=100))
    facts = summarise(history, epoch_hour(NOW), 60, external(60, start=100))
    assert facts == SenderFacts(window_hours=2, recipients=60, new_external=60, ndrs=0, baseline=5)
    assert codes(facts) == {VOLUME_SPIKE, NEW_RECIPIENTS}
    usual = summarise(store.history("corp", "bob@corp.example", NOW, external(5)), epoch_hour(NOW), 5, external(5))
    assert usual.new_external == 0 and codes(usual) == set()


def test_without_two_days_of_history_there_is_no_baseline_and_no_volume_signal(db: Database) -> None:
    store = SenderActivity(db)
    store.note_sent("corp", "new@corp.example", NOW - timedelta(hours=30), 2, external(2))
    facts = summarise(store.history("corp", "new@corp.example", NOW, external(80)), epoch_hour(NOW), 80, external(80))
    assert facts.baseline is None and codes(facts) == set()  # a new account, or a new installation


def test_volume_is_judged_against_the_senders_own_busiest_hours() -> None:
    busy = SenderFacts(window_hours=2, recipients=200, new_external=0, ndrs=0, baseline=60)
    assert codes(busy) == set()  # 200 is less than four times its busiest 60
    assert codes(SenderFacts(2, recipients=241, new_external=0, ndrs=0, baseline=60)) == {VOLUME_SPIKE}
    assert codes(SenderFacts(2, recipients=49, new_external=0, ndrs=0, baseline=0)) == set()  # under volume_min
    assert codes(SenderFacts(2, recipients=0, new_external=0, ndrs=10, baseline=None)) == {NDRS}
    assert codes(SenderFacts(2, recipients=0, new_external=0, ndrs=9, baseline=None)) == set()


async def test_recorded_mail_adds_to_the_sender_and_bounces_to_the_address_they_came_back_to(db: Database) -> None:
    lookup = SenderActivityLookup(db, lambda org: OWN)
    sent = build_record(at=NOW, direction=Direction.OUTBOUND, sender="bob@corp.example",
                        recipients=("x@else.example", "colleague@corp.example"))  # fmt: skip
    bounce = build_record(at=NOW, direction=Direction.INBOUND, sender="", recipients=("bob@corp.example",))
    await lookup.recorded([sent, bounce, bounce])
    facts = await lookup.facts("corp", "bob@corp.example", ["x@else.example", "y@else.example"], OWN, NOW)
    assert facts == SenderFacts(window_hours=2, recipients=4, new_external=2, ndrs=2, baseline=None)


async def test_housekeeping_prunes_old_activity_and_old_limit_buckets(db: Database) -> None:
    from mailwarden.model.policy import Policy
    from mailwarden.service.outbound import OutboundGuard, OutboundHousekeeping
    from mailwarden.store.sender_activity import BASELINE_DAYS

    guard = OutboundGuard(db, lambda org: Policy(), lambda org: OWN)  # the database's counters
    now = datetime.now(UTC)
    old = now - timedelta(days=BASELINE_DAYS + 1)
    SenderActivity(db).note_sent("corp", "bob@corp.example", old, 1, [])
    SenderActivity(db).note_sent("corp", "bob@corp.example", now, 1, [])
    await guard.counter.add("corp", "bob@corp.example", external=1, internal=0, at=old)
    assert await OutboundHousekeeping(db, guard).prune() == 3  # the old hour, its minute and its day bucket
    assert list(SenderActivity(db).history("corp", "bob@corp.example", now, []).hours) == [epoch_hour(now)]
