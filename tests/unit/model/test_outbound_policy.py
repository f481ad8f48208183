"""The outbound spam policy section: EOP's defaults, its limits' range, and a lossless export/import."""

from __future__ import annotations

import pytest
import yaml

from mailwarden.errors import PolicyError
from mailwarden.model import Policy
from mailwarden.model.outbound import LimitAction
from mailwarden.model.policy import parse_organisation_document


def test_zero_limits_mean_eops_recommended_values_and_the_action_is_block_for_today() -> None:
    outbound = Policy().outbound_spam
    assert (outbound.external_per_hour, outbound.internal_per_hour, outbound.per_day) == (0, 0, 0)
    assert (
        outbound.effective_external_per_hour,
        outbound.effective_internal_per_hour,
        outbound.effective_per_day,
    ) == (500, 1000, 1000)
    assert outbound.action_at_limit is LimitAction.BLOCK_USER_FOR_TODAY
    assert outbound.restrict_after_spam == 0 and outbound.bcc_suspicious is None


def test_a_set_limit_replaces_the_default() -> None:
    doc = parse_organisation_document({"name": "acme", "policy": {"outbound_spam": {"external_per_hour": 400}}})
    assert doc.policy.outbound_spam.effective_external_per_hour == 400
    assert doc.policy.outbound_spam.effective_per_day == 1000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("external_per_hour", 10001),
        ("per_day", -1),
        ("action_at_limit", "block_forever"),
        ("notify_admins", ["not-an-address"]),
        ("bcc_suspicious", "nobody"),
        ("window_hours", 0),
        ("restrict_after_spmm", 3),
    ],
)
def test_bad_fields_are_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(PolicyError, match=rf"policy\.outbound_spam\.{field}"):
        parse_organisation_document({"name": "acme", "policy": {"outbound_spam": {field: value}}})


def test_export_and_import_round_trip() -> None:
    section = {
        "external_per_hour": 400,
        "internal_per_hour": 800,
        "per_day": 800,
        "action_at_limit": "block_user",
        "notify_admins": ["soc@example.com", "postmaster@example.com"],
        "bcc_suspicious": "review@example.com",
        "restrict_after_spam": 5,
        "window_hours": 2.5,
    }
    doc = parse_organisation_document({"name": "acme", "policy": {"outbound_spam": section}})
    assert doc.policy.outbound_spam.action_at_limit is LimitAction.BLOCK_USER
    exported = yaml.safe_load(yaml.safe_dump(doc.model_dump(mode="json"), sort_keys=False))
    assert exported["policy"]["outbound_spam"] == section
    assert parse_organisation_document(exported) == doc
