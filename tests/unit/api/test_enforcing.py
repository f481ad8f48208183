"""The API from monitor to enforce: the mode-switch preview, the per-domain switch (admin only, audited)
and policy replay (nothing saved)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailwarden.console import web_app
from mailwarden.model.accounts import Role, Scope
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.accounts import Accounts
from mailwarden.service.runtime import Runtime
from tests.unit.service.replay_helpers import QUARANTINE_INVOICES, REJECT_LOTTERY, document, mail, record, runtime

from .conftest import FAST_HASHER

API = "/api/v1"


@dataclass
class Setup:
    rt: Runtime
    client: TestClient
    ids: list[str]
    tokens: dict[str, str]

    def as_(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


@pytest.fixture
async def setup(tmp_path: Path) -> Iterator[Setup]:
    rt = runtime(tmp_path)
    rt.policies.import_document(parse_organisation_document(document(QUARANTINE_INVOICES)))
    rt.policies.import_document(parse_organisation_document({"name": "other", "domains": [{"name": "other.example"}]}))
    ids = await record(
        rt,
        tmp_path,
        [(mail("Invoice 1"), "alice@example.com"), (mail("Lottery"), "alice@example.com"), (mail("Lunch"), "x")],
    )
    accounts = Accounts(rt.db, hasher=FAST_HASHER)
    tokens = {}
    for name, role, org in (("root", Role.ADMIN, None), ("ana", Role.ANALYST, None), ("carl", Role.ANALYST, "other")):
        accounts.add_user(name, role=role, organisation=org, password="correct horse battery", actor="test")
        tokens[name] = accounts.create_token(name, name="t", actor="test")[1]
    tokens["root-read"] = accounts.create_token("root", name="ro", scopes={Scope.READ}, actor="test")[1]
    client = TestClient(web_app(rt, accounts=accounts))
    yield Setup(rt, client, ids, tokens)
    client.close()
    rt.close()


def test_the_preview_gives_counts_per_action_and_category_with_the_messages(setup: Setup) -> None:
    r = setup.client.get(f"{API}/organisations/acme/mode/preview?days=3", headers=setup.as_("ana"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["monitored"] == 3
    actions = {a["action"]: a for a in body["actions"]}
    assert set(actions) == {"quarantine", "junk", "reject", "drop"}
    assert (actions["quarantine"]["messages"], actions["quarantine"]["by_category"]) == (1, {"rule": 1})
    assert actions["quarantine"]["newest"][0]["message_id"] == setup.ids[0]
    domain = setup.client.get(
        f"{API}/organisations/acme/mode/preview?domain=example.net", headers=setup.as_("ana")
    ).json()
    assert (domain["domain"], domain["monitored"]) == ("example.net", 0)
    missing = setup.client.get(f"{API}/organisations/acme/mode/preview?domain=nope.example", headers=setup.as_("ana"))
    assert missing.status_code == 404
    # an analyst of another organisation sees none of it
    assert setup.client.get(f"{API}/organisations/acme/mode/preview", headers=setup.as_("carl")).status_code == 404


def test_only_an_admin_switches_a_domain_and_the_switch_is_audited(setup: Setup) -> None:
    url = f"{API}/organisations/acme/domains/example.com/mode"
    assert setup.client.put(url, json={"mode": "gateway"}, headers=setup.as_("ana")).status_code == 403
    assert setup.client.put(url, json={"mode": "gateway"}, headers=setup.as_("root-read")).status_code == 403
    refused = setup.client.put(url, json={"mode": "gateway"}, headers=setup.as_("root"))
    assert (refused.status_code, refused.json()["field"]) == (422, "mode")
    assert "needs a next_hop" in refused.json()["message"]
    r = setup.client.put(url, json={"mode": "gateway", "next_hop": "10.0.0.25"}, headers=setup.as_("root"))
    assert r.status_code == 200, r.text
    assert (r.json()["mode"], r.json()["next_hop"]) == ("gateway", "10.0.0.25")
    domains = setup.client.get(f"{API}/organisations/acme/domains", headers=setup.as_("ana")).json()
    assert {d["name"]: d["mode"] for d in domains} == {"example.com": "gateway", "example.net": "journal"}
    audit = setup.client.get(f"{API}/audit", headers=setup.as_("root")).json()["items"]
    assert audit[0]["action"] == "domain.set_mode" and audit[0]["actor"] == "root"
    assert setup.client.put(f"{API}/organisations/acme/domains/nope.example/mode", json={"mode": "journal"},
                            headers=setup.as_("root")).status_code == 404  # fmt: skip


def test_a_replay_answers_the_diff_and_saves_nothing(setup: Setup) -> None:
    version = setup.rt.policies.policy_version("acme")
    r = setup.client.post(
        f"{API}/organisations/acme/policy/replay", json={"candidate": [REJECT_LOTTERY]}, headers=setup.as_("ana")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["in_window"], body["scanned"], body["capped"]) == (3, 3, False)
    changed = {c["message_id"]: c for c in body["changes"]}
    assert set(changed) == {setup.ids[0], setup.ids[1]}
    assert changed[setup.ids[1]]["after"] == {"category": "rule", "action": "reject", "rules": ["Refuse lottery"]}
    assert changed[setup.ids[0]]["before"]["action"] == "quarantine"
    assert setup.rt.policies.policy_version("acme") == version
    bad = setup.client.post(
        f"{API}/organisations/acme/policy/replay",
        json={"candidate": {"spam": {"bcl_threshold": 42}}},
        headers=setup.as_("ana"),
    )
    assert bad.status_code == 422 and bad.json()["field"] == "policy.spam.bcl_threshold"
    capped = setup.client.post(
        f"{API}/organisations/acme/policy/replay",
        json={"candidate": [REJECT_LOTTERY], "limit": 1},
        headers=setup.as_("ana"),
    ).json()
    assert (capped["scanned"], capped["capped"]) == (1, True)
