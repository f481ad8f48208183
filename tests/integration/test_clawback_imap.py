"""The IMAP clawback connector against a real Dovecot on loopback: mail delivered over LMTP to several
mailboxes, found and moved by the connector logged in as the master user, and checked by an independent
client (stdlib imaplib, logged in as the mailbox's own user)."""

from __future__ import annotations

import imaplib
import logging
import secrets
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from mailwarden.clawback import imap
from mailwarden.clawback.connector import ConnectorError, Folder, Found, MailboxNotFound
from tests.integration.dovecot import PrivateDovecot, deliver, private_dovecot
from tests.integration.harness import free_port

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[PrivateDovecot]:
    with private_dovecot(imap=True) as instance:
        yield instance


def access(dovecot: PrivateDovecot) -> Any:
    assert dovecot.imap is not None
    return dovecot.imap


def connector(dovecot: PrivateDovecot, **settings: Any) -> imap.ImapConnector:
    a = access(dovecot)
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": a.tls_port,
        "ca_file": a.pki.ca_file,
        "master_user": a.master_user,
        "timeout_seconds": 10,
    }
    values.update(settings)
    return imap.connect(imap.Settings(**values), imap.Secret(password=a.master_password))


def new_message(dovecot: PrivateDovecot, rcpts: list[str], *, spam: bool = False) -> str:
    """Deliver a fresh message to `rcpts`; its Message-ID."""
    message_id = f"<{secrets.token_hex(8)}@sender.example.net>"
    flag = b"X-Spam-Flag: YES\r\n" if spam else b""
    raw = (
        b"From: sender@example.net\r\nTo: " + ", ".join(rcpts).encode() + b"\r\nSubject: invoice\r\n"
        b"Message-ID: " + message_id.encode() + b"\r\n" + flag + b"\r\nplease pay\r\n"
    )
    deliver(dovecot.port, rcpts, raw)
    return message_id


def as_user(dovecot: PrivateDovecot, user: str) -> imaplib.IMAP4_SSL:
    a = access(dovecot)
    client = imaplib.IMAP4_SSL("127.0.0.1", a.tls_port, ssl_context=ssl.create_default_context(cafile=a.pki.ca_file))
    client.login(user, a.passwords[user])
    return client


def where(dovecot: PrivateDovecot, user: str, message_id: str, *, flagged_deleted: bool = False) -> list[str]:
    """Folders holding a copy with this Message-ID, as the user sees them (copies flagged \\Deleted but
    still there too with `flagged_deleted`)."""
    client = as_user(dovecot, user)
    try:
        holding = []
        for line in client.list()[1]:
            assert isinstance(line, bytes)
            name = line.rsplit(b" ", 1)[-1].strip(b'"').decode()
            client.select(name, readonly=True)
            flags = () if flagged_deleted else ("NOT", "DELETED")
            _, hits = client.uid("SEARCH", *flags, "HEADER", "Message-ID", message_id)
            holding += [name] * len(hits[0].split()) if hits and hits[0] else []
        return sorted(holding)
    finally:
        client.logout()


def logins(dovecot: PrivateDovecot, user: str) -> int:
    return dovecot.log().count(f"Login: user=<{user}>")


async def test_find_move_to_trash_and_restore_in_three_mailboxes(dovecot: PrivateDovecot) -> None:
    ids = [new_message(dovecot, [ALICE, BOB, CAROL]) for _ in range(2)]
    conn = connector(dovecot, max_connections=2)
    before = {u: logins(dovecot, u) for u in (ALICE, BOB, CAROL)}

    found = await conn.find_many([(u, i) for i in ids for u in (ALICE, BOB, CAROL)])

    # one login per mailbox for the whole batch of six
    assert {u: logins(dovecot, u) - before[u] for u in before} == {ALICE: 1, BOB: 1, CAROL: 1}
    copies = [f for result in found for f in _ok(result)]
    assert [(f.mailbox, f.folder, f.folder_name) for f in copies] == [
        (u, Folder.INBOX, "INBOX") for _ in ids for u in (ALICE, BOB, CAROL)
    ]
    moved = [_ok(r) for r in await conn.move_many([(f, Folder.TRASH) for f in copies])]
    assert {(f.folder, f.folder_name) for f in moved} == {(Folder.TRASH, "Trash")}
    for user in (ALICE, BOB, CAROL):
        for message_id in ids:
            assert where(dovecot, user, message_id) == ["Trash"]

    restored = [_ok(r) for r in await conn.move_many([(f, Folder.INBOX) for f in moved])]
    assert {(f.folder, f.folder_name) for f in restored} == {(Folder.INBOX, "INBOX")}
    for user in (ALICE, BOB, CAROL):
        assert where(dovecot, user, ids[0]) == ["INBOX"]


