"""`can`: who may do what to which entry, as the service, the API and the console all ask it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from mailwarden.model.policy import EndUserAccess, Policy, QuarantinePermissions
from mailwarden.model.quarantine import Entry, Operation, Reason, Role, Status, can

T = datetime(2026, 11, 1, tzinfo=UTC)
BOB = "bob@corp.example"


def entry(reason: Reason, status: Status = Status.HELD, *, would_have: bool = False) -> Entry:
    return Entry(
        id="01JCDE0000000000000000000A",
        message_id="01JCDE0000000000000000000B",
        organisation="corp",
        recipient=BOB,
        reason=reason,
        sender="x@bad.example",
        subject="s",
        received_at=T,
        expires_at=T,
        status=status,
        would_have=would_have,
        blob_key=None if would_have else "quarantine-x.eml",
        sha256="00" * 32,
        size=10,
    )


DEFAULT = Policy()


@pytest.mark.parametrize(
    ("reason", "admin", "analyst", "user"),
    [
        (Reason.SPAM, True, True, True),
        (Reason.BULK, True, True, True),
        (Reason.HIGH_CONFIDENCE_SPAM, True, False, True),
        (Reason.PHISH, True, False, False),
        (Reason.HIGH_CONFIDENCE_PHISH, True, False, False),
        (Reason.MALWARE, True, False, False),
        (Reason.RULE, True, False, False),
        (Reason.DLP, True, False, False),
    ],
)
def test_release_matrix_with_default_policy(reason: Reason, admin: bool, analyst: bool, user: bool) -> None:
    e = entry(reason)
    assert can(Role.ADMIN, Operation.RELEASE, e, DEFAULT) is admin
    assert can(Role.ANALYST, Operation.RELEASE, e, DEFAULT) is analyst
    assert can(Role.USER, Operation.RELEASE, e, DEFAULT, address=BOB) is user


def test_users_act_on_their_own_entries_only() -> None:
    e = entry(Reason.SPAM)
    assert can(Role.USER, Operation.VIEW, e, DEFAULT, address="BOB@corp.example")
    assert not can(Role.USER, Operation.VIEW, e, DEFAULT, address="carol@corp.example")
    assert not can(Role.USER, Operation.RELEASE, e, DEFAULT, address="carol@corp.example")
    assert not can(Role.USER, Operation.VIEW, e, DEFAULT)  # a user without an address owns nothing


def test_phish_is_requested_by_users_and_decided_by_admins() -> None:
    e = entry(Reason.PHISH)
    assert can(Role.USER, Operation.REQUEST_RELEASE, e, DEFAULT, address=BOB)
    assert not can(Role.ADMIN, Operation.REQUEST_RELEASE, e, DEFAULT)  # admins release directly
    asked = replace(e, status=Status.RELEASE_REQUESTED)
    assert not can(Role.USER, Operation.REQUEST_RELEASE, asked, DEFAULT, address=BOB)
    assert can(Role.ADMIN, Operation.APPROVE, asked, DEFAULT)
    assert can(Role.ADMIN, Operation.DENY, asked, DEFAULT)
    assert not can(Role.ANALYST, Operation.APPROVE, asked, DEFAULT)
    assert not can(Role.ADMIN, Operation.APPROVE, e, DEFAULT)  # nothing was requested


def test_admin_only_entries_are_invisible_to_users() -> None:
    for reason in (Reason.MALWARE, Reason.HIGH_CONFIDENCE_PHISH):
        e = entry(reason)
        assert not any(can(Role.USER, op, e, DEFAULT, address=BOB) for op in Operation)
        assert can(Role.ANALYST, Operation.VIEW, e, DEFAULT)
        assert can(Role.ANALYST, Operation.PREVIEW, e, DEFAULT)


def test_policy_can_let_users_request_malware_but_never_release_it() -> None:
    policy = Policy(quarantine_permissions=QuarantinePermissions(malware=EndUserAccess.REQUEST))
    e = entry(Reason.MALWARE)
    assert can(Role.USER, Operation.REQUEST_RELEASE, e, policy, address=BOB)
    assert not can(Role.USER, Operation.RELEASE, e, policy, address=BOB)
    with pytest.raises(ValidationError, match="at most request"):
        QuarantinePermissions(high_confidence_phish=EndUserAccess.RELEASE)


def test_policy_can_take_spam_away_from_users() -> None:
    policy = Policy(quarantine_permissions=QuarantinePermissions(spam=EndUserAccess.REQUEST))
    e = entry(Reason.SPAM)
    assert not can(Role.USER, Operation.RELEASE, e, policy, address=BOB)
    assert can(Role.USER, Operation.REQUEST_RELEASE, e, policy, address=BOB)


def test_downloads_are_for_administrators_and_analysts() -> None:
    e = entry(Reason.SPAM)
    assert can(Role.ADMIN, Operation.DOWNLOAD, e, DEFAULT)
    assert can(Role.ANALYST, Operation.DOWNLOAD, e, DEFAULT)
    assert not can(Role.USER, Operation.DOWNLOAD, e, DEFAULT, address=BOB)


def test_analysts_read_and_release_but_do_not_delete() -> None:
    e = entry(Reason.SPAM)
    assert not can(Role.ANALYST, Operation.DELETE, e, DEFAULT)
    assert can(Role.USER, Operation.DELETE, e, DEFAULT, address=BOB)
    assert can(Role.ADMIN, Operation.DELETE, e, DEFAULT)


def test_monitor_mode_entries_offer_no_release_or_preview() -> None:
    e = entry(Reason.SPAM, would_have=True)
    assert can(Role.ADMIN, Operation.VIEW, e, DEFAULT)
    for op in (Operation.RELEASE, Operation.PREVIEW, Operation.DOWNLOAD, Operation.REQUEST_RELEASE):
        assert not can(Role.ADMIN, op, e, DEFAULT)
        assert not can(Role.USER, op, e, DEFAULT, address=BOB)


def test_finished_entries_cannot_be_released_again() -> None:
    for status in (Status.RELEASED, Status.DELETED, Status.EXPIRED):
        assert not can(Role.ADMIN, Operation.RELEASE, entry(Reason.SPAM, status), DEFAULT)
    assert can(Role.ADMIN, Operation.RELEASE, entry(Reason.PHISH, Status.DENIED), DEFAULT)
    assert not can(Role.USER, Operation.VIEW, entry(Reason.SPAM, Status.DELETED), DEFAULT, address=BOB)
