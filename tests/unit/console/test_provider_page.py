"""The provider's verdict in the console: the report page, the message page, the trace filter, the dashboard
panel, in English and Japanese."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailwarden.i18n import catalogue
from mailwarden.model import Category
from tests.unit.api.conftest import PASSWORD, World, build_world
from tests.unit.api.test_provider import GMAIL_CLEAN, M365_PHISH, journal_copy

JA = catalogue("ja")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path)
    yield w
    w.client.close()
    w.rt.close()


def signed_in(world: World, name: str, language: str = "en") -> TestClient:
    client = TestClient(world.client.app, base_url="http://127.0.0.1", headers={"Accept-Language": language})
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    response = client.post("/login", data={"csrf_token": token.group(1), "name": name, "password": PASSWORD})
    assert response.status_code in (200, 303), response.text
    return client


def test_the_report_shows_the_matrix_and_each_missed_message_one_click_from_clawback(world: World) -> None:
    missed = journal_copy(world, "missed malware", Category.MALWARE, GMAIL_CLEAN, org="corp")
    journal_copy(world, "provider phish", Category.CLEAN, M365_PHISH, org="corp")
    client = signed_in(world, "ana")

    html = client.get("/reports/provider").text

    assert 'data-provider="clean"' in html
    assert re.search(r'<td class="num cell-missed" data-ours="malware">1</td>', html)
    assert f'href="/trace/{missed}#clawback"' in html
    assert "X-Gm-Spam:0 X-Gm-Phishy:0" in html
    assert "Provider passed, mailwarden flagged: 1" in html
    assert "agreement=provider_only" in html

    dashboard = client.get("/").text
    assert 'id="provider-panel"' in dashboard
    assert "Provider passed, mailwarden flagged: 1" in dashboard

    trace = client.get("/trace?agreement=provider_missed").text
    assert "missed malware" in trace and "provider phish" not in trace

    page = client.get(f"/trace/{missed}").text
    assert 'id="provider-verdict"' in page
    assert "Google Workspace" in page and "Provider passed, mailwarden flagged" in page
    assert 'id="clawback"' in page


def test_the_report_in_japanese_and_a_bad_period(world: World) -> None:
    journal_copy(world, "missed malware", Category.MALWARE, GMAIL_CLEAN, org="corp")
    client = signed_in(world, "ana", "ja")

    html = client.get("/reports/provider").text
    assert JA["provider.title"] in html
    assert JA["provider.missed_count"].format(count=1) in html
    assert JA["provider.cat.malware"] in html

    refused = client.get("/reports/provider?start=2026-02-30").text
    assert JA["provider.bad_days"].format(days=366) in refused


def test_an_analyst_of_another_organisation_sees_none_of_it_and_users_cannot_open_it(world: World) -> None:
    journal_copy(world, "missed malware", Category.MALWARE, GMAIL_CLEAN, org="corp")
    carl = signed_in(world, "carl")
    html = carl.get("/reports/provider").text
    assert "missed malware" not in html and 'id="provider-none"' in html
    assert carl.get("/reports/provider?org=corp").status_code == 403
    assert signed_in(world, "alice").get("/reports/provider").status_code == 403
