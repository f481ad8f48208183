from __future__ import annotations

import pytest

from mailwarden.errors import NotFoundError, PolicyError
from mailwarden.model import ConnectionMode, Policy
from mailwarden.model.policy import OrganisationDocument, SpamVerdictAction, parse_organisation_document
from mailwarden.store import Database, PolicyStore
from mailwarden.store.audit import AuditLog
from mailwarden.store.schema import OrganisationRow


def document(
    name: str = "corp", domains: tuple[str, ...] = ("corp.example",), **policy: object
) -> OrganisationDocument:
    return parse_organisation_document(
        {
            "name": name,
            "monitor_only": False,
            "domains": [
                {"name": domains[0], "mode": "gateway", "next_hop": "mx.internal.corp.example:25", "require_tls": True},
                *({"name": d} for d in domains[1:]),
            ]
            if domains
            else [],
            "policy": policy,
        }
    )


def normal(doc: OrganisationDocument) -> OrganisationDocument:
    """The document as validated from its own JSON (the model sorts file types only when it validates them)."""
    return OrganisationDocument.model_validate(doc.model_dump(mode="json"))


def test_import_then_export_round_trips(policies: PolicyStore) -> None:
    doc = document(domains=("corp.example", "corp-mail.example"), spam={"actions": {"spam": "quarantine"}})
    org = policies.import_document(doc)
    assert org.id is not None and org.name == "corp" and org.monitor_only is False
    assert org.domain_names == {"corp.example", "corp-mail.example"}
    exported = policies.export_document("corp")
    assert [d.name for d in exported.domains] == ["corp-mail.example", "corp.example"]  # sorted by name
    by_name = sorted(doc.domains, key=lambda d: d.name)
    assert normal(exported) == normal(doc.model_copy(update={"domains": tuple(by_name)}))
    assert policies.get_policy("corp").spam.actions.spam is SpamVerdictAction.QUARANTINE
    gateway = policies.get_organisation("corp").domain("corp.example")
    assert gateway is not None and gateway.mode is ConnectionMode.GATEWAY and gateway.require_tls


def test_reimport_replaces_the_domain_set_and_bumps_the_version(policies: PolicyStore) -> None:
    policies.import_document(document(domains=("corp.example", "old.example")))
    assert policies.policy_version("corp") == 1
    policies.import_document(document(domains=("corp.example", "new.example")), actor="admin@corp.example")
    assert policies.get_organisation("corp").domain_names == {"corp.example", "new.example"}
    assert policies.organisation_for_domain("old.example") is None
    assert policies.policy_version("corp") == 2
    assert [o.name for o in policies.list_organisations()] == ["corp"]
    entry = AuditLog(policies.db).newest()[0]
    assert (entry["actor"], entry["action"], entry["object"]) == (
        "admin@corp.example",
        "organisation.import",
        "organisation:corp",
    )
    assert [d["name"] for d in entry["before"]["domains"]] == ["corp.example", "old.example"]
    assert [d["name"] for d in entry["after"]["domains"]] == ["corp.example", "new.example"]


def test_domain_owned_by_another_organisation_is_refused_and_nothing_changes(policies: PolicyStore) -> None:
    policies.import_document(document("acme", ("acme.example",)))
    policies.import_document(document("corp", ("corp.example",)))
    before = policies.export_document("corp")
    audit_before = len(AuditLog(policies.db).newest())

    clash = document("corp", ("corp.example", "acme.example", "extra.example"), spam={"bcl_threshold": 4})
    with pytest.raises(PolicyError, match=r"domain acme\.example already belongs to organisation acme"):
        policies.import_document(clash)
    assert policies.export_document("corp") == before
    assert policies.policy_version("corp") == 1
    assert policies.organisation_for_domain("extra.example") is None
    assert len(AuditLog(policies.db).newest()) == audit_before

    with pytest.raises(PolicyError, match=r"acme\.example"):
        policies.import_document(document("newco", ("acme.example",)))
    assert [o.name for o in policies.list_organisations()] == ["acme", "corp"]


def test_organisation_for_domain(policies: PolicyStore) -> None:
    policies.import_document(document("corp", ("corp.example", "corp.test")))
    org = policies.organisation_for_domain("Corp.Test")
    assert org is not None and org.name == "corp"
    assert policies.organisation_for_domain("sub.corp.example") is None


def test_default_policy_until_one_is_saved(policies: PolicyStore, db: Database) -> None:
    with db.session() as session:  # an organisation created before it had a policy
        session.add(OrganisationRow(name="bare", monitor_only=True))
    assert policies.get_policy("bare") == Policy()
    assert policies.policy_version("bare") == 0
    assert policies.export_document("bare").domains == ()


def test_unknown_organisation_is_named_in_the_error(policies: PolicyStore) -> None:
    for call in (
        policies.get_organisation,
        policies.get_policy,
        policies.export_document,
        lambda name: policies.set_monitor_only(name, True),
    ):
        with pytest.raises(NotFoundError, match="'ghost'"):
            call("ghost")


def test_set_monitor_only_is_audited(policies: PolicyStore) -> None:
    policies.import_document(document("corp"))
    policies.set_monitor_only("corp", True, actor="alice")
    assert policies.get_organisation("corp").monitor_only is True
    entry = AuditLog(policies.db).newest()[0]
    assert (entry["actor"], entry["action"], entry["before"], entry["after"]) == (
        "alice",
        "organisation.set_monitor_only",
        {"monitor_only": False},
        {"monitor_only": True},
    )
    policies.set_monitor_only("corp", True, actor="alice")  # no change, no audit entry
    assert len(AuditLog(policies.db).newest()) == 2


def test_recipient_verification_is_stored_with_its_domain(policies: PolicyStore) -> None:
    data = document().model_dump(mode="json")
    data["domains"][0]["recipient_verification"] = {
        "mode": "ldap",
        "ldap": {
            "url": "ldap://dc1.corp.example",
            "base": "dc=corp",
            "bind_dn": "cn=svc",
            "bind_password_secret": "corp",
        },
        "cache_unknown_seconds": 60,
    }
    doc = parse_organisation_document(data)
    org = policies.import_document(doc)
    verification = org.domain("corp.example").recipient_verification  # type: ignore[union-attr]
    assert verification.ldap is not None and verification.ldap.url == "ldap://dc1.corp.example"
    assert verification.cache_unknown_seconds == 60
    assert policies.export_document("corp") == normal(doc)
    # switched off again: the domain is back to accepting every address
    data["domains"][0]["recipient_verification"] = {"mode": "none"}
    policies.import_document(parse_organisation_document(data))
    assert policies.get_organisation("corp").domains[0].recipient_verification.mode.value == "none"
