"""The syslog sink: RFC 5424 messages to a collector over TLS (RFC 5425), plain TCP (RFC 6587) or UDP (RFC 5426).

TCP and TLS frame every message with its octet count, so a message is never split or merged whatever it
holds. Syslog has no application-level acknowledgement: a batch counts as delivered once it is written and
the socket's buffer drained into the kernel — the issue's contract for this sink. UDP is best effort: a
datagram lost on the way is never known; only an error the network reports while the batch is sent (an ICMP
port unreachable, a refused send) fails it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import structlog

from mailwarden.errors import ConfigError
from mailwarden.export.event import ExportEvent
from mailwarden.export.rfc5424 import Format, Rfc5424, check_sd_id, facility_code, octet_frame
from mailwarden.export.sink import SinkError

log = structlog.get_logger(__name__)

Transport = Literal["tls", "tcp", "udp"]
TRANSPORTS: tuple[Transport, ...] = ("tls", "tcp", "udp")
FORMATS: tuple[Format, ...] = ("json", "cef")
UDP_MAX_PAYLOAD = 65_507  # the most one IPv4 datagram can carry
CLOSE_GRACE_SECONDS = 2.0
FLUSH_POLL_SECONDS = 0.001


class SyslogSink:
    """One collector. Connects on the first `send`; after a failure the next `send` connects anew."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        transport: Transport = "tls",
        ca_file: Path | str | None = None,
        client_cert: Path | str | None = None,
        client_key: Path | str | None = None,
        format: Format = "json",  # the setting's name in [export]
        app_name: str = "mailwarden",
        hostname: str | None = None,
        facility: int | str = "local0",
        sd_id: str | None = None,
        utf8_bom: bool = False,
        timeout: float = 10.0,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ConfigError(f"unknown syslog transport {transport!r} (tls, tcp or udp)", field="transport")
        if format not in FORMATS:
            raise ConfigError(f"unknown syslog format {format!r} (json or cef)", field="format")
        self.name = name
        self.host = host
        self.port = port
        self.transport: Transport = transport
        self.timeout = timeout
        self._layout = Rfc5424(
            facility=facility_code(facility),
            hostname=hostname or socket.gethostname(),
            app_name=app_name,
            procid=str(os.getpid()),
            fmt=format,
            sd_id=check_sd_id(sd_id) if sd_id else None,
            utf8_bom=utf8_bom,
        )
        self._tls = tls_context(ca_file, client_cert, client_key) if transport == "tls" else None
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._datagrams: tuple[asyncio.DatagramTransport, _Datagrams] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SyslogSink({self.name!r}, {self.host}:{self.port}, {self.transport})"

    async def send(self, events: Sequence[ExportEvent]) -> None:
        """Write the batch in order; return once it is in the kernel's hands (TCP/TLS) or sent (UDP)."""
        if not events:
            return
        messages = [(event, self._layout.message(event)) for event in events]
        async with self._lock:
            if self.transport == "udp":
                await self._send_datagrams(messages)
            else:
                await self._send_stream(b"".join(octet_frame(message) for _, message in messages))

    async def close(self) -> None:
        async with self._lock:
            await self._drop_stream(graceful=True)
            self._drop_datagrams()

    async def _send_stream(self, payload: bytes) -> None:
        try:
            writer = await self._writer()
            writer.write(payload)
            await asyncio.wait_for(_flushed(writer), self.timeout)
        except (OSError, TimeoutError) as exc:
            await self._drop_stream(graceful=False)
            reason = self._reason(exc)
            log.warning("export_syslog_failed", sink=self.name, reason=reason)
            raise SinkError(reason) from exc

    async def _writer(self) -> asyncio.StreamWriter:
        """The open connection, or a new one. A connection the collector closed while we were idle (it
        restarted, or timed us out) is replaced before anything is written to it."""
        if self._stream is not None:
            reader, writer = self._stream
            if reader.at_eof() or writer.is_closing():
                log.info("export_syslog_peer_closed", sink=self.name, host=self.host, port=self.port)
                await self._drop_stream(graceful=False)
        if self._stream is None:
            connecting = asyncio.open_connection(
                self.host, self.port, ssl=self._tls, server_hostname=self.host if self._tls else None
            )
            self._stream = await asyncio.wait_for(connecting, self.timeout)
            log.info("export_syslog_connected", sink=self.name, host=self.host, port=self.port, via=self.transport)
        return self._stream[1]

    async def _drop_stream(self, *, graceful: bool) -> None:
        if self._stream is None:
            return
        _, writer = self._stream
        self._stream = None
        if not graceful:
            writer.transport.abort()
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), CLOSE_GRACE_SECONDS)
        except (OSError, TimeoutError):
            writer.transport.abort()

    async def _send_datagrams(self, messages: Sequence[tuple[ExportEvent, bytes]]) -> None:
        try:
            transport, protocol = await self._endpoint()
            protocol.error = None  # only what happens during this batch fails it
            for event, message in messages:
                transport.sendto(self._fit_datagram(event, message))
            await asyncio.sleep(0)  # an error the kernel already queued reaches error_received now
            error = protocol.error
        except OSError as exc:
            error = exc
        if error is not None:
            self._drop_datagrams()
            reason = self._reason(error)
            log.warning("export_syslog_failed", sink=self.name, reason=reason)
            raise SinkError(reason) from error

    async def _endpoint(self) -> tuple[asyncio.DatagramTransport, _Datagrams]:
        if self._datagrams is None:
            loop = asyncio.get_running_loop()
            self._datagrams = await loop.create_datagram_endpoint(_Datagrams, remote_addr=(self.host, self.port))
        return self._datagrams

    def _drop_datagrams(self) -> None:
        if self._datagrams is not None:
            self._datagrams[0].close()
            self._datagrams = None

    def _fit_datagram(self, event: ExportEvent, message: bytes) -> bytes:
        """One datagram holds at most 65,507 octets; a longer message is cut (RFC 5426 lets receivers cut
        too) rather than lost, and the cut is logged."""
        if len(message) <= UDP_MAX_PAYLOAD:
            return message
        log.warning("export_syslog_datagram_cut", sink=self.name, uid=event.uid, size=len(message))
        return message[:UDP_MAX_PAYLOAD].decode("utf-8", "ignore").encode()

    def _reason(self, exc: BaseException) -> str:
        what = f"no answer within {self.timeout:g} s" if isinstance(exc, TimeoutError) else _describe(exc)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"syslog {host}:{self.port} over {self.transport}: {what}"


