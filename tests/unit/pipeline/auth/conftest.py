"""Keys, signed messages and scan contexts for the authentication tests (all DNS on loopback)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwarden.dns import DnsConfig, DnsResolver
from mailwarden.enforce.dkim_sign import DkimKey, DkimSigner
from mailwarden.pipeline.auth import AuthenticationStage
from mailwarden.pipeline.services import StageServices
from tests.dnsserver import DnsServer


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="session")
def rsa_pem() -> bytes:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="session")
def ed25519_pem() -> bytes:
    return _pem(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture
def publish_signer(dns_server: DnsServer, rsa_pem: bytes) -> Callable[..., DkimSigner]:
    """A signer for the given (domain, selector) pairs whose public keys are in the loopback DNS."""

    def factory(*keys: tuple[str, str], pem: bytes | None = None, algorithm: str = "rsa-sha256") -> DkimSigner:
        signer = DkimSigner([DkimKey(d, s, algorithm, pem or rsa_pem) for d, s in keys])  # type: ignore[arg-type]
        for name, record in signer.public_records().items():
            dns_server.add(name, "TXT", record)
        return signer

    return factory


@pytest.fixture
def fast_resolver(dns_server: DnsServer) -> DnsResolver:
    """For time-out tests: gives up quickly."""
    return DnsResolver(DnsConfig(nameservers=["127.0.0.1"], port=dns_server.port, timeout=0.3))


@pytest.fixture
def make_stage(dns_server: DnsServer, tmp_path: Path) -> Callable[..., AuthenticationStage]:
    """A stage whose resolver does not cache, so a test may change the zone between scans."""

    def factory(**config: object) -> AuthenticationStage:
        settings = {"authserv_id": "mw.example.com", **config}
        resolver = DnsResolver(DnsConfig(nameservers=["127.0.0.1"], port=dns_server.port, timeout=0.5, cache_size=0))
        return AuthenticationStage.from_services(StageServices(resolver, tmp_path, {"auth": settings}))

    return factory
