"""The HTTPS webhook sink: batches of OCSF events POSTed as a JSON array, signed with HMAC-SHA256.

Each request carries `X-Mailwarden-Timestamp: <unix seconds>` and
`X-Mailwarden-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. The receiver recomputes the
signature over the raw body (so the body is authentic) and rejects a timestamp outside its window (so a
captured request cannot be replayed later); `verify_signature` below is that check, free of mailwarden
imports so a receiver can copy it. Any 2xx acknowledges the request; anything else fails the batch.

A batch larger than `max_batch` goes out as several requests in order; when a later one fails the whole
batch is sent again by the exporter, so a receiver sees some events twice and de-duplicates by
`metadata.uid` (at-least-once delivery).

Plain http is refused unless the host is loopback (a receiver on the same machine, or a test): the
events carry message metadata and the signature does not hide it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import httpx
import structlog
from pydantic import SecretStr

from mailwarden.errors import ConfigError
from mailwarden.export.event import ExportEvent
from mailwarden.export.sink import SinkError

log = structlog.get_logger(__name__)

TIMESTAMP_HEADER = "X-Mailwarden-Timestamp"
SIGNATURE_HEADER = "X-Mailwarden-Signature"
SIGNATURE_VERSION = "v1"
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_BATCH = 500
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookSink:
    """POSTs events to `url`, at most `max_batch` per request, signed with `secret`. `ca_file` trusts a
    private CA besides the system's; `timeout` bounds each request."""

    def __init__(
        self,
        name: str,
        url: str,
        secret: SecretStr,
        *,
        ca_file: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_batch: int = DEFAULT_MAX_BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.peer = _check_url(url)
        if max_batch < 1:
            raise ConfigError("must be at least 1", field="max_batch")
        if not secret.get_secret_value():
            raise ConfigError("an empty secret signs nothing", field="secret")
        self.name = name
        self.url = url
        self.timeout = timeout
        self.max_batch = max_batch
        self._secret = secret
        self._ca_file = ca_file
        self._clock = clock
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, peer={self.peer!r})"

    async def send(self, events: Sequence[ExportEvent]) -> None:
        for start in range(0, len(events), self.max_batch):
            await self._post(events[start : start + self.max_batch])

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def signed_headers(self, body: bytes) -> dict[str, str]:
        timestamp = str(int(self._clock()))
        return {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: f"{SIGNATURE_VERSION}={sign(self._secret.get_secret_value(), timestamp, body)}",
        }

    async def _post(self, events: Sequence[ExportEvent]) -> None:
        body = json.dumps([event.body for event in events], ensure_ascii=False, separators=(",", ":")).encode()
        try:
            response = await self._client().post(self.url, content=body, headers=self.signed_headers(body))
        except httpx.HTTPError as exc:
            self._fail(f"request to {self.peer} failed: {_describe(exc)}", len(events))
        if not 200 <= response.status_code < 300:
            self._fail(f"{self.peer} answered {response.status_code} {response.reason_phrase}", len(events))

    def _fail(self, what: str, count: int) -> NoReturn:
        reason = f"webhook sink {self.name}: batch of {count} not acknowledged: {what}"
        log.warning("export_sink_failed", sink=self.name, reason=reason)
        raise SinkError(reason)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            context = ssl.create_default_context()
            if self._ca_file is not None:
                context.load_verify_locations(cafile=str(self._ca_file))
            self._http = httpx.AsyncClient(
                verify=context,
                timeout=self.timeout,
                follow_redirects=False,  # a redirect is not an acknowledgement
                headers={"User-Agent": "mailwarden-export"},
            )
        return self._http


def _check_url(url: str) -> str:
    """The URL's scheme://host:port (what messages name: a webhook's path or query may hold a token)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError("must be an https:// URL", field="url")
    if parts.username or parts.password:
        raise ConfigError("no user info in the URL; the signature authenticates mailwarden", field="url")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError("plain http is allowed only to a loopback address; use https", field="url")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- what a receiver runs (standard library only, so it can be copied as it is) ---


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `header` (the X-Mailwarden-Signature value; several `v1=` entries separated by commas
    are accepted, for a secret being rotated) signs `timestamp` + the raw `body`, and `timestamp` (the
    X-Mailwarden-Timestamp value) is within `tolerance_seconds` of `now`. A receiver that must refuse even
    a replay inside the window also remembers the signatures it has seen for that long."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body)
    matched = False
    for entry in header.split(","):
        version, _, value = entry.strip().partition("=")
        # compare every entry, whatever the outcome, in constant time each
        matched |= version == SIGNATURE_VERSION and hmac.compare_digest(value.encode(), expected.encode())
    return matched
