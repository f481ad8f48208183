"""Digests: who gets one, what it says, and links that work once and expire."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email.policy import default

import pytest

from mailwarden.model.policy import NotificationPolicy, Policy
from mailwarden.model.quarantine import Reason, Status
from mailwarden.quarantine.digest import Digests, LinkAction, LinkError, LinkSigner

from .world import T0, World

NOW = T0 + timedelta(hours=1)


@pytest.fixture
def digests(world: World) -> Digests:
    return Digests(
        world.quarantine,
        LinkSigner(b"k" * 32),
        public_url="https://console.corp.example/",
        hostname="mx.corp.example",
        link_lifetime=timedelta(hours=24),
        sender=world.dispatched,
        clock=lambda: NOW,
    )


def links(raw: bytes) -> dict[str, list[str]]:
    text = email.message_from_bytes(raw, policy=default).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found: dict[str, list[str]] = {}
    for label, url in re.findall(
        r"^  (Release|Request release|Preview|解放|解放を依頼|プレビュー): (\S+)\r?$", text, re.M
    ):
        found.setdefault(label, []).append(url.rsplit("/", 1)[1])
    return found


def test_a_digest_lists_new_entries_the_recipient_may_see(world: World, digests: Digests) -> None:
    world.quarantined(subject="Cheap watches")
    world.quarantined(reason=Reason.MALWARE, subject="Invoice.exe")  # admin only: not in a digest
    world.quarantined(recipients=("carol@corp.example",), subject="Bulk news", reason=Reason.BULK)

    assert digests.send_due() == 2

    by_rcpt = {call[2][0]: call for call in world.dispatched.calls}
    assert set(by_rcpt) == {"bob@corp.example", "carol@corp.example"}
    message_id, mail_from, _, raw = by_rcpt["bob@corp.example"]
    assert mail_from == "" and message_id.startswith("digest-")
    msg = email.message_from_bytes(raw, policy=default)
    assert msg["To"] == "bob@corp.example"
    assert msg.get_body(("html",)) is not None
    body = raw.decode()
    assert "Cheap watches" in body and "Invoice.exe" not in body
    assert "https://console.corp.example/quarantine/link/" in body
    assert digests.send_due() == 0  # nothing new since


def test_the_next_digest_waits_for_the_policy_frequency(world: World, digests: Digests) -> None:
    world.quarantined(subject="First")
    digests.send_due(NOW)
    world.quarantined(subject="Second", at=T0 + timedelta(minutes=30))

    assert digests.send_due(NOW + timedelta(hours=3)) == 0  # default frequency: 4 hours
    assert digests.send_due(NOW + timedelta(hours=4)) == 1
    assert b"Second" in world.dispatched.calls[-1][3] and b"First" not in world.dispatched.calls[-1][3]


def test_japanese_template(world: World, digests: Digests) -> None:
    world.policies["corp"] = Policy(notifications=NotificationPolicy(language="ja"))
    world.quarantined(subject="件名テスト")
    digests.send_due()
    msg = email.message_from_bytes(world.dispatched.calls[0][3], policy=default)
    assert "隔離" in str(msg["Subject"])
    assert "解放" in links(world.dispatched.calls[0][3])


def test_release_link_works_once(world: World, digests: Digests) -> None:
    (entry,) = world.quarantined()
    digests.send_due()
    token = links(world.dispatched.calls[0][3])["Release"][0]

    result = digests.redeem(token)

    assert result.action is LinkAction.RELEASE and result.entry.status is Status.RELEASED
    assert world.dispatched.calls[-1][2] == ("bob@corp.example",)
    with pytest.raises(LinkError) as used:
        digests.redeem(token)
    assert used.value.reason == "used"
    assert world.quarantine.get(entry.id).released_by == "bob@corp.example (digest link)"


def test_request_link_for_phish(world: World, digests: Digests) -> None:
    (entry,) = world.quarantined(reason=Reason.PHISH)
    digests.send_due()
    found = links(world.dispatched.calls[0][3])
    assert "Release" not in found
    result = digests.redeem(found["Request release"][0])
    assert result.entry.status is Status.RELEASE_REQUESTED
    assert world.quarantine.get(entry.id).status is Status.RELEASE_REQUESTED


def test_preview_link_shows_the_sanitised_message(world: World, digests: Digests) -> None:
    world.quarantined(subject="Look")
    digests.send_due()
    result = digests.redeem(links(world.dispatched.calls[0][3])["Preview"][0])
    assert result.preview is not None and ("Subject", "Look") in result.preview.headers


def test_expired_and_forged_links_are_refused(world: World, digests: Digests) -> None:
    (entry,) = world.quarantined()
    digests.send_due()
    token = links(world.dispatched.calls[0][3])["Release"][0]

    with pytest.raises(LinkError) as expired:
        digests.redeem(token, NOW + timedelta(hours=24))
    assert expired.value.reason == "expired"
    body, _, signature = token.partition(".")
    with pytest.raises(LinkError) as forged:
        digests.redeem(body + "." + signature[::-1])
    assert forged.value.reason == "invalid"
    other_key = LinkSigner(b"z" * 32).make(entry.id, LinkAction.RELEASE, NOW + timedelta(hours=1))
    with pytest.raises(LinkError):
        digests.redeem(other_key)
    assert world.quarantine.get(entry.id).status is Status.HELD


@pytest.mark.parametrize(
    ("public_url", "hostname", "sender", "waits"),
    [
        ("http://127.0.0.1:8025", "mx.corp.example", None, True),  # the links would reach nobody
        ("https://console.corp.example", "mailwarden.localdomain", None, True),  # quarantine@ a made-up host
        ("https://console.corp.example", "mailwarden.localdomain", "quarantine@corp.example", False),
        ("https://console.corp.example", "mx.corp.example", None, False),
    ],
)
def test_digests_wait_until_set_up_with_real_links_and_a_real_sender(
    world: World, public_url: str, hostname: str, sender: str | None, waits: bool
) -> None:
    world.policies["corp"] = Policy.model_validate({"notifications": {"sender": sender}})
    world.quarantined(subject="Cheap watches")
    digests = Digests(world.quarantine, LinkSigner(b"k" * 32), public_url=public_url, hostname=hostname,
                      link_lifetime=timedelta(hours=24), sender=world.dispatched, clock=lambda: NOW)  # fmt: skip
    assert digests.send_due() == (0 if waits else 1)
    if waits:  # nothing is lost: the entry is listed once the set-up is done
        assert [e.subject for e in world.quarantine.store.held_unnotified()] == ["Cheap watches"]
