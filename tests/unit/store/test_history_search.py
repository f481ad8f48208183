"""Every history search filter, their combination and paging, on a small known data set."""

from __future__ import annotations

import pytest

from mailwarden.model import Category, Direction
from mailwarden.store import History, HistoryQuery

from .search_cases import CASES, DATASET, names


@pytest.fixture
def seeded(history: History) -> History:
    for rec in DATASET.values():
        history.record(rec)
    return history


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[str(q) for q, _ in CASES])
def test_search_filter(seeded: History, query: dict[str, object], expected: list[str]) -> None:
    assert names(seeded, **query) == expected


def test_summaries_carry_what_the_result_list_shows(seeded: History) -> None:
    (item,) = seeded.search(HistoryQuery(recipient="ap@vendor.example")).items
    assert item.recipients == ["billing@vendor.example", "ap@vendor.example"]
    assert (item.sender, item.subject, item.direction, item.category) == (
        "bob@corp.example",
        "Re: Your invoice 2026-11",
        Direction.OUTBOUND,
        Category.CLEAN,
    )


def test_paging_with_cursor_visits_every_message_once(seeded: History) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = seeded.search(HistoryQuery(limit=3, cursor=cursor))
        seen.extend(item.id for item in page.items)
        pages += 1
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.items[-1].id
        cursor = page.next_cursor
    assert pages == 3
    assert seen == sorted((rec.id for rec in DATASET.values()), reverse=True)


def test_last_full_page_has_no_cursor(seeded: History) -> None:
    page = seeded.search(HistoryQuery(category=Category.SPAM, limit=2))
    assert len(page.items) == 2 and page.next_cursor is None


def test_cursor_combines_with_filters(seeded: History) -> None:
    first = seeded.search(HistoryQuery(subject="invoice", limit=2))
    assert first.next_cursor is not None
    second = seeded.search(HistoryQuery(subject="invoice", limit=2, cursor=first.next_cursor.lower()))
    assert [i.id for i in second.items] == [DATASET["invoice"].id] and second.next_cursor is None
