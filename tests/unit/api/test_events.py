"""The pull API pages through the feed without gaps or repeats; roles and organisations as everywhere."""

from __future__ import annotations

from typing import Any

from tests.unit.api.conftest import PASSWORD, World
from tests.unit.console.test_console import sign_in


def pages(world: World, user: str, limit: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    cursor = 0
    while True:
        r = world.client.get("/api/v1/events", params={"after": cursor, "limit": limit}, headers=world.as_(user))
        assert r.status_code == 200, r.text
        page = r.json()
        if page["next_cursor"] == cursor:
            assert page["events"] == []
            return got
        got.extend(page["events"])
        cursor = page["next_cursor"]


def test_small_pages_add_up_to_the_whole_feed(world: World) -> None:
    everything = pages(world, "root", 5000)
    assert everything and len({e["metadata"]["uid"] for e in everything}) == len(everything)
    assert [e["metadata"]["uid"] for e in pages(world, "root", 3)] == [e["metadata"]["uid"] for e in everything]
    classes = {e["class_uid"] for e in everything}
    assert 4009 in classes  # every message recorded in the world is an Email Activity


def test_users_are_refused_and_an_organisations_analyst_sees_its_own(world: World) -> None:
    assert world.client.get("/api/v1/events", headers=world.as_("alice")).status_code == 403
    theirs = pages(world, "carl", 50)  # bound to "other"
    emails = [e for e in theirs if e["class_uid"] == 4009]
    assert emails and all("other" in str(e) for e in emails)
    assert len(theirs) < len(pages(world, "root", 50))


def test_the_dashboard_shows_the_outbox_and_each_sinks_lag(world: World) -> None:
    from mailwarden.export.config import ExportConfig
    from mailwarden.store.outbox import Outbox

    world.rt.config.export = ExportConfig.model_validate(
        {"sinks": [{"type": "file", "name": "shipper", "path": "/dev/null"}]}
    )
    Outbox(world.rt.db).failed("shipper", "disk full")  # no cursor yet: nothing recorded
    Outbox(world.rt.db).advance("shipper", 1)
    Outbox(world.rt.db).failed("shipper", "disk full")
    sign_in(world.client, "root", PASSWORD)
    page = world.client.get("/").text
    assert "rows in the outbox" in page and "sink shipper:" in page and "disk full" in page
