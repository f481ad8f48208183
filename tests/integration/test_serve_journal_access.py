"""Who may send journal reports to `mailwarden serve`: networks, SMTP AUTH, TLS client certificates.

Anyone who can reach an open journal listener could write message history; each test runs a real
`serve` process with one rule and checks that a copy from a client the rule admits is recorded and
one from any other client is refused at MAIL FROM and never recorded.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailwarden.ingest.access import hash_password
from tests.integration.harness import Mailwarden, eventually, free_port, organisation

pytestmark = pytest.mark.integration

PASSWORD = "journal sender password"
FORGED_FROM = "127.0.0.2"  # a loopback address outside 127.0.0.1/32: "somebody else on the network"


def start(mw: Mailwarden, journal_access: str) -> int:
    mw.listeners = {"journal": free_port()}
    mw.write_config(journal_access=journal_access)
    mw.import_organisation(organisation(monitor_only=True, domains=[{"name": "example.com"}]))
    mw.start()
    return mw.listeners["journal"]


def journal_copy(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "partner@example.org"
    msg["To"] = "alice@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    msg.set_content("Body\n")
    return msg.as_bytes(policy=SMTP)


def recorded_subjects(mw: Mailwarden) -> set[str]:
    return {m.summary.subject for m in mw.messages()}


def wait_until_recorded(mw: Mailwarden, subject: str) -> None:
    eventually(lambda: subject in recorded_subjects(mw), timeout=30)


def mail_from(client: smtplib.SMTP) -> tuple[int, bytes]:
    return client.mail("partner@example.org")


def send(client: smtplib.SMTP, mw: Mailwarden, subject: str) -> None:
    client.sendmail("partner@example.org", [mw.journal_address], journal_copy(subject))


# ---- networks ----------------------------------------------------------------------------------
def test_a_copy_from_outside_the_allowed_networks_is_refused_and_never_recorded(mw: Mailwarden) -> None:
    port = start(mw, 'allowed_networks = ["127.0.0.1/32"]')
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(FORGED_FROM, 0)) as forger:
        forger.ehlo("forger.example.net")
        code, text = mail_from(forger)
        assert (code, text) == (550, b"5.7.1 Client host not allowed to send journal reports to this service")
        code, _ = forger.rcpt(mw.journal_address)
        assert code == 503  # no transaction was opened
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=("127.0.0.1", 0)) as provider:
        send(provider, mw, "from the provider")
    wait_until_recorded(mw, "from the provider")
    assert recorded_subjects(mw) == {"from the provider"}


# ---- SMTP AUTH ---------------------------------------------------------------------------------
def test_a_copy_from_an_authenticated_sender_is_recorded_and_one_without_auth_refused(mw: Mailwarden) -> None:
    port = start(mw, f'auth_users = {{ "journal-sender" = "{hash_password(PASSWORD)}" }}')
    unverified = ssl._create_unverified_context()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as anonymous:
        anonymous.starttls(context=unverified)
        anonymous.ehlo("forger.example.net")
        assert mail_from(anonymous) == (530, b"5.7.0 Authentication required")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as wrong:
        wrong.starttls(context=unverified)
        wrong.ehlo("forger.example.net")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            wrong.login("journal-sender", "a guess")
        assert mail_from(wrong)[0] == 530
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as sender:
        sender.starttls(context=unverified)
        sender.ehlo("journal.example.com")
        sender.login("journal-sender", PASSWORD)
        send(sender, mw, "authenticated copy")
    wait_until_recorded(mw, "authenticated copy")
    assert recorded_subjects(mw) == {"authenticated copy"}


# ---- TLS client certificates -------------------------------------------------------------------
@dataclass
class Pki:
    """A CA the listener trusts, client certificates it issued, and one from a CA it does not trust."""

    ca: Path
    provider: tuple[Path, Path]
    wrong_name: tuple[Path, Path]
    untrusted: tuple[Path, Path]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _client(directory: Path, subject: str, ca: tuple[x509.Name, ec.EllipticCurvePrivateKey]) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    return _write(directory, subject, _issue(subject, key, ca), key)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    directory = tmp_path / "pki"
    directory.mkdir()
    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("Journal CA", ca_key, None)
    ca_path, _ = _write(directory, "ca", ca_cert, ca_key)
    trusted = (ca_cert.subject, ca_key)
    untrusted = (_issue("Another CA", other_key, None).subject, other_key)
    return Pki(
        ca=ca_path,
        provider=_client(directory, "journal.provider.test", trusted),
        wrong_name=_client(directory, "someone.else.test", trusted),
        untrusted=_client(directory, "journal.provider.test.untrusted", untrusted),
    )


def tls_with(certificate: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl._create_unverified_context()
    if certificate is not None:
        context.load_cert_chain(*certificate)
    return context


def test_a_copy_with_a_client_certificate_from_the_ca_is_recorded_others_refused(mw: Mailwarden, pki: Pki) -> None:
    port = start(mw, f'tls_client_ca = "{pki.ca}"\ntls_client_subjects = ["journal.provider.test"]')
    for certificate in (None, pki.wrong_name):
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.starttls(context=tls_with(certificate))
            client.ehlo("forger.example.net")
            assert mail_from(client) == (
                550,
                b"5.7.1 Client host not allowed to send journal reports to this service",
            ), certificate
    # a certificate no trusted CA issued ends the TLS handshake, so no command gets through
    with (
        pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)),
        smtplib.SMTP("127.0.0.1", port, timeout=30) as client,
    ):
        client.starttls(context=tls_with(pki.untrusted))
        client.ehlo("forger.example.net")
        send(client, mw, "untrusted certificate")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as provider:
        provider.starttls(context=tls_with(pki.provider))
        provider.ehlo("journal.provider.test")
        send(provider, mw, "certified copy")
    wait_until_recorded(mw, "certified copy")
    assert recorded_subjects(mw) == {"certified copy"}
    assert "smtp.starttls_failed" in mw.log()  # the untrusted certificate, refused by the TLS handshake


def test_a_journal_listener_without_a_rule_stops_serve_with_the_fields_named(mw: Mailwarden) -> None:
    mw.listeners = {"journal": free_port()}
    mw.write_config(journal_access="")
    result = mw.cli("serve", check=False)
    assert result.returncode != 0
    error = " ".join(result.stderr.split())  # the console wraps long lines
    assert "smtp.listeners.0" in error
    assert "a journal listener needs allowed_networks, auth_users or tls_client_ca" in error


def test_allow_any_source_takes_every_client_and_warns_at_start(mw: Mailwarden) -> None:
    port = start(mw, "allow_any_source = true")
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(FORGED_FROM, 0)) as anyone:
        send(anyone, mw, "lab copy")
    wait_until_recorded(mw, "lab copy")
    assert "smtp.journal_open_to_any_source" in mw.log()
