"""Outbound DKIM signing: signed here, verified by our verifier and by dkimpy against loopback DNS."""

from __future__ import annotations

from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailwarden.dns import DnsResolver
from mailwarden.enforce.dkim_sign import DkimKey, DkimSigner, DkimSigningConfig
from mailwarden.errors import ConfigError
from mailwarden.pipeline.auth.dkim import DkimResult, verify
from tests.dnsserver import DnsServer
from tests.factories import build_message


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("keys") / "rsa.pem"
    path.write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    return path, pem(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture
def signer(keys: tuple[Path, bytes], dns_server: DnsServer) -> DkimSigner:
    rsa_path, ed_pem = keys
    signer = DkimSigner(
        [
            DkimKey("example.com", "rsa1", "rsa-sha256", rsa_path),
            DkimKey("example.com", "ed1", "ed25519-sha256", ed_pem),
        ]
    )
    for name, record in signer.public_records().items():
        dns_server.add(name, "TXT", record)
    return signer


def dnsfunc(dns_server: DnsServer):  # dkimpy asks our loopback records, never the internet
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        values = dns_server.records.get(name.decode().rstrip(".").lower(), {}).get("TXT")
        return values[0].encode() if values else None

    return lookup


async def test_both_keys_sign_and_both_verify(signer: DkimSigner, dns_server: DnsServer, resolver: DnsResolver) -> None:
    raw = signer.sign(build_message(sender="Ann <ann@example.com>"), "example.com")
    assert raw.count(b"DKIM-Signature:") == 2
    results = await verify(raw, resolver)
    assert {(r.selector, r.algorithm, r.result) for r in results} == {
        ("rsa1", "rsa-sha256", DkimResult.PASS),
        ("ed1", "ed25519-sha256", DkimResult.PASS),
    }
    assert dkim.verify(raw, dnsfunc=dnsfunc(dns_server))


async def test_relaxed_oversigned_from_and_header_list(signer: DkimSigner) -> None:
    raw = signer.sign(build_message(), "example.com")
    sig = dkim.util.parse_tag_value(dkim.DKIM(raw).headers[0][1])
    assert sig[b"c"] == b"relaxed/relaxed"
    signed = [h.strip() for h in sig[b"h"].split(b":")]
    assert signed.count(b"from") == 2
    for name in (b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type"):
        assert name in signed


async def test_modified_body_fails(signer: DkimSigner, resolver: DnsResolver, dns_server: DnsServer) -> None:
    raw = signer.sign(build_message(), "example.com").replace(b"Hello Bob", b"Hello Eve")
    assert {r.result for r in await verify(raw, resolver)} == {DkimResult.FAIL}
    assert not dkim.verify(raw, dnsfunc=dnsfunc(dns_server))


async def test_added_from_header_breaks_the_signature(signer: DkimSigner, resolver: DnsResolver) -> None:
    raw = signer.sign(build_message(), "example.com")
    forged = raw.replace(b"From: ", b"From: ceo@example.com\r\nFrom: ", 1)
    assert {r.result for r in await verify(forged, resolver)} == {DkimResult.FAIL}


def test_unknown_domain_is_left_alone_and_lf_messages_keep_lf(signer: DkimSigner) -> None:
    raw = build_message()
    assert signer.sign(raw, "other.example") is raw
    lf = raw.replace(b"\r\n", b"\n")
    signed = signer.sign(lf, "EXAMPLE.com")
    assert b"\r\n" not in signed and signed.endswith(lf)


def test_bad_keys_stop_start_up(keys: tuple[Path, bytes], tmp_path: Path) -> None:
    rsa_path, ed_pem = keys
    with pytest.raises(ConfigError, match="needs an RSA key"):
        DkimSigner([DkimKey("example.com", "s", "rsa-sha256", ed_pem)])
    with pytest.raises(ConfigError, match="needs an Ed25519 key"):
        DkimSigner([DkimKey("example.com", "s", "ed25519-sha256", rsa_path)])
    with pytest.raises(ConfigError, match=r"dkim\.keys\[example\.com/s\]"):
        DkimSigner([DkimKey("example.com", "s", "rsa-sha256", tmp_path / "missing.pem")])


def test_config_model(keys: tuple[Path, bytes]) -> None:
    rsa_path, ed_pem = keys
    config = DkimSigningConfig.model_validate(
        {
            "keys": [
                {"domain": "example.com", "selector": "rsa1", "private_key": str(rsa_path)},
                {
                    "domain": "example.com",
                    "selector": "ed1",
                    "algorithm": "ed25519-sha256",
                    "private_key_pem": ed_pem.decode(),
                },
            ]
        }
    )
    assert DkimSigner.from_config(config).domains == ["example.com"]
    with pytest.raises(ValueError, match="exactly one"):
        DkimSigningConfig.model_validate({"keys": [{"domain": "example.com", "selector": "s"}]})
