"""Probes: /healthz answers without sign-in; /readyz says what is not ready, with 503."""

from __future__ import annotations

from tests.unit.api.conftest import World


def test_alive_without_signing_in(world: World) -> None:
    r = world.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "alive"}


def test_ready_names_what_is_not(world: World) -> None:
    assert world.client.get("/readyz").json() == {"ready": True, "failing": []}
    world.client.app.state.readiness = lambda: {"spool": True, "listeners": False}  # type: ignore[attr-defined]
    r = world.client.get("/readyz")
    assert r.status_code == 503 and r.json() == {"ready": False, "failing": ["listeners"]}


def test_metrics_need_staff(world: World) -> None:
    assert world.client.get("/metrics").status_code == 401
    r = world.client.get("/metrics", headers=world.as_("ana"))
    assert r.status_code == 200 and "mailwarden_messages_processed" in r.text
