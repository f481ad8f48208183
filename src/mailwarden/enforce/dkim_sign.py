"""Outbound DKIM signing (RFC 6376; Ed25519 per RFC 8463): a DKIM-Signature for the From domain's keys.

Keys are PEM (PKCS#8 or traditional), read once when the signer is built. A domain may have several keys
(an Ed25519 and an RSA one is the usual pair): the message gets one signature per key. Signatures use
relaxed/relaxed canonicalisation and sign From twice so that a second From cannot be added unnoticed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dkim  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mailwarden.errors import ConfigError

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]

# Signed when present, in this order; From is signed once more (oversigned).
SIGNED_HEADERS = (
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)


class DkimKeyConfig(BaseModel):
    """One signing key: `{ domain = "example.com", selector = "s1", private_key = "/etc/mailwarden/s1.pem" }`."""

    model_config = ConfigDict(extra="forbid")

    domain: str = Field(min_length=3)
    selector: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    algorithm: Algorithm = "rsa-sha256"
    private_key: Path | None = Field(None, description="PEM file")
    private_key_pem: str | None = Field(None, description="the PEM itself (e.g. from an environment variable)")

    @model_validator(mode="after")
    def _one_source(self) -> DkimKeyConfig:
        if (self.private_key is None) == (self.private_key_pem is None):
            raise ValueError("give exactly one of private_key (a PEM file) and private_key_pem")
        return self


class DkimSigningConfig(BaseModel):
    """`[dkim]`: the keys outbound mail is signed with."""

    model_config = ConfigDict(extra="forbid")

    keys: list[DkimKeyConfig] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: Algorithm
    private_key: Path | bytes  # a PEM file or the PEM bytes


@dataclass(frozen=True, slots=True)
class _Loaded:
    domain: str
    selector: str
    algorithm: Algorithm
    dkimpy_key: bytes  # what dkimpy signs with: PKCS#1 PEM (RSA) or the base64 seed (Ed25519)
    public_record: str  # the TXT record to publish at selector._domainkey.domain


class DkimSigner:
    """Signs outbound mail. Build it once at start-up; a bad key stops start-up with a ConfigError."""

    def __init__(self, keys: Iterable[DkimKey]) -> None:
        self._keys: dict[str, list[_Loaded]] = {}
        for key in keys:
            loaded = _load(key)
            self._keys.setdefault(loaded.domain, []).append(loaded)

    @classmethod
    def from_config(cls, config: DkimSigningConfig) -> DkimSigner:
        return cls(
            DkimKey(
                k.domain,
                k.selector,
                k.algorithm,
                k.private_key if k.private_key is not None else (k.private_key_pem or "").encode(),
            )
            for k in config.keys
        )

    @property
    def domains(self) -> list[str]:
        return sorted(self._keys)

    def public_records(self) -> dict[str, str]:
        """`selector._domainkey.domain` → the TXT record to publish, for every key."""
        return {f"{k.selector}._domainkey.{k.domain}": k.public_record for ks in self._keys.values() for k in ks}

    def sign(self, raw: bytes, domain: str) -> bytes:
        """The message with a DKIM-Signature per key of `domain` prepended; unchanged when it has none."""
        keys = self._keys.get(domain.lower().rstrip("."))
        if not keys:
            return raw
        linesep = b"\r\n" if b"\r\n" in raw.split(b"\n\n", 1)[0] or raw.startswith(b"\r\n") else b"\n"
        signatures = [_signature(raw, key, linesep) for key in keys]
        return b"".join(signatures) + raw


def _signature(raw: bytes, key: _Loaded, linesep: bytes) -> bytes:
    signer = dkim.DKIM(raw, signature_algorithm=key.algorithm.encode(), linesep=linesep)
    present = {name.lower().decode("ascii", "replace") for name, _ in signer.headers}
    headers = [h for h in SIGNED_HEADERS if h in present or h == "from"]
    try:
        header: bytes = signer.sign(
            key.selector.encode(),
            key.domain.encode(),
            key.dkimpy_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[h.encode() for h in (*headers, "from")],
        )
    except dkim.DKIMException as exc:
        raise ValueError(f"cannot sign for {key.domain}: {exc}") from exc
    return header


def _load(key: DkimKey) -> _Loaded:
    where = f"dkim.keys[{key.domain}/{key.selector}]"
    try:
        pem = key.private_key.read_bytes() if isinstance(key.private_key, Path) else key.private_key
        private = serialization.load_pem_private_key(pem, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load the private key: {exc}", field=where) from None
    if key.algorithm == "rsa-sha256":
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ConfigError("rsa-sha256 needs an RSA key", field=where)
        if private.key_size < 1024:
            raise ConfigError(f"RSA key of {private.key_size} bits is too small (1024 at least)", field=where)
        dkimpy_key = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        record = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    else:
        if not isinstance(private, ed25519.Ed25519PrivateKey):
            raise ConfigError("ed25519-sha256 needs an Ed25519 key", field=where)
        seed = private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        dkimpy_key = base64.b64encode(seed)
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        record = f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"
    return _Loaded(key.domain.lower().rstrip("."), key.selector, key.algorithm, dkimpy_key, record)
