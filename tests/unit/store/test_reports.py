"""The report queries on SQLite (and, through `check_reports`, on PostgreSQL): UTC days, categories,
top senders and recipients, modes and DLP hits, all bounded by the window."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from mailwarden.model import Action, Category, Direction, Mode
from mailwarden.store import History
from mailwarden.store.reports import SPAM_CATEGORIES, Reports, day_window

from .records import T0, MakeRecord

CARD = {"type": "credit_card", "count": 2, "confidence": "high"}
IBAN = {"type": "iban", "count": 1, "confidence": "medium"}


def seed(history: History, make_record: MakeRecord) -> None:
    def add(minutes: float, category: Category, **kw: object) -> None:
        dlp = kw.pop("dlp", ())
        rec = make_record(minutes=minutes, category=category, **kw)
        history.record(replace(rec, verdict=replace(rec.verdict, dlp_matches=dlp)))

    add(-13 * 60 - 1, Category.CLEAN)  # T0 is 12:00 UTC: the day before, 23:59
    add(0, Category.SPAM, sender="s@spam.example")
    add(1, Category.SPAM, sender="s@spam.example", recipients=("carol@corp.example",))
    add(2, Category.MALWARE, sender="", direction=Direction.OUTBOUND)
    add(3, Category.RULE, dlp=(CARD, IBAN))
    add(4, Category.CLEAN, dlp=(CARD,), organisation="other")
    add(24 * 60 * 3, Category.CLEAN)  # three days later: outside a window ending today


def check_reports(history: History) -> None:
    reports = Reports(history.db)
    today, yesterday = T0.date(), T0.date() - timedelta(days=1)
    window = day_window(yesterday, today)
    assert reports.by_day(window) == {
        (yesterday, "clean"): 1,
        (today, "spam"): 2,
        (today, "malware"): 1,
        (today, "rule"): 1,
        (today, "clean"): 1,
    }
    corp = day_window(yesterday, today, "corp")
    assert sum(reports.by_day(corp).values()) == 5
    assert reports.top_senders(window, SPAM_CATEGORIES, 5) == [("s@spam.example", 2)]
    assert reports.top_senders(window, (Category.MALWARE,), 5) == [("<>", 1)]
    assert reports.top_recipients(window, 1) == [("bob@corp.example", 5)]
    assert reports.top_recipients(window, 5, direction=Direction.OUTBOUND) == [("bob@corp.example", 1)]
    assert reports.by_mode(window) == {"monitor": 0, "enforce": 6}
    assert reports.by_applied(window) == {True: 6}
    assert reports.dlp_messages_by_day(window) == {today: 2}
    assert reports.dlp_hits_by_type(corp, messages=10) == {"credit_card": 1, "iban": 1}
    assert sum(reports.by_day(day_window(today)).values()) == 6  # open-ended: to now
    assert reports.by_day(day_window(date(2020, 1, 1), date(2020, 1, 2))) == {}


def test_report_queries_on_sqlite(history: History, make_record: MakeRecord) -> None:
    seed(history, make_record)
    check_reports(history)


def test_period_aggregates_by_action_direction_and_threat_senders(history: History, make_record: MakeRecord) -> None:
    check_period_aggregates(history, make_record)


def check_period_aggregates(history: History, make_record: MakeRecord) -> None:
    """Per-day counts by action and direction, threat senders' domains and recipients (PostgreSQL too)."""

    def add(minutes: float, category: Category, **kw: object) -> None:
        history.record(make_record(minutes=minutes, category=category, **kw))

    add(0, Category.SPAM, sender="a@spam.example", action=Action.JUNK)
    add(1, Category.PHISH, sender="b@spam.example", action=Action.QUARANTINE, mode=Mode.MONITOR)
    add(2, Category.MALWARE, sender="c@bad.example", action=Action.QUARANTINE, recipients=("carol@corp.example",))
    add(3, Category.CLEAN, sender="d@fine.example", direction=Direction.OUTBOUND)
    add(24 * 60, Category.SPAM, sender="e@spam.example", action=Action.JUNK)  # the next day
    reports = Reports(history.db)
    today, tomorrow = T0.date(), T0.date() + timedelta(days=1)
    window = day_window(today, tomorrow)
    threats = (*SPAM_CATEGORIES, Category.MALWARE)

    assert reports.by_day_of(window, "action") == {
        (today, "junk"): 1,
        (today, "would_have:quarantine"): 1,  # recorded in monitor mode, not applied
        (today, "quarantine"): 1,
        (today, "deliver"): 1,
        (tomorrow, "junk"): 1,
    }
    assert reports.by_day_of(window, "direction") == {
        (today, "inbound"): 3,
        (today, "outbound"): 1,
        (tomorrow, "inbound"): 1,
    }
    assert reports.top_sender_domains(window, threats, 5) == [("spam.example", 3), ("bad.example", 1)]
    assert reports.top_recipients(window, 5, categories=threats) == [("bob@corp.example", 3), ("carol@corp.example", 1)]
    assert reports.top_sender_domains(day_window(tomorrow), threats, 5) == [("spam.example", 1)]
