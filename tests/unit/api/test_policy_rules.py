"""Policy, rules and lists through the API: validation names the field, nothing is half-applied, changes are audited."""

from __future__ import annotations

import json

from tests.factories import build_message

from .conftest import World

API = "/api/v1"
RULE = {"name": "Block invoices", "conditions": {"subject_contains": ["invoice"]}, "actions": {"quarantine": True}}


def test_an_invalid_policy_is_a_422_naming_the_field_and_nothing_changes(world: World) -> None:
    root = world.as_("root")
    got = world.client.get(f"{API}/organisations/corp/policy", headers=root)
    doc, root = got.json(), {**root, "If-Match": got.headers["ETag"]}
    before = doc["version"]
    bad = {**doc["policy"], "spam": {**doc["policy"]["spam"], "bcl_threshold": 42}}
    r = world.client.put(f"{API}/organisations/corp/policy", json=bad, headers=root)
    assert r.status_code == 422
    assert r.json()["field"] == "spam.bcl_threshold"
    assert world.rt.policies.policy_version("corp") == before
    good = {**doc["policy"], "spam": {**doc["policy"]["spam"], "bcl_threshold": 5}}
    r = world.client.put(f"{API}/organisations/corp/policy", json=good, headers=root)
    assert r.status_code == 200 and r.json()["version"] == before + 1
    assert world.rt.policies.get_policy("corp").spam.bcl_threshold == 5
    entry = world.client.get(f"{API}/audit", headers=root).json()["items"][0]
    assert entry["actor"] == "root" and entry["object"] == "organisation:corp"
    assert entry["before"]["policy"]["spam"]["bcl_threshold"] == 7
    assert entry["after"]["policy"]["spam"]["bcl_threshold"] == 5


def test_rules_crud_reorder_and_test_against_an_uploaded_message(world: World) -> None:
    root = world.as_("root")
    base = f"{API}/organisations/corp/rules"
    assert world.client.post(base, json=RULE, headers=root).status_code == 201
    assert world.client.post(base, json=RULE, headers=root).status_code == 409
    second = {**RULE, "name": "Tag", "actions": {"prepend_subject": "[EXT] "}}
    assert world.client.post(base, json=second, headers=root).status_code == 201
    bad = {**RULE, "name": "Bad", "conditions": {"subject_matches": ["(unclosed"]}}
    r = world.client.post(base, json=bad, headers=root)
    assert r.status_code == 422 and "subject_matches" in r.json()["message"]
    r = world.client.post(f"{base}/reorder", json={"names": ["Tag", "Block invoices"]}, headers=root)
    assert [x["name"] for x in r.json()] == ["Tag", "Block invoices"]
    assert world.client.post(f"{base}/reorder", json={"names": ["Tag"]}, headers=root).status_code == 422
    raw = build_message(sender="a@outside.example", to="bob@corp.example", subject="Your invoice")
    r = world.client.post(f"{base}/test", files={"message": ("m.eml", raw, "message/rfc822")}, headers=root)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["direction"] == "inbound"
    assert {h["rule"] for h in body["matched"]} == {"Tag", "Block invoices"}
    assert body["action"] == "quarantine"
    assert world.client.delete(f"{base}/Block invoices", headers=root).status_code == 204
    assert [x["name"] for x in world.client.get(base, headers=root).json()] == ["Tag"]
    assert world.client.get(f"{base}/Block invoices", headers=root).status_code == 404


def test_list_entries_are_added_normalised_and_removed(world: World) -> None:
    root = world.as_("root")
    base = f"{API}/organisations/corp/lists"
    r = world.client.post(f"{base}/ip_block", json={"value": "203.0.113.7/24"}, headers=root)
    assert r.json()["ip_block"] == ["203.0.113.0/24"]
    r = world.client.post(f"{base}/blocked_senders", json={"value": "not an address"}, headers=root)
    assert r.status_code == 422 and r.json()["field"] == "lists.blocked_senders.0"
    r = world.client.delete(f"{base}/ip_block", params={"value": "203.0.113.0/24"}, headers=root)
    assert r.json()["ip_block"] == []
    assert world.client.delete(f"{base}/ip_block", params={"value": "10.0.0.1"}, headers=root).status_code == 404


