"""TLS for the SMTP listeners: the server context, and a self-signed certificate when none is configured.

Mail servers that deliver to an MX rarely verify its certificate (RFC 7435 opportunistic TLS), so a
self-signed certificate still gives encryption on the wire; an administrator who wants verified TLS
(MTA-STS, DANE, a connector that checks names) configures `smtp.tls_cert` / `smtp.tls_key`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailwarden.errors import ConfigError


def self_signed_certificate(hostname: str, *, days: int = 825) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key and a self-signed certificate for `hostname`, both PEM: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    with contextlib.suppress(ValueError):
        alt_names = [x509.IPAddress(ipaddress.ip_address(hostname))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert_pem, key_pem


def write_self_signed(cert_path: Path, key_path: Path, hostname: str) -> None:
    """Write a new self-signed pair; the key file is created readable by its owner only."""
    cert_pem, key_pem = self_signed_certificate(hostname)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    cert_path.write_bytes(cert_pem)


def server_context(cert_path: Path | None, key_path: Path | None, *, hostname: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2+) from the configured files, or from a fresh self-signed pair."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_NONE
    if cert_path is not None and key_path is not None:
        try:
            context.load_cert_chain(cert_path, key_path)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load {cert_path} / {key_path}: {exc}", field="smtp.tls_cert") from None
        return context
    # ssl can only load certificates from files: write the pair to a private directory and remove it
    with tempfile.TemporaryDirectory(prefix="mailwarden-tls-") as tmp:
        cert_file, key_file = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        write_self_signed(cert_file, key_file, hostname)
        context.load_cert_chain(cert_file, key_file)
    return context
