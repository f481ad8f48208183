"""The `recipient_verification` block of a domain entry: defaults, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from mailwarden.errors import PolicyError
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.recipients import RecipientVerification, VerificationMode


def document(verification: dict[str, Any], *, mode: str = "gateway") -> dict[str, Any]:
    domain = {"name": "example.com", "mode": mode, "recipient_verification": verification}
    if mode != "journal":
        domain["next_hop"] = "mx.internal.example.com"
    return {"name": "acme", "domains": [domain]}


def errors(verification: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_organisation_document(document(verification, **kwargs))
    return "; ".join(caught.value.errors)


def test_by_default_every_address_is_accepted() -> None:
    doc = parse_organisation_document({"name": "acme", "domains": [{"name": "example.com"}]})
    assert doc.domains[0].to_domain().recipient_verification.mode is VerificationMode.NONE


def test_a_list_is_lower_cased_and_kept_in_the_domain() -> None:
    doc = parse_organisation_document(
        document({"mode": "list", "addresses": ["Alice@Example.com", "<bob@example.com>"]})
    )
    assert doc.domains[0].to_domain().recipient_verification.addresses == ("alice@example.com", "bob@example.com")


@pytest.mark.parametrize(
    ("verification", "expected"),
    [
        ({"mode": "list"}, "domains.0.recipient_verification: mode 'list' needs at least one address"),
        (
            {"mode": "list", "addresses": ["alice"]},
            "domains.0.recipient_verification.addresses: 'alice' is not a mailbox",
        ),
        ({"mode": "list", "addresses": ["alice@example.net"]}, "alice@example.net is not an address of example.com"),
        ({"mode": "call_ahead", "addresses": ["a@example.com"]}, "addresses apply to mode 'list' only"),
        ({"mode": "ldap"}, "domains.0.recipient_verification: mode 'ldap' needs an ldap block"),
        ({"mode": "sometimes"}, "domains.0.recipient_verification.mode: Input should be"),
        ({"mode": "call_ahead", "timeout_seconds": 0}, "domains.0.recipient_verification.timeout_seconds"),
        ({"mode": "call_ahead", "recipient_delimiter": "++"}, "recipient_verification.recipient_delimiter"),
    ],
)
def test_a_bad_block_names_its_field(verification: dict[str, Any], expected: str) -> None:
    assert expected in errors(verification)


LDAP = {"url": "ldaps://dc1.example.com", "base": "dc=example,dc=com"}


@pytest.mark.parametrize(
    ("ldap", "expected"),
    [
        ({**LDAP, "url": "http://dc1"}, "recipient_verification.ldap.url: String should match pattern"),
        ({**LDAP, "filter": "(mail={mailbox})"}, "recipient_verification.ldap.filter: unknown placeholder {mailbox}"),
        ({**LDAP, "filter": "(objectClass=user)"}, "the filter must contain {address} or {local}"),
        ({**LDAP, "filter": "(mail={address}"}, "one parenthesised expression"),
        ({**LDAP, "bind_dn": "cn=svc,dc=example,dc=com"}, "bind_dn and bind_password_secret go together"),
        ({**LDAP, "bind_password": "hunter2"}, "recipient_verification.ldap.bind_password: Extra inputs"),
        (
            {**LDAP, "bind_dn": "cn=svc", "bind_password_secret": "Acme-LDAP"},
            "ldap.bind_password_secret: String should",
        ),
    ],
)
def test_a_bad_ldap_block_names_its_field(ldap: dict[str, Any], expected: str) -> None:
    assert expected in errors({"mode": "ldap", "ldap": ldap})


def test_ldap_settings_belong_to_mode_ldap_only() -> None:
    assert "the ldap block applies to mode 'ldap' only" in errors({"mode": "call_ahead", "ldap": LDAP})


def test_journal_domains_are_never_verified() -> None:
    assert "recipient_verification applies to gateway and mailflow domains" in errors(
        {"mode": "list", "addresses": ["alice@example.com"]}, mode="journal"
    )


def test_the_password_is_named_never_written() -> None:
    settings = RecipientVerification.model_validate(
        {"mode": "ldap", "ldap": {**LDAP, "bind_dn": "cn=svc,dc=example,dc=com", "bind_password_secret": "acme_ldap"}}
    )
    assert settings.ldap is not None
    assert settings.ldap.bind_password_secret == "acme_ldap"
    assert settings.ldap.filter == "(|(mail={address})(proxyAddresses=smtp:{address}))"
