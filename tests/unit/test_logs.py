"""Log lines as people and machines read them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from mailwarden.logs import configure


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def failing_write() -> None:
    raise ConnectionRefusedError("next hop 192.0.2.25:25 refused the connection")


def test_a_json_log_line_carries_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", "json")
    try:
        failing_write()
    except ConnectionRefusedError:
        structlog.get_logger("test").exception("delivery_failed", job="j1")
    line = json.loads(capsys.readouterr().err.strip())
    assert line["event"] == "delivery_failed" and line["job"] == "j1" and line["level"] == "error"
    (exception,) = line["exception"]
    assert exception["exc_type"] == "ConnectionRefusedError"
    assert exception["exc_value"] == "next hop 192.0.2.25:25 refused the connection"
    assert exception["frames"][-1]["name"] == "failing_write"
    assert "locals" not in exception["frames"][-1]  # a frame's variables may hold mail or secrets


def test_a_console_log_line_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", "console")
    try:
        failing_write()
    except ConnectionRefusedError:
        structlog.get_logger("test").exception("delivery_failed")
    err = capsys.readouterr().err
    assert "delivery_failed" in err and "ConnectionRefusedError" in err and "refused the connection" in err


def failing_with_a_secret(password: str, card: str) -> None:
    raise ValueError("could not sign in")


def test_a_console_traceback_is_short_and_shows_no_local_variables(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", "console")
    secret, card = "hunter2" + "-secret", "4111" * 4  # not spelled out on the line the traceback quotes
    try:
        failing_with_a_secret(secret, card)
    except ValueError:
        structlog.get_logger("test").exception("sign_in_failed")
    err = capsys.readouterr().err
    assert "could not sign in" in err and "failing_with_a_secret" in err
    assert "hunter2-secret" not in err and "4111111111111111" not in err
    assert len(err.splitlines()) < 30  # a plain traceback, not a page of boxes per frame
