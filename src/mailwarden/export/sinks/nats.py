"""The NATS JetStream sink: each event's OCSF JSON published to a subject, acknowledged by the stream.

JetStream is the broker of a data-lake pipeline: it stores every event and consumers read at their own pace.
Each message carries `Nats-Msg-Id: <metadata.uid>`, so a batch sent again after a partial failure is dropped
by the stream's duplicate window instead of being stored twice; outside that window a consumer still
de-duplicates by uid (at-least-once delivery). `send` returns only once every message has its PubAck.

The client's own reconnect loop is off: one failure closes the connection and raises SinkError, and the
next `send` (the exporter's retry) connects again. So nothing is buffered behind the exporter's back.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import ssl
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client, RawCredentials
from nats.js import JetStreamContext
from nats.js.api import PubAck
from pydantic import SecretStr

from mailwarden.errors import ConfigError
from mailwarden.export.event import ExportEvent
from mailwarden.export.sink import SinkError

log = structlog.get_logger(__name__)

CLASS_PLACEHOLDER = "{class_uid}"  # a subject token replaced by the event's OCSF class: one subject per class
MSG_ID_HEADER = "Nats-Msg-Id"
DEFAULT_TIMEOUT_SECONDS = 10.0
# closing a connection that never came up: nothing to flush, and after a failed TLS handshake the client's
# close() waits for a stream that never reports closed (the socket itself is closed at once)
ABANDON_SECONDS = 0.5
DEFAULT_DUPLICATE_WINDOW = timedelta(minutes=2)  # the server's own default, said out loud


class JetStreamSink:
    """Publishes events to `subject` (`{class_uid}` as one of its tokens fans out per class, e.g.
    `mailwarden.events.{class_uid}`). With `stream`, the server rejects a message that would land in any
    other stream; with `create_stream` too, the stream is made on first connect when missing (its subjects
    cover `subject`; `max_age` bounds how long events stay). Authentication: a `.creds` file's contents
    (`credentials`, needs the `nkeys` package), a `token`, or `user` + `password`; `ca_file` trusts a
    private CA (and turns TLS on). `timeout` bounds connecting and the wait for each acknowledgement."""

    def __init__(
        self,
        name: str,
        servers: Sequence[str],
        subject: str,
        *,
        stream: str | None = None,
        create_stream: bool = False,
        max_age: timedelta | None = None,
        duplicate_window: timedelta = DEFAULT_DUPLICATE_WINDOW,
        credentials: SecretStr | None = None,
        token: SecretStr | None = None,
        user: str | None = None,
        password: SecretStr | None = None,
        ca_file: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        _check_servers(servers)
        _check_subject(subject)
        if create_stream and not stream:
            raise ConfigError("create_stream needs the stream's name", field="stream")
        if (user is None) != (password is None):
            raise ConfigError("user and password go together", field="password")
        if credentials is not None and importlib.util.find_spec("nkeys") is None:
            raise ConfigError("a .creds file needs the nkeys package (pip install nkeys)", field="credentials")
        self.name = name
        self.servers = list(servers)
        self.subject = subject
        self.stream = stream
        self.create_stream = create_stream
        self.max_age = max_age
        self.duplicate_window = duplicate_window
        self.timeout = timeout
        self._credentials = credentials
        self._token = token
        self._user = user
        self._password = password
        self._ca_file = ca_file
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    def __repr__(self) -> str:
        return f"JetStreamSink(name={self.name!r}, servers={self.servers!r}, subject={self.subject!r})"

    async def send(self, events: Sequence[ExportEvent]) -> None:
        if not events:
            return
        messages = [(self.subject_for(event), _payload(event), event.uid) for event in events]
        js = await self._connection()
        try:
            await self._publish(js, messages)
        except Exception as exc:
            await self._drop()
            reason = f"NATS sink {self.name}: batch of {len(events)} not acknowledged: {_describe(exc)}"
            log.warning("export_sink_failed", sink=self.name, reason=reason)
            raise SinkError(reason) from exc

    async def close(self) -> None:
        await self._drop()

    def subject_for(self, event: ExportEvent) -> str:
        return self.subject.replace(CLASS_PLACEHOLDER, str(event.class_uid))

    async def _publish(self, js: JetStreamContext, messages: list[tuple[str, bytes, str]]) -> None:
        """Pipelined: every message goes out before the first ack is awaited (one connection keeps their
        order), then every ack must come within `timeout` (per 1,000 messages)."""
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for subject, payload, uid in messages:
                # no wait_stall: with one, every publish waits in a task of its own and the client flushes
                # the socket once per message (10 times the CPU); the batch's acks are awaited before the next
                # batch, so the client's pending-ack slots never run out, and the wait below bounds it all
                future = await js.publish_async(subject, payload, stream=self.stream, headers={MSG_ID_HEADER: uid})
                futures.append(future)
            # one wait for the batch (a wait per message cost a task each): the acks come in order, and the
            # whole batch gets the timeout once per 1,000 messages
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout * (1 + len(futures) // 1000))
        finally:
            for future in futures:
                future.cancel()  # no-op for the acknowledged; frees the client's slots of the rest

    async def _connection(self) -> JetStreamContext:
        if self._nc is not None and self._js is not None and self._nc.is_connected:
            return self._js
        await self._drop()
        nc = Client()
        try:
            await asyncio.wait_for(nc.connect(**self._options()), self.timeout)
            js = nc.jetstream(timeout=self.timeout)
            if self.create_stream:
                await self._ensure_stream(js)
        except Exception as exc:
            await _close_quietly(nc, ABANDON_SECONDS)
            reason = f"NATS sink {self.name}: cannot use {', '.join(self.servers)}: {_describe(exc)}"
            log.warning("export_sink_failed", sink=self.name, reason=reason)
            raise SinkError(reason) from exc
        self._nc, self._js = nc, js
        log.info("export_sink_connected", sink=self.name, server=_server_of(nc))
        return js

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "servers": self.servers,
            "name": f"mailwarden export {self.name}",
            "allow_reconnect": False,
            "max_reconnect_attempts": 1,  # so a refused connection ends connect() instead of looping
            "reconnect_time_wait": 0,
            "connect_timeout": max(1, round(self.timeout)),
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
        }
        if self._ca_file is not None:
            options["tls"] = ssl.create_default_context(cafile=str(self._ca_file))
        if self._token is not None:
            options["token"] = self._token.get_secret_value()
        if self._user is not None and self._password is not None:
            options["user"] = self._user
            options["password"] = self._password.get_secret_value()
        if self._credentials is not None:
            options["user_credentials"] = RawCredentials(self._credentials.get_secret_value())
        return options

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """Make the stream when it is missing; an existing one is left as its operator configured it."""
        assert self.stream is not None  # checked in __init__
        try:
            await js.stream_info(self.stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        max_age = self.max_age.total_seconds() if self.max_age is not None else None
        await js.add_stream(
            name=self.stream,
            subjects=[self.subject.replace(CLASS_PLACEHOLDER, "*")],
            max_age=max_age,
            duplicate_window=self.duplicate_window.total_seconds(),
        )
        log.info("export_stream_created", sink=self.name, stream=self.stream)

    async def _drop(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            await _close_quietly(nc, self.timeout)

    async def _on_error(self, exc: Exception) -> None:
        log.debug("export_nats_error", sink=self.name, error=_describe(exc))

    async def _on_disconnected(self) -> None:
        log.info("export_nats_disconnected", sink=self.name)


def _payload(event: ExportEvent) -> bytes:
    return json.dumps(event.body, ensure_ascii=False, separators=(",", ":")).encode()


def _check_servers(servers: Sequence[str]) -> None:
    if not servers:
        raise ConfigError("at least one NATS server URL is needed", field="servers")
    for server in servers:
        if "@" in urlsplit(server if "://" in server else f"nats://{server}").netloc:
            # a URL's user info ends up in error messages and logs; the secret fields never do
            raise ConfigError("put credentials in user/password or token, not in the URL", field="servers")


def _check_subject(subject: str) -> None:
    tokens = subject.split(".")
    if not subject or any(not token or " " in token for token in tokens):
        raise ConfigError(f"not a NATS subject: {subject!r}", field="subject")
    if (
        any(CLASS_PLACEHOLDER in token and token != CLASS_PLACEHOLDER for token in tokens)
        or "*" in tokens
        or ">" in tokens
    ):
        raise ConfigError(
            f"{CLASS_PLACEHOLDER} must be a whole token and no wildcard is allowed: {subject!r}", field="subject"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return "no stream listens on the subject"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _server_of(nc: Client) -> str:
    url = nc.connected_url
    return url.netloc if url is not None else "?"


async def _close_quietly(nc: Client, within: float) -> None:
    try:
        await asyncio.wait_for(nc.close(), within)
    except Exception as exc:
        log.debug("export_nats_close_failed", error=_describe(exc))
