"""The report over a chosen period: totals and per-day tables of message history and refused connections.

One use case for the console's report page, the API (`GET /reports/period`, its CSV tables) and the
scheduled report e-mails. Days are UTC days. Messages are counted by verdict category, by action (an
action only recorded, as in monitor mode, is its `would_have:` twin) and by direction; the top senders,
recipients and sender domains are those of spam, phish and malware; refused connections come from the
connection filter's counters (`store/connections.py`), since a refused connection leaves no message.

CSV: UTF-8 with a byte-order mark (Excel then reads Japanese correctly; other readers skip it), CRLF
lines, and a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with `'`
so a spreadsheet never runs it as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from mailwarden.i18n import DEFAULT_LANGUAGE, catalogue, words
from mailwarden.model import Category
from mailwarden.store.connections import ConnectionStats
from mailwarden.store.db import Database
from mailwarden.store.reports import SPAM_CATEGORIES, Reports, day_window

MAX_DAYS = 366
TOP = 10
THREATS = (*SPAM_CATEGORIES, Category.MALWARE)


class ReportTable(StrEnum):
    """The report's tables, in the order shown."""

    TOTALS = "totals"
    CATEGORIES = "categories"
    ACTIONS = "actions"
    DIRECTIONS = "directions"
    REFUSED = "refused"
    TOP_SENDERS = "top_senders"
    TOP_RECIPIENTS = "top_recipients"
    TOP_SENDER_DOMAINS = "top_sender_domains"
    REFUSED_IPS = "refused_ips"


TABLES = tuple(t.value for t in ReportTable)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int
Labels = Callable[[str], str]  # a column name or value (`category.spam`, `col.day`) → the words shown


@dataclass
class Table:
    """One table of the report: column names (keys, see `labels_for`) and rows."""

    name: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)


@dataclass
class PeriodReport:
    start: date
    end: date
    organisation: str | None
    messages: int
    refused: int
    tables: dict[str, Table]


def period(start: date | None, end: date | None, days: int | None, today: date) -> tuple[date, date]:
    """The chosen UTC days: `start`–`end`, or the last `days` ending `end` (default today); the last 14
    when nothing is chosen. ValueError for a range that is reversed or longer than MAX_DAYS."""
    end = end or today
    if start is None:
        start = end - timedelta(days=(days or 14) - 1)
    if days is not None and days < 1:
        raise ValueError("days: at least 1")
    if start > end:
        raise ValueError("start: is after end")
    if (end - start).days >= MAX_DAYS:
        raise ValueError(f"start: a report covers at most {MAX_DAYS} days")
    return start, end


def build_report(
    db: Database, start: date, end: date, *, organisation: str | None = None, top: int = TOP
) -> PeriodReport:
    """Every table of the report over the UTC days `start`–`end` (inclusive)."""
    reports, connections = Reports(db), ConnectionStats(db)
    window = day_window(start, end, organisation)
    day_list = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    tables: dict[str, Table] = {}
    sums: list[list[Cell]] = []  # the totals table's rows after its headline
    messages = 0
    for dimension, name in (("category", "categories"), ("action", "actions"), ("direction", "directions")):
        counts = reports.by_day_of(window, dimension)
        tables[name] = _daily(name, day_list, counts)
        sums += _sums(dimension, counts)
        if dimension == "category":
            messages = sum(counts.values())
    refused_counts = connections.refused_by_day(start, end, organisation)
    tables["refused"] = _daily("refused", day_list, refused_counts)
    sums += _sums("refused", refused_counts)
    refused = sum(refused_counts.values())
    headline: list[list[Cell]] = [["messages", "messages", messages], ["refused", "connections", refused]]
    tables["totals"] = Table("totals", ["group", "item", "count"], headline + sums)
    tables["top_senders"] = Table(
        "top_senders", ["sender", "messages"], _rows(reports.top_senders(window, THREATS, top))
    )
    recipients = reports.top_recipients(window, top, categories=THREATS)
    tables["top_recipients"] = Table("top_recipients", ["recipient", "messages"], _rows(recipients))
    domains = reports.top_sender_domains(window, THREATS, top)
    tables["top_sender_domains"] = Table("top_sender_domains", ["domain", "messages"], _rows(domains))
    ips = connections.top_refused_ips(start, end, top, organisation)
    tables["refused_ips"] = Table("refused_ips", ["ip", "reason", "connections"], [[ip, r, n] for ip, r, n in ips])
    return PeriodReport(start, end, organisation, messages, refused, {name: tables[name] for name in TABLES})


