"""Every role boundary of the REST API: what each role sees and may change."""

from __future__ import annotations

from .conftest import World

API = "/api/v1"


def test_no_credentials_is_401_in_the_error_shape(world: World) -> None:
    r = world.client.get(f"{API}/quarantine")
    assert r.status_code == 401
    assert r.json()["code"] == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"
    assert world.client.get(f"{API}/me", headers={"Authorization": "Bearer mwt_nothing_here"}).status_code == 401


def test_a_user_lists_only_their_own_entries_they_may_see(world: World) -> None:
    items = world.client.get(f"{API}/quarantine", headers=world.as_("alice")).json()["items"]
    ids = {e["id"] for e in items}
    # their spam and phish; not bob's spam, not the malware (policy: users do not see malware), not the other org
    assert ids == {world.entries["spam:alice"], world.entries["phish:alice"]}
    # asking for someone else's recipient changes nothing
    r = world.client.get(f"{API}/quarantine", params={"recipient": "bob@corp.example"}, headers=world.as_("alice"))
    assert {e["recipient"] for e in r.json()["items"]} == {"alice@corp.example"}


def test_a_user_never_sees_or_releases_another_users_message(world: World) -> None:
    bobs = world.entries["bobspam:bob"]
    alice = world.as_("alice")
    for method, path in (
        ("GET", f"{API}/quarantine/{bobs}"),
        ("GET", f"{API}/quarantine/{bobs}/preview"),
        ("GET", f"{API}/quarantine/{bobs}/download"),
        ("POST", f"{API}/quarantine/{bobs}/release"),
        ("POST", f"{API}/quarantine/{bobs}/request"),
        ("DELETE", f"{API}/quarantine/{bobs}"),
    ):
        r = world.client.request(method, path, headers=alice)
        assert r.status_code == 404, (method, path, r.text)
    assert world.quarantine.get(bobs).status.value == "held"
    # bob himself may release it (spam: users release)
    r = world.client.post(f"{API}/quarantine/{bobs}/release", headers=world.as_("bob"))
    assert r.status_code == 200, r.text
    assert [e["status"] for e in r.json()] == ["released"]


def test_a_user_releases_own_spam_and_only_requests_phish(world: World) -> None:
    alice = world.as_("alice")
    spam = world.client.get(f"{API}/quarantine/{world.entries['spam:alice']}", headers=alice).json()
    assert "release" in spam["allowed"] and "download" not in spam["allowed"]
    phish = world.entries["phish:alice"]
    r = world.client.post(f"{API}/quarantine/{phish}/release", headers=alice)
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
    r = world.client.post(f"{API}/quarantine/{phish}/request", headers=alice)
    assert r.json()["status"] == "release_requested"
    # the analyst may not approve phish (spam and bulk only); the administrator may
    assert world.client.post(f"{API}/quarantine/{phish}/approve", headers=world.as_("ana")).status_code == 403
    r = world.client.post(f"{API}/quarantine/{phish}/approve", headers=world.as_("root"))
    assert r.status_code == 200 and r.json()[0]["status"] == "released"


def test_nobody_but_an_admin_releases_malware(world: World) -> None:
    entry = world.entries["malware:alice"]
    for user in ("alice", "bob"):
        assert world.client.post(f"{API}/quarantine/{entry}/release", headers=world.as_(user)).status_code == 404
    ana = world.client.get(f"{API}/quarantine/{entry}", headers=world.as_("ana")).json()
    assert "release" not in ana["allowed"] and "view" in ana["allowed"]
    r = world.client.post(f"{API}/quarantine/{entry}/release", headers=world.as_("ana"))
    assert r.status_code == 403
    assert world.quarantine.get(entry).status.value == "held"
    r = world.client.post(
        f"{API}/quarantine/{entry}/release", json={"recipients": ["alice@corp.example"]}, headers=world.as_("root")
    )
    assert r.status_code == 200
    assert [(e["recipient"], e["status"]) for e in r.json()] == [("alice@corp.example", "released")]
    assert world.quarantine.get(world.entries["malware:bob"]).status.value == "held"


