"""The report over a chosen period: its tables and totals, and the CSV a spreadsheet opens safely."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from mailwarden.model import Action, Category, Mode
from mailwarden.service.period_report import (
    build_report,
    labels_for,
    period,
    plain_labels,
    safe_cell,
    to_csv,
)
from mailwarden.store import Database, History
from mailwarden.store.connections import BlockReason, ConnectionStats
from tests.unit.store.records import T0, build_record


def read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def seed(db: Database) -> None:
    history = History(db)
    history.record(build_record(category=Category.SPAM, sender="=HYPERLINK(1)@evil.example", action=Action.JUNK))
    history.record(build_record(minutes=1, category=Category.MALWARE, sender="x@bad.example", action=Action.QUARANTINE))
    history.record(build_record(minutes=2, category=Category.PHISH, sender="p@bad.example", mode=Mode.MONITOR))
    history.record(build_record(minutes=60 * 24, category=Category.CLEAN))  # the next day
    history.record(build_record(minutes=-60 * 24 * 3, category=Category.SPAM))  # before the period
    ConnectionStats(db).count_blocked("corp", "198.51.100.7", BlockReason.IP_BLOCK_LIST, T0, count=3)


def test_the_report_totals_and_per_day_tables_cover_exactly_the_period(db: Database) -> None:
    seed(db)
    today, tomorrow = T0.date(), T0.date() + timedelta(days=1)

    report = build_report(db, today, tomorrow, organisation="corp")

    assert report.messages == 4 and report.refused == 3
    categories = report.tables["categories"]
    assert categories.columns == ["day", "total", "clean", "spam", "phish", "malware"]
    assert categories.rows == [[today.isoformat(), 3, 0, 1, 1, 1], [tomorrow.isoformat(), 1, 1, 0, 0, 0]]
    actions = report.tables["actions"]
    assert actions.columns == ["day", "total", "deliver", "junk", "quarantine", "would_have:deliver"]
    assert report.tables["refused"].rows == [[today.isoformat(), 3, 3], [tomorrow.isoformat(), 0, 0]]
    totals = {(group, item): n for group, item, n in report.tables["totals"].rows}
    assert totals[("messages", "messages")] == 4 and totals[("refused", "connections")] == 3
    assert totals[("category", "spam")] == 1 and totals[("action", "would_have:deliver")] == 1
    assert totals[("direction", "inbound")] == 4 and totals[("refused", "ip_block_list")] == 3
    assert report.tables["top_sender_domains"].rows == [["bad.example", 2], ["evil.example", 1]]
    assert report.tables["refused_ips"].rows == [["198.51.100.7", "ip_block_list", 3]]
    assert build_report(db, today, tomorrow, organisation="other").messages == 0


def test_csv_defuses_formulas_and_keeps_japanese_readable(db: Database) -> None:
    seed(db)
    report = build_report(db, T0.date(), T0.date(), organisation="corp")

    senders = read_csv(to_csv(report.tables["top_senders"], labels_for("en")))
    assert senders[0] == ["Sender", "Messages"]
    assert ["'=hyperlink(1)@evil.example", "1"] in senders  # a spreadsheet shows it as text, never runs it

    totals = read_csv(to_csv(report.tables["totals"], labels_for("ja")))
    assert totals[0] == ["区分", "項目", "件数"]
    assert ["判定", "マルウェア", "1"] in totals
    assert ["アクション", "配信 (監視モード: 実行予定)", "1"] in totals
    assert ["拒否した接続", "IP ブロック リスト", "3"] in totals

    actions = read_csv(to_csv(report.tables["actions"], plain_labels))
    assert actions == [
        ["day", "total", "junk", "quarantine", "would_have:deliver"],
        [T0.date().isoformat(), "3", "1", "1", "1"],
    ]
    assert to_csv(report.tables["actions"], plain_labels).count(b"\r\n") == 2


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1+cmd", "@SUM(A1)", "\tx", "\rx"])
def test_every_formula_start_is_prefixed(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell
    assert safe_cell(-3) == -3 and safe_cell("a=b") == "a=b"


def test_the_period_is_chosen_by_dates_or_last_days_and_bounded() -> None:
    today = date(2026, 12, 7)
    assert period(None, None, None, today) == (date(2026, 11, 24), today)
    assert period(None, None, 7, today) == (date(2026, 12, 1), today)
    assert period(date(2026, 1, 1), date(2026, 1, 31), None, today) == (date(2026, 1, 1), date(2026, 1, 31))
    with pytest.raises(ValueError, match="after end"):
        period(date(2026, 2, 1), date(2026, 1, 1), None, today)
    with pytest.raises(ValueError, match="at most 366"):
        period(date(2025, 1, 1), date(2026, 12, 1), None, today)
    with pytest.raises(ValueError):
        period(None, None, 0, today)
