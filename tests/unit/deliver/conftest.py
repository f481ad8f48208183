"""SMTP sinks on loopback (aiosmtpd in the test's own event loop) and a self-signed certificate."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailwarden.deliver import DeliveryConfig
from tests.unit.deliver.helpers import Sink

SinkFactory = Callable[..., Awaitable[Sink]]


@pytest.fixture
async def make_sink() -> AsyncIterator[SinkFactory]:
    servers: list[asyncio.Server] = []

    async def factory(*, tls_context: ssl.SSLContext | None = None, **kwargs: Any) -> Sink:
        sink = Sink(**kwargs)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(sink, hostname="sink.test", tls_context=tls_context, decode_data=False),
            "127.0.0.1",
            0,
        )
        servers.append(server)
        sink.port = server.sockets[0].getsockname()[1]
        return sink

    yield factory
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("sink.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    yield cert_path, key_path


@pytest.fixture
def server_tls(self_signed: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    return context


@pytest.fixture
def config() -> DeliveryConfig:
    """Small time-outs and retry waits so the tests run in well under a second each."""
    return DeliveryConfig(
        hostname="gw.mailwarden.test",
        connect_timeout=2,
        command_timeout=5,
        data_timeout=5,
        first_retry=timedelta(milliseconds=50),
        max_retry=timedelta(milliseconds=200),
        poll_interval=0.05,
    )
