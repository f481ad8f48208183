"""The retro-hunt API: who may hunt, what a hunt request must hold, and organisation boundaries."""

from __future__ import annotations

from mailwarden.store.hunts import HuntState, HuntStore

from .conftest import World

API = "/api/v1"
SEARCH = {"kind": "search", "indicators": {"urls": ["evil.example"]}}


def test_a_user_may_not_start_list_or_read_hunts(world: World) -> None:
    alice = world.as_("alice")
    assert world.client.post(f"{API}/hunts", json={"kind": "rescan"}, headers=alice).status_code == 403
    assert world.client.get(f"{API}/hunts", headers=alice).status_code == 403
    assert world.client.get(f"{API}/kept", headers=alice).status_code == 403
    assert HuntStore(world.rt.db).newest() == []


def test_admins_and_analysts_queue_hunts_for_serve_and_follow_them(world: World) -> None:
    r = world.client.post(f"{API}/hunts", json={"kind": "rescan"}, headers=world.as_("ana"))
    assert r.status_code == 202, r.text
    hunt = r.json()
    assert (hunt["state"], hunt["created_by"], hunt["organisation"]) == ("queued", "ana", None)
    r = world.client.post(f"{API}/hunts", json=SEARCH, headers=world.as_("root"))
    assert r.status_code == 202 and r.json()["query"]["urls"] == ["evil.example"]
    listed = world.client.get(f"{API}/hunts", headers=world.as_("ana")).json()
    assert [h["kind"] for h in listed] == ["search", "rescan"]
    detail = world.client.get(f"{API}/hunts/{hunt['id']}", headers=world.as_("root")).json()
    assert (detail["id"], detail["results"]) == (hunt["id"], [])
    cancelled = world.client.post(f"{API}/hunts/{hunt['id']}/cancel", headers=world.as_("ana")).json()
    assert cancelled["state"] == HuntState.CANCELLED.value


def test_a_read_only_token_cannot_start_a_hunt(world: World) -> None:
    r = world.client.post(f"{API}/hunts", json={"kind": "rescan"}, headers=world.as_("root-read"))
    assert r.status_code == 403


def test_a_search_without_valid_indicators_is_refused_with_the_field(world: World) -> None:
    root = world.as_("root")
    for body in (
        {"kind": "search"},
        {"kind": "search", "indicators": {}},
        {"kind": "search", "indicators": {"subject": "(unclosed"}},
        {"kind": "search", "indicators": {"sha256": ["xyz"]}},
    ):
        r = world.client.post(f"{API}/hunts", json=body, headers=root)
        assert (r.status_code, r.json()["field"]) == (422, "indicators"), body


def test_an_analyst_bound_to_an_organisation_hunts_only_there(world: World) -> None:
    carl = world.as_("carl")
    r = world.client.post(f"{API}/hunts", json={"kind": "rescan"}, headers=carl)
    assert r.json()["organisation"] == "other"
    assert (
        world.client.post(f"{API}/hunts", json={"kind": "rescan", "organisation": "corp"}, headers=carl).status_code
        == 404
    )
    theirs = world.client.post(f"{API}/hunts", json={"kind": "rescan"}, headers=world.as_("root")).json()
    assert world.client.get(f"{API}/hunts/{theirs['id']}", headers=carl).status_code == 404
    assert [h["organisation"] for h in world.client.get(f"{API}/hunts", headers=carl).json()] == ["other"]


def test_the_size_of_what_is_kept_is_reported(world: World) -> None:
    r = world.client.get(f"{API}/kept", headers=world.as_("ana"))
    assert r.json() == {"messages": 0, "raw_bytes": 0, "stored_bytes": 0, "keep_days": 7.0}
