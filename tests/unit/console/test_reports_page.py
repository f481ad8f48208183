"""The console's report page: a chosen period with totals and tables, refused connections, CSV downloads,
in English and Japanese."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailwarden.store.connections import BlockReason, ConnectionStats
from tests.unit.api.conftest import NOW, World, build_world
from tests.unit.console.test_provider_page import signed_in


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path)
    ConnectionStats(w.rt.db).count_blocked("corp", "198.51.100.7", BlockReason.IP_BLOCK_LIST, NOW, count=3)
    yield w
    w.client.close()
    w.rt.close()


def test_the_report_shows_the_period_totals_and_refused_connections(world: World) -> None:
    client = signed_in(world, "ana")
    # the world's messages are 1 to 30 minutes old: just after midnight UTC the oldest are yesterday's
    first, day = (NOW - timedelta(minutes=30)).date().isoformat(), NOW.date().isoformat()

    html = client.get(f"/reports?start={first}&end={day}&org=corp").text

    assert f"{first} – {day} (UTC) · messages: 4 · connections refused: 3" in html
    assert 'id="report-refused_ips"' in html and "198.51.100.7" in html and "IP block list" in html
    assert ">quarantine</th>" in html and ">high-confidence phish</th>" not in html
    assert f'href="/reports/top_senders.csv?start={first}&amp;end={day}&amp;org=corp"' in html
    assert 'href="/reports"' in client.get("/").text  # in the navigation

    last_week = client.get("/reports?days=7&start=2020-01-01").text
    assert "messages: 5 ·" in last_week  # every organisation; the last N days win over a date left in the form
    assert 'name="days" type="number" min="1" max="366" value="7"' in last_week
    assert 'name="start" type="date" value=""' in last_week

    bad = client.get("/reports?start=2026-02-01&end=2026-01-01").text
    assert "The period needs valid dates" in bad


def test_a_table_downloads_as_csv_in_the_users_language(world: World) -> None:
    client = signed_in(world, "ana", language="ja")
    day = NOW.date().isoformat()

    response = client.get(f"/reports/refused_ips.csv?start={day}&end={day}&org=corp")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert rows == [["IP アドレス", "理由", "拒否した接続"], ["198.51.100.7", "IP ブロック リスト", "3"]]
    assert "拒否した接続: 3 件" in client.get(f"/reports?start={day}&end={day}").text
    assert client.get("/reports/nothing.csv").status_code == 404


def test_a_bound_analyst_sees_only_their_organisation_and_users_see_no_report(world: World) -> None:
    carl = signed_in(world, "carl")
    assert "messages: 1 · connections refused: 0" in carl.get("/reports?days=2").text
    assert carl.get("/reports?org=corp").status_code == 403
    alice = signed_in(world, "alice")
    assert alice.get("/reports", follow_redirects=False).status_code in (302, 303, 403)
    assert alice.get("/reports/totals.csv", follow_redirects=False).status_code in (302, 303, 403)
