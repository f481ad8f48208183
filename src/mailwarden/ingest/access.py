"""Who may use an outbound or journal listener: client networks, SMTP AUTH passwords, TLS client certificates.

A client may send when it satisfies any rule the listener has: its address is in `allowed_networks`,
it authenticated as one of `auth_users`, or it presented a certificate that verified against
`tls_client_ca` and carries one of `tls_client_subjects` (any name when that list is empty).
`auth_required` makes AUTH the one rule (with `allowed_networks`, when set, narrowing where from).
Inbound listeners (an MX) and a journal listener with `allow_any_source` take every client.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailwarden.errors import ConfigError
from mailwarden.ingest import replies as r
from mailwarden.ingest.config import SmtpListenerConfig
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.tls import server_context
from mailwarden.model.listener import ListenerRole

_SCRYPT_LOG2_N, _SCRYPT_R, _SCRYPT_P = 15, 8, 1

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# ---- passwords for SMTP AUTH -------------------------------------------------------------------
def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$<log2 n>$<r>$<p>$<salt b64>$<key b64>`, the format `auth_users` takes."""
    salt = salt or os.urandom(16)
    key = _scrypt(password.encode("utf-8"), salt, _SCRYPT_LOG2_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(("scrypt", str(_SCRYPT_LOG2_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(key)))


def verify_password(password: bytes, hashed: str) -> bool:
    """True when `password` matches a `scrypt$...` or `pbkdf2_sha256$<iterations>$<salt>$<key>` hash."""
    parts = hashed.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            log2_n, block, par = int(parts[1]), int(parts[2]), int(parts[3])
            salt, key = base64.b64decode(parts[4]), base64.b64decode(parts[5])
            candidate = _scrypt(password, salt, log2_n, block, par, len(key))
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            salt, key = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            candidate = hashlib.pbkdf2_hmac("sha256", password, salt, int(parts[1]), len(key))
        else:
            return False
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(candidate, key)


def _scrypt(password: bytes, salt: bytes, log2_n: int, block: int, par: int, length: int = 32) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(password, salt=salt, n=n, r=block, p=par, dklen=length, maxmem=256 * block * n * par + 2**20)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@functools.cache
def unknown_user_hash() -> str:
    """A hash to verify against when the user name is unknown, so both cases take the same time."""
    return hash_password("unknown user", salt=b"\0" * 16)


# ---- client networks and certificates ----------------------------------------------------------
def in_networks(ip: str, networks: Iterable[Network]) -> bool:
    """True when `ip` (IPv4, IPv6, IPv4-mapped IPv6, with or without a zone) is in one of `networks`."""
    address = _client_address(ip)
    return address is not None and any(address in network for network in networks)


@functools.lru_cache(maxsize=4096)
def _client_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of a client, parsed once per address (it is checked at every MAIL FROM)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def certificate_names(peer_certificate: dict[str, Any] | None) -> frozenset[str]:
    """The subject common names and DNS subjectAltNames of a verified peer certificate, lower-cased."""
    if not peer_certificate:
        return frozenset()
    names = {value for rdn in peer_certificate.get("subject", ()) for key, value in rdn if key == "commonName"}
    names.update(value for kind, value in peer_certificate.get("subjectAltName", ()) if kind == "DNS")
    return frozenset(name.lower() for name in names)


def name_matches(pattern: str, name: str) -> bool:
    """`pattern` is a name, or `*.domain` for exactly one more label (as certificate wildcards work)."""
    if pattern.startswith("*."):
        label, dot, rest = name.partition(".")
        return bool(label) and bool(dot) and label != "*" and rest == pattern[2:]
    return name == pattern


def client_certificate_context(
    cert: Path | None, key: Path | None, *, hostname: str, client_ca: Path, field: str
) -> ssl.SSLContext:
    """A server context that asks clients for a certificate and verifies one against `client_ca`.

    A client that presents none still connects (it may qualify by network or AUTH); one whose
    certificate does not verify fails the TLS handshake (OpenSSL's rule for a requested certificate).
    """
    context = server_context(cert, key, hostname=hostname)
    try:
        context.load_verify_locations(cafile=client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load client CA certificates from {client_ca}: {exc}", field=field) from None
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


# ---- the rule ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Client:
    """What the listener knows about a client when it decides whether it may send."""

    ip: str | None
    authenticated: bool
    certificate: frozenset[str]  # names of a verified client certificate; empty without one


class ClientAccess:
    """One listener's rule for which clients may send, checked at MAIL FROM."""

    def __init__(self, config: SmtpListenerConfig) -> None:
        self.role = config.role
        self.open = config.role is ListenerRole.INBOUND or config.allow_any_source
        self.networks = tuple(config.allowed_networks)
        self.offers_auth = bool(config.auth_users)
        self.auth_required = config.auth_required
        self.checks_certificates = config.tls_client_ca is not None
        self.subjects = tuple(config.tls_client_subjects)

    def refusal(self, client: Client) -> Reply | None:
        """None when the client may send here; else the reply that refuses it (no open relay, ever)."""
        if self.open:
            return None
        in_network = client.ip is not None and in_networks(client.ip, self.networks)
        if self.auth_required:
            if self.networks and not in_network:
                return self._not_allowed
            return None if client.authenticated else r.AUTH_REQUIRED
        if in_network or client.authenticated or self.certified(client.certificate):
            return None
        return r.AUTH_REQUIRED if self.offers_auth else self._not_allowed

    def certified(self, names: frozenset[str]) -> bool:
        """True when a verified client certificate with these names qualifies."""
        if not self.checks_certificates or not names:
            return False
        return not self.subjects or any(name_matches(p, n) for p in self.subjects for n in names)

    @property
    def _not_allowed(self) -> Reply:
        return r.JOURNAL_CLIENT_NOT_ALLOWED if self.role is ListenerRole.JOURNAL else r.CLIENT_NOT_ALLOWED