async def test_junk_recoverable_and_another_folder(dovecot: PrivateDovecot) -> None:
    message_id = new_message(dovecot, [BOB], spam=True)  # the Sieve script files it into Junk
    client = as_user(dovecot, BOB)
    client.create("Archive")
    raw = f"From: a@example.net\r\nMessage-ID: {message_id}\r\nSubject: kept\r\n\r\nx\r\n".encode()
    client.append("Archive", "", imaplib.Time2Internaldate(0), raw)
    client.logout()
    conn = connector(dovecot)

    found = await conn.find(BOB, message_id)

    assert sorted((f.folder, f.folder_name) for f in found) == [(Folder.JUNK, "Junk"), (Folder.OTHER, "Archive")]
    junk = next(f for f in found if f.folder is Folder.JUNK)
    in_trash = await conn.move(junk, Folder.RECOVERABLE)
    assert (in_trash.folder, in_trash.folder_name) == (Folder.TRASH, "Trash")
    assert where(dovecot, BOB, message_id) == ["Archive", "Trash"]
    back = await conn.move(in_trash, Folder.JUNK)
    assert back.folder is Folder.JUNK
    assert where(dovecot, BOB, message_id) == ["Archive", "Junk"]


async def test_a_renumbered_folder_is_searched_again(dovecot: PrivateDovecot) -> None:
    message_id = f"<{secrets.token_hex(8)}@sender.example.net>"
    raw = f"From: a@example.net\r\nMessage-ID: {message_id}\r\nSubject: filed\r\n\r\nx\r\n".encode()
    client = as_user(dovecot, CAROL)
    client.create("Projects")
    client.append("Projects", "", imaplib.Time2Internaldate(0), b"Subject: another\r\n\r\ny\r\n")
    client.append("Projects", "", imaplib.Time2Internaldate(0), raw)
    conn = connector(dovecot)
    (found,) = await conn.find(CAROL, message_id)
    # the user's client recreates the folder: new UIDVALIDITY, and the message has UID 1 instead of 2
    client.delete("Projects")
    client.create("Projects")
    client.append("Projects", "", imaplib.Time2Internaldate(0), raw)
    client.append("Projects", "", imaplib.Time2Internaldate(0), b"Subject: another\r\n\r\ny\r\n")
    client.logout()

    moved = await conn.move(found, Folder.TRASH)

    assert moved.folder is Folder.TRASH
    assert where(dovecot, CAROL, message_id) == ["Trash"]


async def test_hard_delete_leaves_no_copy(dovecot: PrivateDovecot) -> None:
    message_id = new_message(dovecot, [ALICE, CAROL])
    conn = connector(dovecot)
    found = [f for r in await conn.find_many([(ALICE, message_id), (CAROL, message_id)]) for f in _ok(r)]

    assert await conn.delete_many(found) == [None, None]

    assert where(dovecot, ALICE, message_id, flagged_deleted=True) == []
    assert where(dovecot, CAROL, message_id, flagged_deleted=True) == []
    assert await conn.find(ALICE, message_id) == []
    with pytest.raises(ConnectorError, match="gone") as gone:
        await conn.delete(found[0])
    assert not gone.value.retryable


async def test_already_in_destination_makes_no_call(dovecot: PrivateDovecot) -> None:
    message_id = new_message(dovecot, [CAROL])
    conn = connector(dovecot)
    (found,) = await conn.find(CAROL, message_id)
    trashed = await conn.move(found, Folder.TRASH)
    before = logins(dovecot, CAROL)

    assert await conn.move(trashed, Folder.TRASH) is trashed
    assert await conn.move(trashed, Folder.RECOVERABLE) is trashed
    assert await conn.move(found, Folder.INBOX) is found
    assert logins(dovecot, CAROL) == before


async def test_not_found_is_an_empty_list(dovecot: PrivateDovecot) -> None:
    message_id = new_message(dovecot, [ALICE])
    conn = connector(dovecot)
    assert await conn.find(ALICE, "<nobody-sent-this@example.net>") == []
    # SEARCH HEADER matches substrings: a part of this message's Message-ID is not its Message-ID
    for part in (message_id[:-1], message_id[2:], message_id[1:-1]):
        assert await conn.find(ALICE, part) == []
    assert len(await conn.find(ALICE, message_id)) == 1