def test_mode_switch_is_audited(world: World) -> None:
    root = world.as_("root")
    r = world.client.put(f"{API}/organisations/corp/mode", json={"mode": "monitor"}, headers=root)
    assert r.json()["mode"] == "monitor"
    assert world.rt.policies.get_organisation("corp").monitor_only
    entry = world.client.get(f"{API}/audit", headers=root).json()["items"][0]
    assert (entry["action"], entry["before"], entry["after"]) == (
        "organisation.set_monitor_only",
        {"monitor_only": False},
        {"monitor_only": True},
    )


def test_reports_count_by_category_and_top_senders(world: World) -> None:
    r = world.client.get(f"{API}/reports", headers=world.as_("ana")).json()
    assert sum(x["count"] for x in r["by_category"]) == 5
    assert r["top_spam_senders"][0] == {"address": "spammer@bad.example", "count": 3}
    assert r["top_malware_senders"] == [{"address": "evil@bad.example", "count": 1}]
    assert r["modes"]["enforce"] == 5


def test_a_whole_document_put_needs_the_etag_it_was_made_from_and_a_stale_one_changes_nothing(world: World) -> None:
    root = world.as_("root")
    url = f"{API}/organisations/corp/policy"
    got = world.client.get(url, headers=root)
    policy, etag = got.json()["policy"], got.headers["ETag"]
    r = world.client.put(url, json=policy, headers=root)
    assert r.status_code == 428 and "If-Match" in r.json()["message"]
    # another admin changes one list entry in the meantime
    assert world.client.post(f"{API}/organisations/corp/lists/blocked_senders", json={"value": "x@bad.example"},
                             headers=root).status_code in (200, 201)  # fmt: skip
    emptied = {**policy, "lists": {**policy["lists"], "blocked_senders": []}}
    r = world.client.put(url, json=emptied, headers={**root, "If-Match": etag})
    assert r.status_code == 412 and r.json()["code"] == "precondition_failed"
    assert world.rt.policies.get_policy("corp").lists.blocked_senders == ("x@bad.example",)  # not lost
    fresh = world.client.get(url, headers=root)
    r = world.client.put(url, json=emptied, headers={**root, "If-Match": fresh.headers["ETag"]})
    assert r.status_code == 200 and r.headers["ETag"] != fresh.headers["ETag"]


def test_a_merge_patch_changes_only_what_it_names(world: World) -> None:
    root = world.as_("root")
    url = f"{API}/organisations/corp/policy"
    before = world.rt.policies.get_policy("corp")
    patch = {"spam": {"bcl_threshold": 5}}
    r = world.client.patch(
        url, content=json.dumps(patch), headers={**root, "Content-Type": "application/merge-patch+json"}
    )
    assert r.status_code == 200, r.text
    after = world.rt.policies.get_policy("corp")
    assert after.spam.bcl_threshold == 5
    assert after.spam.model_copy(update={"bcl_threshold": before.spam.bcl_threshold}) == before.spam
    assert after.lists == before.lists and after.rules == before.rules
    r = world.client.patch(
        url,
        content=b'{"spam": {"bcl_threshold": 42}}',
        headers={**root, "Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 422 and r.json()["field"] == "spam.bcl_threshold"
    r = world.client.patch(url, content=b"bcl_threshold: 5", headers={**root, "Content-Type": "application/yaml"})
    assert r.status_code == 415
    stale = {**root, "Content-Type": "application/merge-patch+json", "If-Match": '"1"'}
    assert world.client.patch(url, content=json.dumps(patch), headers=stale).status_code == 412
    assert world.rt.policies.get_policy("corp").spam.bcl_threshold == 5
