"""The Gmail connector against the fake Gmail API and token endpoint over real HTTPS on loopback: the
production code, only the base URLs differ."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from pydantic import SecretStr

from mailwarden.clawback import gmail
from mailwarden.clawback.connector import ConnectorError, Folder, Found, MailboxConnector, MailboxNotFound
from mailwarden.logs import configure
from tests.fakes.gmail import FakeGmail
from tests.fakes.google_oauth import (
    FULL_SCOPE,
    GOOGLE_TOKEN_AUDIENCE,
    JWT_BEARER,
    MODIFY_SCOPE,
    READONLY_SCOPE,
    ServiceAccountKey,
    make_service_account,
    sign_assertion,
)
from tests.fakes.tls import TestPki as Pki
from tests.fakes.tls import make_pki

MID = "<campaign-1@attacker.example>"
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.org"

Connect = Callable[..., gmail.GmailConnector]


@pytest.fixture(scope="module")
def account() -> ServiceAccountKey:
    return make_service_account()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def fake(pki: Pki, account: ServiceAccountKey) -> Iterator[FakeGmail]:
    with FakeGmail(pki) as server:
        server.trust(account)
        for address in (ALICE, BOB, CAROL):
            server.add_mailbox(address)
        yield server


@pytest.fixture
async def connect(fake: FakeGmail, pki: Pki, account: ServiceAccountKey) -> AsyncIterator[Connect]:
    made: list[gmail.GmailConnector] = []

    def factory(key: ServiceAccountKey = account, **settings: object) -> gmail.GmailConnector:
        fields: dict[str, object] = {"api_url": fake.url, "ca_file": pki.ca_file, **settings}
        secret = gmail.Secret(service_account_json=SecretStr(key.key_file(fake.token_uri)))
        connector = gmail.connect(gmail.Settings.model_validate(fields), secret)
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


async def test_finds_every_copy_in_inbox_spam_trash_and_a_label(fake: FakeGmail, connect: Connect) -> None:
    fake.put(ALICE, MID, "inbox")
    fake.put(BOB, MID, "junk")
    fake.put(BOB, MID, "trash")
    fake.put(CAROL, MID, "other")
    fake.put(CAROL, "<someone-else@example.net>", "inbox")
    connector = connect()
    assert isinstance(connector, MailboxConnector)
    alice, bob, carol = [await connector.find(m, MID) for m in (ALICE, BOB, CAROL)]
    assert [(f.folder, f.folder_name) for f in alice] == [(Folder.INBOX, "Inbox")]
    assert sorted(f.folder for f in bob) == [Folder.JUNK, Folder.TRASH]
    assert [f.folder for f in carol] == [Folder.OTHER] and carol[0].mailbox == CAROL


async def test_a_message_that_is_not_there_is_found_nowhere(fake: FakeGmail, connect: Connect) -> None:
    fake.put(ALICE, "<other@example.net>", "inbox")
    assert await connect().find(ALICE, MID) == []


async def test_moves_to_trash_spam_and_recoverable(fake: FakeGmail, connect: Connect) -> None:
    connector = connect()
    for mailbox in (ALICE, BOB, CAROL):
        fake.put(mailbox, MID, "inbox")
    targets = {ALICE: Folder.TRASH, BOB: Folder.JUNK, CAROL: Folder.RECOVERABLE}
    for mailbox, to in targets.items():
        (copy,) = await connector.find(mailbox, MID)
        moved = await connector.move(copy, to)
        assert moved.folder is (Folder.TRASH if to is Folder.RECOVERABLE else to) and moved.ref == copy.ref
    assert [fake.where(m, MID) for m in (ALICE, BOB, CAROL)] == [["trash"], ["junk"], ["trash"]]


async def test_restore_brings_copies_back_to_the_inbox(fake: FakeGmail, connect: Connect) -> None:
    fake.put(ALICE, MID, "trash")
    fake.put(BOB, MID, "junk")
    connector = connect()
    for mailbox in (ALICE, BOB):
        (copy,) = await connector.find(mailbox, MID)
        restored = await connector.move(copy, Folder.INBOX)
        assert (restored.folder, restored.folder_name) == (Folder.INBOX, "Inbox")
    assert fake.where(ALICE, MID) == ["inbox"] and fake.where(BOB, MID) == ["inbox"]


async def test_hard_delete_leaves_no_copy(fake: FakeGmail, connect: Connect) -> None:
    fake.put(ALICE, MID, "inbox")
    connector = connect()
    (copy,) = await connector.find(ALICE, MID)
    await connector.delete(copy)
    assert fake.where(ALICE, MID) == [] and await connector.find(ALICE, MID) == []


async def test_a_copy_already_in_the_destination_is_left_alone_without_a_call(
    fake: FakeGmail, connect: Connect
) -> None:
    fake.put(ALICE, MID, "trash")
    connector = connect()
    (copy,) = await connector.find(ALICE, MID)
    calls = fake.counts["call"]
    assert await connector.move(copy, Folder.TRASH) == copy
    assert await connector.move(copy, Folder.RECOVERABLE) == copy
    assert fake.counts["call"] == calls


async def test_a_campaign_goes_in_several_batches(fake: FakeGmail, connect: Connect) -> None:
    mailboxes = [f"user{n}@example.com" for n in range(120)]
    for n, mailbox in enumerate(mailboxes):
        fake.add_mailbox(mailbox)
        fake.put(mailbox, MID, "junk" if n % 3 == 0 else "inbox")
    connector = connect(batch_size=50)
    found = await connector.find_many([(m, MID) for m in mailboxes])
    assert fake.counts["batch"] == 6  # 120 lists and 120 reads, 50 per batch
    copies = [copy for result in found if not isinstance(result, ConnectorError) for copy in result]
    assert len(copies) == 120 and [c.mailbox for c in copies] == mailboxes  # in order, though answered reversed
    moved = await connector.move_many([(c, Folder.TRASH) for c in copies])
    assert all(isinstance(m, Found) and m.folder is Folder.TRASH for m in moved)
    assert all(fake.where(m, MID) == ["trash"] for m in mailboxes)
    assert await connector.delete_many(copies[:60]) == [None] * 60
    assert fake.where(mailboxes[0], MID) == [] and fake.where(mailboxes[119], MID) == ["trash"]


async def test_one_failure_in_a_batch_stays_in_its_place(fake: FakeGmail, connect: Connect) -> None:
    fake.add_mailbox("off@example.com", gmail_enabled=False)
    fake.put(ALICE, MID, "inbox")
    results = await connect().find_many([(ALICE, MID), ("off@example.com", MID), ("nobody@example.com", MID)])
    assert isinstance(results[0], list) and results[0][0].folder is Folder.INBOX
    assert isinstance(results[1], MailboxNotFound) and "Mail service not enabled" in results[1].reason
    assert isinstance(results[2], MailboxNotFound)


async def test_throttling_is_honoured_with_its_retry_after(fake: FakeGmail, connect: Connect) -> None:
    fake.put(ALICE, MID, "inbox")
    connector = connect()
    fake.throttle(1, retry_after=1)
    started = time.monotonic()
    (copy,) = await connector.find(ALICE, MID)
    assert time.monotonic() - started >= 1.0 and copy.folder is Folder.INBOX


async def test_throttled_parts_of_a_batch_are_sent_again(fake: FakeGmail, connect: Connect) -> None:
    for mailbox in (ALICE, BOB, CAROL):
        fake.put(mailbox, MID, "inbox")
    connector = connect()
    found = await connector.find_many([(m, MID) for m in (ALICE, BOB, CAROL)])
    fake.throttle(2, retry_after=1)
    started = time.monotonic()
    moved = await connector.move_many([(r[0], Folder.JUNK) for r in found if isinstance(r, list)])
    assert time.monotonic() - started >= 1.0
    assert all(isinstance(m, Found) and m.folder is Folder.JUNK for m in moved)
    assert fake.counts["call"] == 6 + 3 + 2


async def test_a_wait_longer_than_allowed_is_left_to_the_job_engine(fake: FakeGmail, connect: Connect) -> None:
    fake.put(ALICE, MID, "inbox")
    fake.throttle(5, retry_after=120)
    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        await connect().find(ALICE, MID)
    assert time.monotonic() - started < 5
    assert caught.value.retryable and caught.value.retry_after == 120
    assert "rateLimitExceeded" in caught.value.reason


async def test_server_errors_back_off_then_give_up_retryable(fake: FakeGmail, connect: Connect) -> None:
    fake.put(ALICE, MID, "inbox")
    fake.throttle(100, retry_after=None, status=503)
    with pytest.raises(ConnectorError) as caught:
        await connect(max_attempts=3).find(ALICE, MID)
    assert caught.value.retryable and "503 backendError" in caught.value.reason
    assert fake.counts["call"] == 3
    fake.throttle(0)
    assert len(await connect().find(ALICE, MID)) == 1


async def test_an_unknown_user_is_mailbox_not_found(connect: Connect) -> None:
    with pytest.raises(MailboxNotFound) as caught:
        await connect().find("nobody@example.com", MID)
    assert caught.value.mailbox == "nobody@example.com" and "Invalid email or User ID" in caught.value.reason


async def test_a_user_outside_the_delegated_domains_is_refused_for_good(connect: Connect) -> None:
    with pytest.raises(ConnectorError) as caught:
        await connect().find("someone@elsewhere.example", MID)
    assert not caught.value.retryable and not isinstance(caught.value, MailboxNotFound)
    assert "unauthorized_client" in caught.value.reason


async def test_a_scope_the_administrator_did_not_grant_is_refused(
    fake: FakeGmail, connect: Connect, account: ServiceAccountKey
) -> None:
    fake.trust(account, frozenset({MODIFY_SCOPE}))
    with pytest.raises(ConnectorError) as caught:
        await connect().find(ALICE, MID)
    assert not caught.value.retryable and "unauthorized_client" in caught.value.reason


async def test_a_readonly_token_may_find_but_not_move(fake: FakeGmail, connect: Connect) -> None:
    fake.put(ALICE, MID, "inbox")
    connector = connect(scopes=[READONLY_SCOPE])
    (copy,) = await connector.find(ALICE, MID)
    with pytest.raises(ConnectorError) as caught:
        await connector.move(copy, Folder.TRASH)
    assert not caught.value.retryable and "403 insufficientPermissions" in caught.value.reason
    assert fake.where(ALICE, MID) == ["inbox"]


async def test_the_modify_scope_may_trash_but_not_delete(fake: FakeGmail, connect: Connect) -> None:
    fake.put(ALICE, MID, "inbox")
    connector = connect(scopes=[MODIFY_SCOPE])
    (copy,) = await connector.find(ALICE, MID)
    trashed = await connector.move(copy, Folder.TRASH)
    (refusal,) = await connector.delete_many([trashed])
    assert isinstance(refusal, ConnectorError) and "insufficientPermissions" in refusal.reason
    assert fake.where(ALICE, MID) == ["trash"]


async def test_a_token_the_api_no_longer_accepts_is_renewed(fake: FakeGmail, connect: Connect) -> None:
    fake.put(ALICE, MID, "inbox")
    connector = connect()
    await connector.find(ALICE, MID)
    await connector.find(ALICE, MID)
    assert fake.counts["token"] == 1  # cached
    fake.expire_tokens()
    assert len(await connector.find(ALICE, MID)) == 1
    assert fake.counts["token"] == 2


async def test_a_key_google_does_not_know_is_refused(connect: Connect) -> None:
    impostor = make_service_account()  # same client_email, another private key
    with pytest.raises(ConnectorError) as caught:
        await connect(impostor).find(ALICE, MID)
    assert not caught.value.retryable and "Invalid JWT Signature" in caught.value.reason


async def test_a_malformed_query_is_refused_by_the_api(fake: FakeGmail, connect: Connect) -> None:
    with pytest.raises(ConnectorError) as caught:
        await connect().find(ALICE, '<"unbalanced@example.com>')
    assert not caught.value.retryable and "400 invalidArgument: Invalid query" in caught.value.reason


async def test_token_url_setting_overrides_the_key_file(fake: FakeGmail, pki: Pki, account: ServiceAccountKey) -> None:
    fake.put(ALICE, MID, "inbox")
    settings = gmail.Settings(api_url=fake.url, ca_file=pki.ca_file, token_url=fake.token_uri)
    connector = gmail.connect(settings, gmail.Secret(service_account_json=SecretStr(account.key_file())))
    try:
        assert len(await connector.find(ALICE, MID)) == 1
    finally:
        await connector.aclose()


@pytest.mark.parametrize(
    ("claims", "status", "error"),
    [
        ({"exp": -10, "iat": -3610}, 400, "invalid_grant"),  # an expired assertion
        ({"aud": "https://example.com/token"}, 400, "invalid_grant"),
        ({"scope": ""}, 400, "invalid_scope"),
        ({"sub": "someone@elsewhere.example"}, 401, "unauthorized_client"),
    ],
)
def test_the_token_endpoint_refuses_what_google_refuses(
    fake: FakeGmail, pki: Pki, account: ServiceAccountKey, claims: dict[str, object], status: int, error: str
) -> None:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": account.client_email,
        "aud": GOOGLE_TOKEN_AUDIENCE,
        "scope": FULL_SCOPE,
        "sub": ALICE,
        "iat": now,
        "exp": now + 3600,
    }
    for name in ("iat", "exp"):
        if name in claims:
            claims = {**claims, name: now + int(claims[name])}  # type: ignore[call-overload]
    assertion = sign_assertion(account, {**base, **claims})
    response = httpx.post(
        fake.token_uri,
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        verify=ssl.create_default_context(cafile=pki.ca_file),
    )
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_the_api_refuses_a_bad_token_with_googles_error_body(fake: FakeGmail, pki: Pki) -> None:
    response = httpx.get(
        f"{fake.url}/gmail/v1/users/me/messages",
        headers={"Authorization": "Bearer forged"},
        verify=ssl.create_default_context(cafile=pki.ca_file),
    )
    error = response.json()["error"]
    assert response.status_code == 401 and error["status"] == "UNAUTHENTICATED"
    assert error["errors"][0]["reason"] == "authError"


async def test_secrets_never_reach_logs_reprs_or_errors(
    fake: FakeGmail, connect: Connect, account: ServiceAccountKey, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("debug", "json")
    try:
        fake.put(ALICE, MID, "inbox")
        connector = connect()
        fake.throttle(1, retry_after=0.1)
        (copy,) = await connector.find(ALICE, MID)
        errors: list[ConnectorError] = []
        for mailbox in ("nobody@example.com", "x@elsewhere.example"):
            try:
                await connector.find(mailbox, MID)
            except ConnectorError as exc:
                errors.append(exc)
        secret = gmail.Secret(service_account_json=SecretStr(account.key_file(fake.token_uri)))
        shown = capsys.readouterr().err + "".join(str(e) + repr(e) for e in errors)
        shown += str(secret) + repr(secret) + repr(connector) + secret.model_dump_json() + repr(copy)
    finally:
        structlog.reset_defaults()
    assert "gmail_throttled" in shown and len(errors) == 2
    key_body = "".join(account.pem().splitlines()[1:-1])
    for line in account.pem().splitlines()[1:-1]:
        assert line not in shown
    assert key_body[:40] not in shown
    for token in fake.issuer.tokens:
        assert token not in shown
    assert json.loads(secret.model_dump_json())["service_account_json"] == "**********"


async def test_a_server_whose_certificate_is_not_trusted_is_not_talked_to(
    fake: FakeGmail, account: ServiceAccountKey
) -> None:
    settings = gmail.Settings(api_url=fake.url)  # no ca_file: the test CA is not trusted
    connector = gmail.connect(settings, gmail.Secret(service_account_json=SecretStr(account.key_file(fake.token_uri))))
    try:
        with pytest.raises(ConnectorError) as caught:
            await connector.find(ALICE, MID)
    finally:
        await connector.aclose()
    assert caught.value.retryable and "CERTIFICATE_VERIFY_FAILED" in caught.value.reason
    assert fake.counts["token"] == 0