def _sums(group: str, counts: dict[tuple[date, str], int]) -> list[list[Cell]]:
    """The period's sum per value of one per-day count, as totals rows (group, value, count)."""
    per_value: dict[str, int] = {}
    for (_, value), n in counts.items():
        per_value[value] = per_value.get(value, 0) + n
    return [[group, value, per_value[value]] for value in sorted(per_value, key=_order)]


def _daily(name: str, day_list: Sequence[date], counts: dict[tuple[date, str], int]) -> Table:
    """A per-day table: day, total, then one column per value seen (in a stable order)."""
    values = sorted({value for _, value in counts}, key=_order)
    table = Table(name, ["day", "total", *values])
    for day in day_list:
        row = [counts.get((day, value), 0) for value in values]
        table.rows.append([day.isoformat(), sum(row), *row])
    return table


def _order(value: str) -> tuple[int, str]:
    """Categories in their enum order, then the rest (actions, would-have actions) by name."""
    known = [c.value for c in Category]
    return (known.index(value), "") if value in known else (len(known), value)


def _rows(pairs: list[tuple[str, int]]) -> list[list[Cell]]:
    return [[name, n] for name, n in pairs]


def header(table: Table, labels: Labels) -> list[str]:
    """The table's column headings in words (a would-have action column reads as such)."""
    return [column_label(table, c, labels) for c in table.columns]


def column_label(table: Table, column: str, labels: Labels) -> str:
    if column in ("day", "total") or table.name not in ("categories", "actions", "directions", "refused"):
        return labels(f"col.{column}")
    return value_label(table.name, column, labels)


def value_label(table: str, value: str, labels: Labels) -> str:
    """A category, action, direction or reason in words; `would_have:quarantine` → "quarantine (would have)"."""
    kind = {"categories": "category", "actions": "action", "directions": "direction", "refused": "reason"}[table]
    if value.startswith("would_have:"):
        return labels("would_have").format(action=labels(f"action.{value.removeprefix('would_have:')}"))
    return labels(f"{kind}.{value}")


def cells(table: Table, row: Sequence[Cell], labels: Labels) -> list[Cell]:
    """A row with its coded values (group, category, reason) in words."""
    if table.name == "totals":
        group, item, count = row
        kind = {"category": "categories", "action": "actions", "direction": "directions", "refused": "refused"}
        if item in ("messages", "connections"):
            item_words = labels(f"col.{item}")
        else:
            item_words = value_label(kind[str(group)], str(item), labels)
        return [labels(f"group.{group}"), item_words, count]
    if table.name == "refused_ips":
        ip, reason, count = row
        return [ip, labels(f"reason.{reason}"), count]
    return list(row)


def to_csv(table: Table, labels: Labels) -> bytes:
    """The table as CSV: UTF-8 with a BOM, CRLF lines, the heading row first, formulas defused."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(c) for c in header(table, labels)])
    for row in table.rows:
        writer.writerow([safe_cell(c) for c in cells(table, row, labels)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def safe_cell(value: Cell) -> Cell:
    """A text cell a spreadsheet would take for a formula gets a leading `'`; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def labels_for(language: str) -> Labels:
    """The report's words in `language` (English for an unknown one), the catalogue's `reports.<key>`
    (mailwarden.i18n); a key without words is itself."""

    def label(key: str) -> str:
        full = f"reports.{key}"
        return words(full, language) if full in catalogue(DEFAULT_LANGUAGE) else key

    return label


def plain_labels(key: str) -> str:
    """The API's CSV headings and values: the stable keys themselves (`spam`, `would_have:quarantine`)."""
    if key == "would_have":
        return "would_have:{action}"
    return key.split(".", 1)[1] if "." in key else key


__all__ = [
    "MAX_DAYS",
    "TABLES",
    "PeriodReport",
    "ReportTable",
    "Table",
    "build_report",
    "cells",
    "header",
    "labels_for",
    "period",
    "plain_labels",
    "safe_cell",
    "to_csv",
]