async def _flushed(writer: asyncio.StreamWriter) -> None:
    """Return once every byte written is in the kernel's send buffer, which outlives this process (a
    SIGKILL right after the acknowledgement loses nothing). drain() alone returns while data still waits in
    asyncio's buffers: up to 64 KiB on plain TCP, and under TLS a whole batch, which the TLS layer hands on
    at once to the socket transport below it, whose buffer drain() does not look at."""
    await writer.drain()
    while _unsent(writer.transport) > 0:
        if writer.transport.is_closing():
            raise ConnectionResetError("the connection closed before everything was sent")
        await asyncio.sleep(FLUSH_POLL_SECONDS)


def _unsent(transport: asyncio.WriteTransport) -> int:
    # CPython's TLS transport keeps the socket's transport on its protocol; without it, count what we see
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    below = inner.get_write_buffer_size() if isinstance(inner, asyncio.WriteTransport) else 0
    return transport.get_write_buffer_size() + below


class _Datagrams(asyncio.DatagramProtocol):
    """Keeps the last error the socket reported (a collector that is not listening answers ICMP)."""

    def __init__(self) -> None:
        self.error: OSError | None = None

    def error_received(self, exc: Exception) -> None:
        self.error = exc if isinstance(exc, OSError) else OSError(str(exc))


def tls_context(
    ca_file: Path | str | None, client_cert: Path | str | None, client_key: Path | str | None
) -> ssl.SSLContext:
    """Verifies the collector's certificate and name against `ca_file` (the system's CAs without one);
    presents a client certificate when the collector asks for mutual TLS."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot read the CA file: {_describe(exc)}", field="ca_file") from exc
    if client_cert:
        try:
            context.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the client certificate: {_describe(exc)}", field="client_cert") from exc
    elif client_key:
        raise ConfigError("client_key is set without client_cert", field="client_key")
    return context


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
