"""The console from monitor to enforce: the mode-switch preview with its counts and links, the per-domain
switch (admins only), and policy replay's diff before saving."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mailwarden.console import mount_console
from mailwarden.model.accounts import Role
from mailwarden.model.org import ConnectionMode
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.accounts import Accounts
from mailwarden.service.runtime import Runtime
from tests.unit.service.replay_helpers import QUARANTINE_INVOICES, REJECT_LOTTERY, document, mail, record, runtime

PASSWORD = "a long test password"


@dataclass
class Setup:
    rt: Runtime
    app: FastAPI
    ids: list[str]

    def signed_in(self, name: str, language: str = "en") -> TestClient:
        client = TestClient(self.app, base_url="http://127.0.0.1", headers={"Accept-Language": language})
        token = csrf_of(client.get("/login").text)
        assert client.post("/login", data={"csrf_token": token, "name": name, "password": PASSWORD}).status_code == 200
        return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    rt = runtime(tmp_path)
    rt.policies.import_document(parse_organisation_document(document(QUARANTINE_INVOICES)))
    ids = await record(
        rt,
        tmp_path,
        [(mail("Invoice 5"), "alice@example.com"), (mail("Lottery"), "alice@example.com"), (mail("Lunch"), "x")],
    )
    accounts = Accounts(rt.db, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    accounts.add_user("admin", role=Role.ADMIN, password=PASSWORD, actor="test")
    accounts.add_user("analyst", role=Role.ANALYST, password=PASSWORD, actor="test")
    app = FastAPI()
    app.state.accounts = accounts
    mount_console(app, rt)
    yield Setup(rt, app, ids)
    rt.close()


def test_the_preview_shows_what_enforcing_would_have_done_with_links_then_switches(setup: Setup) -> None:
    admin = setup.signed_in("admin")
    domains = admin.get("/domains").text
    assert 'href="/domains/preview?org=acme"' in domains
    page = admin.get("/domains/preview?org=acme&days=7").text
    assert "3 messages were recorded in monitor mode in the last 7 days" in page
    row = re.search(r'<tr data-action="quarantine">.*?</tr>', page, re.S)
    assert row and '<td class="count">1</td>' in row.group(0) and "rule: 1" in row.group(0)
    assert f'href="/trace/{setup.ids[0]}"' in row.group(0) and "Invoice 5" in row.group(0)
    assert "/trace?action=quarantine&amp;start=" in row.group(0)
    admin.post("/domains/mode", data={"csrf_token": csrf_of(page), "org": "acme", "monitor_only": "false"})
    assert setup.rt.policies.get_organisation("acme").monitor_only is False


def test_a_domain_is_switched_from_its_preview_and_a_missing_next_hop_is_shown(setup: Setup) -> None:
    admin = setup.signed_in("admin")
    page = admin.get("/domains/preview?org=acme&domain=example.net").text
    assert "0 messages were recorded" in page
    form = {"csrf_token": csrf_of(page), "org": "acme", "domain": "example.net", "mode": "gateway"}
    refused = admin.post("/domains/domain-mode", data=form)
    assert refused.status_code == 422 and "needs a next_hop" in refused.text
    admin.post("/domains/domain-mode", data={**form, "next_hop": "10.0.0.25"})
    assert setup.rt.policies.get_organisation("acme").domain("example.net").mode is ConnectionMode.GATEWAY  # type: ignore[union-attr]
    assert "domain.set_mode" in admin.get("/audit").text
    analyst = setup.signed_in("analyst")
    seen = analyst.get("/domains/preview?org=acme&domain=example.com").text
    assert "Switch the domain" not in seen  # analysts read the preview, they do not switch
    form = {"csrf_token": csrf_of(seen), "org": "acme", "domain": "example.com", "mode": "journal"}
    assert analyst.post("/domains/domain-mode", data=form).status_code == 403


def test_replay_shows_the_diff_before_saving_and_saves_only_when_asked(setup: Setup) -> None:
    admin = setup.signed_in("admin")
    page = admin.get("/policy/replay?org=acme").text
    assert "Hold invoices" in page  # the current policy, to edit
    candidate = yaml.safe_dump({"rules": [REJECT_LOTTERY]})
    form = {"csrf_token": csrf_of(page), "document": candidate, "days": "7", "limit": "100", "version": "1"}
    shown = admin.post("/policy/replay?org=acme", data={**form, "intent": "replay"}).text
    assert "3 of 3 kept messages replayed; 2 would change." in shown
    assert f'href="/trace/{setup.ids[1]}"' in shown and "rule / reject" in shown
    assert "quarantine → deliver: 1" in shown
    assert setup.rt.policies.get_policy("acme").rules[0].name == "Hold invoices"  # nothing saved yet

    bad = admin.post(
        "/policy/replay?org=acme", data={**form, "document": "spam: {bcl_threshold: 42}", "intent": "replay"}
    )
    assert bad.status_code == 422 and "spam.bcl_threshold" in bad.text

    stale = admin.post("/policy/replay?org=acme", data={**form, "version": "0", "intent": "save"})
    assert "changed by someone else" in stale.text
    assert admin.post("/policy/replay?org=acme", data={**form, "intent": "save"}).status_code == 200
    assert [r.name for r in setup.rt.policies.get_policy("acme").rules] == ["Refuse lottery"]


def test_an_analyst_replays_but_cannot_save_and_the_page_speaks_japanese(setup: Setup) -> None:
    analyst = setup.signed_in("analyst", language="ja")
    page = analyst.get("/policy/replay?org=acme").text
    assert "差分を表示" in page and "このポリシーを保存" not in page
    form = {"csrf_token": csrf_of(page), "document": yaml.safe_dump([REJECT_LOTTERY]), "version": "1"}
    shown = analyst.post("/policy/replay?org=acme", data={**form, "intent": "replay"}).text
    assert "3 件を再生しました。2 件が変わります。" in shown
    assert analyst.post("/policy/replay?org=acme", data={**form, "intent": "save"}).status_code == 403
    assert "適用モードにしていた場合の結果" in analyst.get("/domains/preview?org=acme").text
