"""`/metrics`: the server's counters for Prometheus, for staff only."""

from __future__ import annotations

from mailwarden import metrics
from tests.unit.api.conftest import World


def test_metrics_need_a_staff_token_and_count_messages_given_up(world: World) -> None:
    assert world.client.get("/metrics").status_code == 401
    assert world.client.get("/metrics", headers=world.as_("alice")).status_code == 403
    before = metrics.REGISTRY.get_sample_value("mailwarden_processing_given_up_total") or 0.0
    metrics.GIVEN_UP.inc()
    answer = world.client.get("/metrics", headers=world.as_("root-read"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert f"mailwarden_processing_given_up_total {before + 1}" in answer.text
