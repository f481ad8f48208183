"""Recipient verification against a real OpenLDAP directory (slapd on loopback), alone and through serve."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwarden.ingest.recipients import DirectoryError, Known, Ldap3Directory, LdapVerifier, Unknown
from mailwarden.model.recipients import LdapLookup
from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, Sink, free_port, organisation
from tests.integration.slapd import BASE, SERVICE_DN, SERVICE_PASSWORD, PrivateSlapd, private_slapd

pytestmark = pytest.mark.integration


@pytest.fixture
def slapd() -> Iterator[PrivateSlapd]:
    with private_slapd() as instance:
        yield instance


def lookup(slapd: PrivateSlapd, **changes: str) -> LdapLookup:
    settings = {"url": slapd.url, "base": BASE, "bind_dn": SERVICE_DN, "bind_password_secret": "ldap", **changes}
    return LdapLookup.model_validate(settings)


def test_the_default_filter_finds_mailboxes_and_aliases(slapd: PrivateSlapd) -> None:
    directory = Ldap3Directory(lookup(slapd), SERVICE_PASSWORD, timeout=2.5)
    try:
        assert directory.exists("(mail=alice@example.com)")
        assert not directory.exists("(mail=nobody@example.com)")
    finally:
        directory.close()


async def test_the_verifier_answers_from_the_directory(slapd: PrivateSlapd) -> None:
    settings = lookup(slapd)  # the Active Directory filter: proxyAddresses is unknown to OpenLDAP, mail matches
    verifier = LdapVerifier(settings, Ldap3Directory(settings, SERVICE_PASSWORD, timeout=2.5), delimiter="+", timeout=5)
    try:
        assert isinstance(await verifier.verify("alice@example.com"), Known)
        assert isinstance(await verifier.verify("info@example.com"), Known)  # carol's second address
        assert isinstance(await verifier.verify("alice+lists@example.com"), Known)
        assert isinstance(await verifier.verify("a*@example.com"), Unknown)  # a wildcard is a literal star
        assert isinstance(await verifier.verify("nobody@example.com"), Unknown)
    finally:
        await verifier.close()


def test_a_wrong_bind_password_is_an_error_not_an_unknown_user(slapd: PrivateSlapd) -> None:
    directory = Ldap3Directory(lookup(slapd), "wrong", timeout=5)
    with pytest.raises(DirectoryError, match="invalidCredentials"):
        directory.exists("(mail=alice@example.com)")


def test_a_wrong_base_is_an_error(slapd: PrivateSlapd) -> None:
    directory = Ldap3Directory(lookup(slapd, base="ou=nowhere,dc=example,dc=com"), SERVICE_PASSWORD, timeout=2.5)
    with pytest.raises(DirectoryError, match="noSuchObject"):
        directory.exists("(mail=alice@example.com)")
    directory.close()


def test_a_restarted_server_is_reconnected_to_and_a_stopped_one_is_an_error(slapd: PrivateSlapd) -> None:
    directory = Ldap3Directory(lookup(slapd), SERVICE_PASSWORD, timeout=2.5)
    try:
        assert directory.exists("(mail=alice@example.com)")
        slapd.stop()
        slapd.start()  # the connection kept from the first search is dead now
        assert directory.exists("(mail=alice@example.com)")
        slapd.stop()
        with pytest.raises(DirectoryError):
            directory.exists("(mail=alice@example.com)")
    finally:
        directory.close()


def test_serve_refuses_users_the_directory_does_not_know(
    tmp_path: Path, dns_server: DnsServer, slapd: PrivateSlapd
) -> None:
    sink = Sink()
    sink.controller.start()
    mw = Mailwarden(tmp_path, dns_port=dns_server.port)
    # the bind password lives in the service configuration; the policy document only names it
    mw.extra_config = f'[secrets]\nacme_ldap = "{SERVICE_PASSWORD}"\n'
    mw.listeners = {"inbound": free_port()}
    try:
        mw.write_config()
        verification = {"mode": "ldap", "ldap": lookup(slapd, bind_password_secret="acme_ldap").model_dump()}
        domain = {"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}
        mw.import_organisation(
            organisation(monitor_only=False, domains=[{**domain, "recipient_verification": verification}])
        )
        exported = mw.cli("policy", "export").stdout
        assert "acme_ldap" in exported and SERVICE_PASSWORD not in exported
        mw.start()
        with smtplib.SMTP("127.0.0.1", mw.listeners["inbound"], timeout=30) as client:
            client.ehlo("client.example.org")
            client.mail("partner@example.org")
            assert client.rcpt("alice@example.com")[0] == 250
            assert client.rcpt("info@example.com")[0] == 250
            code, text = client.rcpt("bob@example.com")
            assert (code, text[:5]) == (550, b"5.1.1")
            slapd.stop()
            assert client.rcpt("alice@example.com")[0] == 250  # from the cache
            code, text = client.rcpt("dave@example.com")
            assert (code, text[:5]) == (451, b"4.4.3")
            client.rset()
    finally:
        if mw.process is not None:
            mw.kill()
        sink.controller.stop()
