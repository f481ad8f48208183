"""Start-up says once when outbound mail is taken but no `high_risk` delivery pool is configured."""

from __future__ import annotations

from structlog.testing import capture_logs

from mailwarden.model import ListenerRole
from mailwarden.service.server import warn_without_high_risk_pool


def test_an_outbound_listener_without_the_pool_warns_once() -> None:
    with capture_logs() as logs:
        assert warn_without_high_risk_pool([ListenerRole.INBOUND, ListenerRole.OUTBOUND], {"default"})
    assert [entry["event"] for entry in logs] == ["high_risk_pool_missing"]
    assert logs[0]["log_level"] == "warning" and logs[0]["pools"] == ["default"]


def test_no_warning_with_the_pool_or_without_outbound_mail() -> None:
    with capture_logs() as logs:
        assert not warn_without_high_risk_pool([ListenerRole.OUTBOUND], {"default", "high_risk"})
        assert not warn_without_high_risk_pool([ListenerRole.INBOUND, ListenerRole.JOURNAL], {"default"})
    assert logs == []
