from __future__ import annotations

import re

import pytest

from mailwarden.errors import PolicyError
from mailwarden.model import Policy
from mailwarden.model.policy import SpamVerdictAction, parse_organisation_document


def test_defaults_follow_eop_default_policy() -> None:
    policy = Policy()
    assert policy.spam.actions.spam is SpamVerdictAction.JUNK
    assert policy.spam.actions.high_confidence_phish is SpamVerdictAction.QUARANTINE
    assert policy.spam.bcl_threshold == 7
    assert policy.quarantine_retention.spam == 15
    assert policy.quarantine_retention.malware == 30
    assert "exe" in policy.malware.blocked_file_types


def test_every_bad_field_is_named() -> None:
    with pytest.raises(PolicyError) as info:
        parse_organisation_document(
            {
                "name": "acme",
                "domains": [{"name": "example.com", "mode": "gateway"}],
                "policy": {"spam": {"bcl_threshold": 12, "actions": {"spam": "explode"}}},
            }
        )
    errors = info.value.errors
    assert any(e.startswith("domains.0:") and "next_hop" in e for e in errors)
    assert any(e.startswith("policy.spam.bcl_threshold:") for e in errors)
    assert any(e.startswith("policy.spam.actions.spam:") for e in errors)


def test_malware_filter_cannot_be_switched_off() -> None:
    with pytest.raises(PolicyError, match=r"policy\.malware\.enabled: the malware filter cannot be switched off"):
        parse_organisation_document({"name": "acme", "policy": {"malware": {"enabled": False}}})


def test_unknown_field_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"policy\.spam\.bcl_treshold"):
        parse_organisation_document({"name": "acme", "policy": {"spam": {"bcl_treshold": 5}}})


def test_redirect_needs_an_address() -> None:
    with pytest.raises(PolicyError, match="redirect_to"):
        parse_organisation_document({"name": "acme", "policy": {"spam": {"actions": {"spam": "redirect"}}}})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{subject} from {from}", "unknown placeholder {from}; use {subject}, {sender}, {recipients}"),
        ("{subject.__class__}", "unknown placeholder {subject.__class__}"),  # no attribute of a value is reachable
        ("{}", "unknown placeholder {}"),
        ("a { b", "malformed placeholder"),
        ("{subject:d}", "malformed placeholder"),  # a format a text cannot take would fail when the notice is sent
    ],
)
def test_a_notification_text_uses_only_the_named_placeholders(text: str, reason: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(f"policy.malware.notification_text: {reason}")):
        parse_organisation_document({"name": "acme", "policy": {"malware": {"notification_text": text}}})
    ok = parse_organisation_document({"name": "acme", "policy": {"malware": {"notification_text": "{sender!r:>5}"}}})
    assert ok.policy.malware.notification_text == "{sender!r:>5}"


def test_ip_lists_are_validated_and_normalised() -> None:
    doc = parse_organisation_document(
        {"name": "acme", "policy": {"lists": {"ip_allow": ["192.0.2.1", "2001:db8::/32", "198.51.100.9/24"]}}}
    )
    assert doc.policy.lists.ip_allow == ("192.0.2.1/32", "2001:db8::/32", "198.51.100.0/24")
    with pytest.raises(PolicyError, match="not an IP address"):
        parse_organisation_document({"name": "acme", "policy": {"lists": {"ip_block": ["300.1.1.1"]}}})


def test_duplicate_domain_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"listed twice: example\.com"):
        parse_organisation_document({"name": "acme", "domains": [{"name": "example.com"}, {"name": "EXAMPLE.com"}]})


def test_document_must_be_a_mapping() -> None:
    with pytest.raises(PolicyError, match="mapping"):
        parse_organisation_document(["not", "a", "mapping"])


def test_dmarc_honouring_defaults_follow_eop_and_round_trip_through_yaml() -> None:
    import yaml

    from mailwarden.model.policy import DmarcQuarantineAction, DmarcRejectAction, OrganisationDocument

    dmarc = Policy().dmarc
    assert dmarc.honour_policy is True
    assert (dmarc.quarantine_action, dmarc.reject_action) == (
        DmarcQuarantineAction.QUARANTINE,
        DmarcRejectAction.REJECT,
    )
    doc = parse_organisation_document(
        {"name": "acme", "policy": {"dmarc": {"honour_policy": False, "quarantine_action": "junk"}}}
    )
    text = yaml.safe_dump(doc.model_dump(mode="json"), sort_keys=False)
    assert "quarantine_action: junk" in text and "honour_policy: false" in text
    assert OrganisationDocument.model_validate(yaml.safe_load(text)) == doc


def test_dmarc_actions_are_the_eop_choices_only() -> None:
    with pytest.raises(PolicyError) as info:
        parse_organisation_document(
            {"name": "acme", "policy": {"dmarc": {"quarantine_action": "reject", "reject_action": "junk"}}}
        )
    errors = info.value.errors
    assert any(e.startswith("policy.dmarc.quarantine_action:") for e in errors)
    assert any(e.startswith("policy.dmarc.reject_action:") for e in errors)
