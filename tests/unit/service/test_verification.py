"""The per-domain verifiers of the inbound listeners: built from the domain's settings, rebuilt on change."""

from __future__ import annotations

from typing import Any

from mailwarden.model import ConnectionMode, Domain
from mailwarden.model.recipients import LdapLookup, RecipientVerification
from mailwarden.service.verification import DomainVerifiers


class Directory:
    def __init__(self, lookup: LdapLookup, password: str | None) -> None:
        self.password = password
        self.closed = False

    def exists(self, search_filter: str) -> bool:
        return search_filter == "(mail=alice@example.com)"

    def close(self) -> None:
        self.closed = True


class Directories:
    def __init__(self) -> None:
        self.made: list[Directory] = []

    def __call__(self, lookup: LdapLookup, password: str | None, timeout: float) -> Directory:
        self.made.append(Directory(lookup, password))
        return self.made[-1]


def domain(**verification: Any) -> Domain:
    settings = RecipientVerification.model_validate(verification)
    return Domain("example.com", ConnectionMode.GATEWAY, "127.0.0.1:2525", recipient_verification=settings)


LDAP = {"url": "ldap://dc1.example.com", "base": "dc=example,dc=com", "filter": "(mail={address})"}


async def test_mode_none_accepts_every_address() -> None:
    assert await DomainVerifiers(secrets={}, helo="gw.test").check(domain(), "anyone@example.com") is None


async def test_the_bind_password_comes_from_the_named_secret() -> None:
    directories = Directories()
    verifiers = DomainVerifiers(secrets={"acme_ldap": "pw"}, helo="gw.test", ldap_directory=directories)
    ldap = domain(mode="ldap", ldap={**LDAP, "bind_dn": "cn=svc", "bind_password_secret": "acme_ldap"})
    assert await verifiers.check(ldap, "alice@example.com") is None
    refused = await verifiers.check(ldap, "bob@example.com")
    assert str(refused) == "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown"
    assert [d.password for d in directories.made] == ["pw"]  # one client for the domain, kept
    await verifiers.close()
    assert directories.made[0].closed


async def test_a_missing_secret_defers_mail_instead_of_accepting_or_refusing_it() -> None:
    verifiers = DomainVerifiers(secrets={}, helo="gw.test", ldap_directory=Directories())
    ldap = domain(mode="ldap", ldap={**LDAP, "bind_dn": "cn=svc", "bind_password_secret": "acme_ldap"})
    reply = await verifiers.check(ldap, "alice@example.com")
    assert reply is not None and (reply.code, reply.status) == (451, "4.4.3")


async def test_changed_settings_replace_the_verifier_and_close_the_old_one() -> None:
    directories = Directories()
    verifiers = DomainVerifiers(secrets={}, helo="gw.test", ldap_directory=directories)
    assert await verifiers.check(domain(mode="ldap", ldap=LDAP), "alice@example.com") is None
    listed = domain(mode="list", addresses=["bob@example.com"])
    assert await verifiers.check(listed, "alice@example.com") is not None
    assert await verifiers.check(listed, "bob@example.com") is None
    assert directories.made[0].closed
    assert await verifiers.check(domain(), "alice@example.com") is None  # switched off


async def test_a_verifier_that_raises_defers_the_address() -> None:
    class Failing(Directory):
        def exists(self, search_filter: str) -> bool:
            raise RuntimeError("bug")

    class Broken(Directories):
        def __call__(self, lookup: LdapLookup, password: str | None, timeout: float) -> Directory:
            raise RuntimeError("bug")

    failing = DomainVerifiers(secrets={}, helo="gw.test", ldap_directory=lambda lookup, pw, t: Failing(lookup, pw))
    broken = DomainVerifiers(secrets={}, helo="gw.test", ldap_directory=Broken())
    for verifiers in (failing, broken):
        reply = await verifiers.check(domain(mode="ldap", ldap=LDAP), "alice@example.com")
        assert reply is not None and (reply.code, reply.status) == (451, "4.4.3")
        await verifiers.close()