async def test_move_without_the_move_command(dovecot: PrivateDovecot) -> None:
    message_id = new_message(dovecot, [ALICE, BOB])
    conn = connector(dovecot, use_move=False)  # COPY + \Deleted + UID EXPUNGE
    found = [f for r in await conn.find_many([(ALICE, message_id), (BOB, message_id)]) for f in _ok(r)]

    trashed = [_ok(r) for r in await conn.move_many([(f, Folder.TRASH) for f in found])]

    assert {f.folder for f in trashed} == {Folder.TRASH}
    for user in (ALICE, BOB):  # the source copy was expunged, not only flagged
        assert where(dovecot, user, message_id, flagged_deleted=True) == ["Trash"]
    restored = await conn.move(trashed[0], Folder.INBOX)  # the UID found after the copy is the right one
    assert restored.folder is Folder.INBOX
    assert where(dovecot, ALICE, message_id) == ["INBOX"]


async def test_wrong_master_password_is_refused_clearly(
    dovecot: PrivateDovecot, caplog: pytest.LogCaptureFixture
) -> None:
    a = access(dovecot)
    wrong = "Wr0ng-" + secrets.token_hex(8)
    settings = imap.Settings(host="127.0.0.1", port=a.tls_port, ca_file=a.pki.ca_file, master_user=a.master_user)
    conn = imap.connect(settings, imap.Secret(password=wrong))
    caplog.set_level(logging.DEBUG)

    with capture_logs() as logs, pytest.raises(ConnectorError) as refused:
        await conn.find(ALICE, "<x@example.net>")

    error = refused.value
    assert not error.retryable
    assert "AUTHENTICATIONFAILED" in error.reason and a.master_user in error.reason
    shown = " ".join([str(error), repr(error), repr(conn), repr(logs), caplog.text, repr(conn._secret)])
    assert wrong not in shown and a.master_password not in shown
    assert any(entry["event"] == "clawback.imap.login_refused" for entry in logs)


async def test_tls_against_a_plain_port_fails_clearly(dovecot: PrivateDovecot) -> None:
    conn = connector(dovecot, port=access(dovecot).plain_port)

    with pytest.raises(ConnectorError, match="TLS handshake failed") as failed:
        await conn.find(ALICE, "<x@example.net>")

    assert not failed.value.retryable


async def test_starttls_and_plain_text_when_configured(dovecot: PrivateDovecot) -> None:
    message_id = new_message(dovecot, [BOB])
    plain = access(dovecot).plain_port
    for security in ("starttls", "none"):
        (found,) = await connector(dovecot, port=plain, security=security).find(BOB, message_id)
        assert found.folder is Folder.INBOX


async def test_unknown_mailbox(dovecot: PrivateDovecot) -> None:
    conn = connector(dovecot)
    with pytest.raises(MailboxNotFound) as unknown:
        await conn.find("mallory@example.com", "<x@example.net>")
    assert "AUTHORIZATIONFAILED" in unknown.value.reason
    result = await conn.find_many([("mallory@example.com", "<x@example.net>"), (ALICE, "<x@example.net>")])
    assert isinstance(result[0], MailboxNotFound) and result[1] == []


async def test_per_mailbox_passwords(dovecot: PrivateDovecot) -> None:
    a = access(dovecot)
    message_id = new_message(dovecot, [CAROL])
    settings = imap.Settings(host="127.0.0.1", port=a.tls_port, ca_file=a.pki.ca_file, login="mailbox")
    secret = imap.Secret(passwords={CAROL: a.passwords[CAROL]})
    conn = imap.connect(settings, secret)

    (found,) = await conn.find(CAROL, message_id)
    assert (await conn.move(found, Folder.JUNK)).folder is Folder.JUNK
    with pytest.raises(MailboxNotFound):
        await conn.find(ALICE, message_id)
    assert a.passwords[CAROL] not in repr(secret) + str(secret) + repr(settings)


async def test_server_away_is_retryable(dovecot: PrivateDovecot) -> None:
    conn = connector(dovecot, port=free_port())
    with pytest.raises(ConnectorError) as away:
        await conn.find(ALICE, "<x@example.net>")
    assert away.value.retryable


async def test_many_mailboxes_at_once(dovecot: PrivateDovecot) -> None:
    ids = [new_message(dovecot, [ALICE, BOB, CAROL]) for _ in range(4)]
    conn = connector(dovecot, max_connections=3)
    pairs = [(u, i) for u in (ALICE, BOB, CAROL) for i in ids]

    found = await conn.find_many(pairs)
    moved = await conn.move_many([(f, Folder.JUNK) for r in found for f in _ok(r)])

    assert [r.folder for r in moved if isinstance(r, Found)] == [Folder.JUNK] * 12
    assert all(where(dovecot, u, i) == ["Junk"] for u, i in pairs[::5])


def _ok(result: Any) -> Any:
    assert not isinstance(result, ConnectorError), result
    return result
