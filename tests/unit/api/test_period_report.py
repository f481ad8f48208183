"""The period report through the API: totals and tables as JSON, each table as CSV, bound organisations."""

from __future__ import annotations

import csv
import io

from mailwarden.store.connections import BlockReason, ConnectionStats

from .conftest import NOW, World

API = "/api/v1"


def test_the_period_report_counts_messages_and_refused_connections(world: World) -> None:
    ConnectionStats(world.rt.db).count_blocked("corp", "198.51.100.7", BlockReason.IP_BLOCK_LIST, NOW, count=3)
    ConnectionStats(world.rt.db).count_blocked("other", "203.0.113.9", BlockReason.IP_BLOCK_LIST, NOW)

    body = world.client.get(f"{API}/reports/period?days=2&organisation=corp", headers=world.as_("ana")).json()

    assert body["organisation"] == "corp" and body["messages"] == 4 and body["refused_connections"] == 3
    assert body["tables"]["refused_ips"] == {
        "columns": ["ip", "reason", "connections"],
        "rows": [["198.51.100.7", "ip_block_list", 3]],
    }
    totals = {(g, i): n for g, i, n in body["tables"]["totals"]["rows"]}
    assert totals[("action", "quarantine")] == 4 and totals[("category", "malware")] == 1
    assert set(body["tables"]) >= {"categories", "actions", "directions", "refused", "top_sender_domains"}

    everyone = world.client.get(f"{API}/reports/period?days=2", headers=world.as_("root")).json()
    assert everyone["organisation"] is None and everyone["messages"] == 5 and everyone["refused_connections"] == 4

    carl = world.client.get(f"{API}/reports/period?days=2", headers=world.as_("carl")).json()
    assert carl["organisation"] == "other" and carl["refused_connections"] == 1  # bound to its organisation
    assert world.client.get(f"{API}/reports/period?organisation=corp", headers=world.as_("carl")).status_code == 404
    assert world.client.get(f"{API}/reports/period", headers=world.as_("alice")).status_code == 403


def test_each_table_downloads_as_csv(world: World) -> None:
    # days=2: the world's messages are 1 to 30 minutes old, yesterday's just after midnight UTC
    response = world.client.get(
        f"{API}/reports/period/top_senders.csv?days=2&organisation=corp", headers=world.as_("ana")
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="report-corp-' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["sender", "messages"] and len(rows) > 1

    ja = world.client.get(f"{API}/reports/period/totals.csv?lang=ja", headers=world.as_("ana"))
    assert ja.content.startswith(b"\xef\xbb\xbf") and "区分,項目,件数" in ja.content.decode("utf-8-sig")
    assert world.client.get(f"{API}/reports/period/secrets.csv", headers=world.as_("ana")).status_code == 422


def test_a_bad_period_is_refused_naming_the_field(world: World) -> None:
    reversed_days = world.client.get(f"{API}/reports/period?start=2026-02-01&end=2026-01-01", headers=world.as_("ana"))
    assert reversed_days.status_code == 422 and reversed_days.json()["field"] == "start"
    both = world.client.get(f"{API}/reports/period?start=2026-01-01&days=3", headers=world.as_("ana"))
    assert both.status_code == 422 and both.json()["field"] == "days"
    assert world.client.get(f"{API}/reports/period?days=400", headers=world.as_("ana")).status_code == 422