def test_an_analyst_releases_spam_but_cannot_change_policy(world: World) -> None:
    ana = world.as_("ana")
    r = world.client.post(f"{API}/quarantine/{world.entries['spam:alice']}/release", headers=ana)
    assert r.status_code == 200
    policy = world.client.get(f"{API}/organisations/corp/policy", headers=ana)
    assert policy.status_code == 200
    doc = policy.json()["policy"]
    rule = {"name": "r1", "conditions": {"subject_contains": ["x"]}, "actions": {"quarantine": True}}
    for method, path, body in (
        ("PUT", f"{API}/organisations/corp/policy", doc),
        ("PUT", f"{API}/organisations/corp/mode", {"mode": "monitor"}),
        ("POST", f"{API}/organisations/corp/rules", rule),
        ("PUT", f"{API}/organisations/corp/lists", doc["lists"]),
        ("POST", f"{API}/organisations/corp/lists/blocked_senders", {"value": "x@bad.example"}),
        ("POST", f"{API}/users", {"name": "eve", "role": "admin"}),
    ):
        r = world.client.request(method, path, json=body, headers=ana)
        assert r.status_code == 403, (method, path, r.text)
    assert world.rt.policies.policy_version("corp") == 1
    assert not world.rt.policies.get_organisation("corp").monitor_only


def test_users_have_no_message_trace_and_analysts_see_their_organisation_only(world: World) -> None:
    assert world.client.get(f"{API}/messages", headers=world.as_("alice")).status_code == 403
    every = world.client.get(f"{API}/messages", headers=world.as_("ana")).json()["items"]
    assert len(every) == 5
    carl = world.client.get(f"{API}/messages", headers=world.as_("carl")).json()["items"]
    assert [m["organisation"] for m in carl] == ["other"]
    corp_message = world.messages["spam"]
    assert world.client.get(f"{API}/messages/{corp_message}", headers=world.as_("carl")).status_code == 404
    assert world.client.get(f"{API}/organisations/corp", headers=world.as_("carl")).status_code == 404
    assert [o["name"] for o in world.client.get(f"{API}/organisations", headers=world.as_("carl")).json()] == ["other"]
    carl_q = world.client.get(f"{API}/quarantine", headers=world.as_("carl")).json()["items"]
    assert {e["organisation"] for e in carl_q} == {"other"}


def test_a_read_only_token_cannot_change_anything(world: World) -> None:
    ro = world.as_("root-read")
    assert world.client.get(f"{API}/users", headers=ro).status_code == 200
    r = world.client.post(f"{API}/quarantine/{world.entries['spam:alice']}/release", headers=ro)
    assert r.status_code == 403
    assert "read scope" in r.json()["message"]


def test_revoked_tokens_and_disabled_users_are_refused(world: World) -> None:
    tokens = world.client.get(f"{API}/tokens", headers=world.as_("bob")).json()
    assert [t["user"] for t in tokens] == ["bob"]
    # bob cannot revoke alice's token; he can revoke his own
    alice_prefix = world.accounts.list_tokens("alice")[0].prefix
    assert world.client.delete(f"{API}/tokens/{alice_prefix}", headers=world.as_("bob")).status_code == 404
    r = world.client.delete(f"{API}/tokens/{tokens[0]['prefix']}", headers=world.as_("bob"))
    assert r.json()["revoked"] is True
    assert world.client.get(f"{API}/me", headers=world.as_("bob")).status_code == 401
    r = world.client.patch(f"{API}/users/alice", json={"disabled": True}, headers=world.as_("root"))
    assert r.json()["disabled"] is True
    assert world.client.get(f"{API}/me", headers=world.as_("alice")).status_code == 401


def test_session_cookie_changes_need_the_csrf_header(world: World) -> None:
    principal = world.accounts.authenticate("bob", "correct horse battery staple")
    assert principal is not None
    session_id = world.accounts.create_session(principal)
    world.client.cookies.set("mailwarden_session", session_id)
    try:
        assert world.client.get(f"{API}/me").json()["name"] == "bob"
        path = f"{API}/quarantine/{world.entries['bobspam:bob']}/release"
        r = world.client.post(path)
        assert r.status_code == 403 and "X-CSRF-Token" in r.json()["message"]
        assert world.client.post(path, headers={"X-CSRF-Token": "t"}).status_code == 200
        world.accounts.end_session(session_id)
        assert world.client.get(f"{API}/me").status_code == 401
    finally:
        world.client.cookies.clear()
