"""The NATS and webhook sinks refuse settings that could not work (or would leak a secret) before any
connection, naming the field; the webhook signature is exactly what docs/events.md tells a receiver."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from mailwarden.errors import ConfigError
from mailwarden.export.event import ExportEvent
from mailwarden.export.sinks.nats import JetStreamSink
from mailwarden.export.sinks.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSink, verify_signature

NATS = "nats://127.0.0.1:4222"
SECRET = "whsec-unit-test"


@pytest.mark.parametrize(
    ("servers", "subject", "options", "field"),
    [
        (["nats://me:pw@127.0.0.1:4222"], "a.b", {}, "servers"),
        ([], "a.b", {}, "servers"),
        ([NATS], "a.class{class_uid}", {}, "subject"),
        ([NATS], "a.>", {}, "subject"),
        ([NATS], "a..b", {}, "subject"),
        ([NATS], "a.b", {"create_stream": True}, "stream"),
        ([NATS], "a.b", {"user": "me"}, "password"),
    ],
)
def test_nats_settings_that_cannot_work_are_refused(
    servers: list[str], subject: str, options: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        JetStreamSink("lake", servers, subject, **options)  # type: ignore[arg-type]


@pytest.mark.skipif(importlib.util.find_spec("nkeys") is not None, reason="nkeys is installed")
def test_a_creds_file_without_nkeys_is_refused() -> None:
    with pytest.raises(ConfigError, match="credentials"):
        JetStreamSink("lake", [NATS], "a.b", credentials=SecretStr("-----BEGIN NATS USER JWT-----"))


def test_the_subject_fans_out_per_class_and_secrets_stay_out_of_repr() -> None:
    sink = JetStreamSink("lake", [NATS], "mailwarden.events.{class_uid}", user="me", password=SecretStr("pw-123"))
    event = ExportEvent(1, "01J0000000000000000000000", 4011, 1, datetime.now(UTC), {})
    assert sink.subject_for(event) == "mailwarden.events.4011"
    assert "pw-123" not in repr(sink) + str(sink) + repr(vars(sink))


@pytest.mark.parametrize(
    "url",
    ["http://siem.example/hook", "http://10.0.0.5/hook", "ftp://siem.example/", "https://u:p@siem.example/", "x"],
)
def test_a_webhook_needs_https_unless_the_receiver_is_on_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match="url"):
        WebhookSink("siem", url, SecretStr(SECRET))


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/h", "http://[::1]/h", "http://localhost/h", "https://a.example/"]
)
def test_loopback_http_and_any_https_are_accepted(url: str) -> None:
    WebhookSink("siem", url, SecretStr(SECRET))


def test_webhook_batch_size_and_secret_must_be_usable() -> None:
    with pytest.raises(ConfigError, match="max_batch"):
        WebhookSink("siem", "https://a.example/", SecretStr(SECRET), max_batch=0)
    with pytest.raises(ConfigError, match="secret"):
        WebhookSink("siem", "https://a.example/", SecretStr(""))


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    sink = WebhookSink("siem", "https://a.example/", SecretStr(SECRET), clock=lambda: 1_700_000_000.7)
    body = b'[{"class_uid":4009}]'
    headers = sink.signed_headers(body)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers[SIGNATURE_HEADER] == f"v1={expected}"
    assert headers["Content-Type"] == "application/json"
    assert verify_signature(SECRET, "1700000000", body, headers[SIGNATURE_HEADER], now=1_700_000_100)
    assert not verify_signature(SECRET, "1700000000", body, headers[SIGNATURE_HEADER], now=1_700_000_301)
    assert not verify_signature(SECRET, "1700000000", body, f"v2={expected}", now=1_700_000_000)
    assert not verify_signature(SECRET, "1700000000", body, "", now=1_700_000_000)
