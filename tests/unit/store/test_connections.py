"""Connection statistics: refused connections counted per organisation, UTC day, IP and reason."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from mailwarden.store import Database
from mailwarden.store.connections import BlockReason, ConnectionDay, ConnectionStats

T0 = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
BLOCK = BlockReason.IP_BLOCK_LIST


def check_counting(stats: ConnectionStats) -> None:
    """The same expectations on every database (the PostgreSQL test runs them too)."""
    stats.count_blocked("acme", "198.51.100.7", BLOCK, T0)
    stats.count_blocked("acme", "198.51.100.7", BLOCK, T0 + timedelta(minutes=10))
    stats.count_blocked("acme", "198.51.100.7", BLOCK, T0 - timedelta(minutes=10))
    stats.count_blocked("acme", "2001:db8::1", BLOCK, T0, count=5)
    stats.count_blocked("acme", "198.51.100.7", BLOCK, T0 + timedelta(hours=1))  # next UTC day
    stats.count_blocked("globex", "198.51.100.7", BLOCK, T0)  # another tenant's counter
    # 01:00 at UTC+2 is 23:00 the day before in UTC
    stats.count_blocked("acme", "203.0.113.9", BLOCK, datetime(2026, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=2))))

    days = stats.daily("acme", date(2026, 3, 1))
    assert days == [
        ConnectionDay(date(2026, 3, 1), "2001:db8::1", BLOCK, 5, T0, T0),
        ConnectionDay(
            date(2026, 3, 1), "198.51.100.7", BLOCK, 3, T0 - timedelta(minutes=10), T0 + timedelta(minutes=10)
        ),
        ConnectionDay(
            date(2026, 3, 1),
            "203.0.113.9",
            BLOCK,
            1,
            datetime(2026, 3, 1, 23, 0, tzinfo=UTC),
            datetime(2026, 3, 1, 23, 0, tzinfo=UTC),
        ),
        ConnectionDay(date(2026, 3, 2), "198.51.100.7", BLOCK, 1, T0 + timedelta(hours=1), T0 + timedelta(hours=1)),
    ]
    assert [d.day for d in stats.daily("acme", date(2026, 3, 2))] == [date(2026, 3, 2)]
    assert [d.count for d in stats.daily("acme", date(2026, 3, 1), until=date(2026, 3, 1))] == [5, 3, 1]
    assert [d.count for d in stats.daily("globex", date(2026, 1, 1))] == [1]
    assert stats.daily("initech", date(2026, 1, 1)) == []


def check_concurrent_counting(stats: ConnectionStats, threads: int = 8, each: int = 25) -> None:
    def work() -> None:
        for _ in range(each):
            stats.count_blocked("race", "198.51.100.1", BLOCK, T0)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert [d.count for d in stats.daily("race", T0.date())] == [threads * each]


def test_counting_per_day_ip_and_organisation(db: Database) -> None:
    check_counting(ConnectionStats(db))


def test_concurrent_counting_loses_nothing(db: Database) -> None:
    check_concurrent_counting(ConnectionStats(db))


def test_naive_times_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="naive"):
        ConnectionStats(db).count_blocked("acme", "198.51.100.7", BLOCK, datetime(2026, 3, 1, 12, 0))


def test_refused_connections_over_a_period_by_day_reason_and_top_ips(db: Database) -> None:
    check_refused_over_a_period(ConnectionStats(db))


def check_refused_over_a_period(stats: ConnectionStats) -> None:
    """Refused connections summed per day and reason, and per IP, over a period (PostgreSQL runs it too)."""
    stats.count_blocked("acme", "198.51.100.7", BLOCK, T0, count=4)
    stats.count_blocked("acme", "198.51.100.7", BLOCK, T0 + timedelta(hours=1), count=2)  # 2 March
    stats.count_blocked("acme", "2001:db8::1", BLOCK, T0, count=5)
    stats.count_blocked("globex", "203.0.113.9", BLOCK, T0, count=7)
    stats.count_blocked("acme", "192.0.2.1", BLOCK, T0 + timedelta(days=5))  # outside the period
    first, last = date(2026, 3, 1), date(2026, 3, 2)

    assert stats.refused_by_day(first, last, "acme") == {(first, "ip_block_list"): 9, (last, "ip_block_list"): 2}
    assert stats.refused_by_day(first, last) == {(first, "ip_block_list"): 16, (last, "ip_block_list"): 2}
    assert stats.top_refused_ips(first, last, 2, "acme") == [
        ("198.51.100.7", "ip_block_list", 6),
        ("2001:db8::1", "ip_block_list", 5),
    ]
    assert stats.top_refused_ips(first, last, 1) == [("203.0.113.9", "ip_block_list", 7)]
    assert stats.refused_by_day(date(2026, 1, 1), date(2026, 1, 2)) == {}
