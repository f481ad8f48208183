"""The three kinds of mailbox a clawback reaches, behind one test-side shape: a real Dovecot (IMAP, master
user), the Microsoft Graph fake and the Gmail fake. Tests and `bench/clawback.py` put a message into
mailboxes and ask where each copy is now, in the same words whatever the provider."""

from __future__ import annotations

import contextlib
import imaplib
import json
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.gmail import FakeGmail
from tests.fakes.google_oauth import make_service_account
from tests.fakes.graph import FakeGraph
from tests.fakes.tls import make_pki
from tests.integration.dovecot import deliver, private_dovecot

DOMAIN = "example.com"
GRAPH_APP, GRAPH_SECRET = "3f1c7a52-mailwarden-app", "graph-client-secret-Zq7!wv"
IMAP_FOLDERS = {"INBOX": "inbox", "Trash": "trash", "Junk": "junk"}
GRAPH_FOLDERS = {
    "inbox": "inbox",
    "deleteditems": "trash",
    "junkemail": "junk",
    "recoverableitemsdeletions": "recoverable",
}


@dataclass
class Mailboxes:
    kind: str
    settings: dict[str, Any]
    secret: dict[str, Any]
    secret_text: str  # what must never show up anywhere
    addresses: list[str]
    put: Callable[[Sequence[str], str], None]  # deliver a message with this Message-ID to these mailboxes' inboxes
    where: Callable[[str, str], list[str]]  # inbox / trash / junk / recoverable / a folder's name, per copy
    throttle: Callable[[int, float], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def addresses(n: int) -> list[str]:
    return [f"user{i:04d}@{DOMAIN}" for i in range(n)]


@contextlib.contextmanager
def graph_mailboxes(directory: Path, n: int = 3) -> Iterator[Mailboxes]:
    pki = make_pki(directory / "pki-graph")
    with FakeGraph(pki) as graph:
        graph.add_app(GRAPH_APP, secret=GRAPH_SECRET)
        users = addresses(n)
        for address in users:
            graph.add_mailbox(address)

        def put(rcpts: Sequence[str], message_id: str) -> None:
            for r in rcpts:
                graph.put(r, message_id)

        def where(address: str, message_id: str) -> list[str]:
            return sorted(GRAPH_FOLDERS.get(f, f) for f in graph.where(address, message_id))

        yield Mailboxes(
            kind="graph",
            settings={"tenant_id": graph.tenant_id, "client_id": GRAPH_APP, "login_url": graph.url,
                      "graph_url": graph.url, "ca_file": str(pki.ca_file)},
            secret={"client_secret": GRAPH_SECRET},
            secret_text=GRAPH_SECRET,
            addresses=users,
            put=put,
            where=where,
            throttle=lambda count, seconds: graph.throttle(count, retry_after=seconds),
            extra={"fake": graph},
        )  # fmt: skip


@contextlib.contextmanager
def gmail_mailboxes(directory: Path, n: int = 3) -> Iterator[Mailboxes]:
    pki = make_pki(directory / "pki-gmail")
    account = make_service_account()
    with FakeGmail(pki) as gmail:
        gmail.trust(account)
        users = addresses(n)
        for address in users:
            gmail.add_mailbox(address)

        def put(rcpts: Sequence[str], message_id: str) -> None:
            for r in rcpts:
                gmail.put(r, message_id)

        # the private key's body: a line of it anywhere would be a leak
        key_line = account.pem().splitlines()[5]
        yield Mailboxes(
            kind="gmail",
            settings={"api_url": gmail.url, "ca_file": str(pki.ca_file)},
            secret={"service_account_json": account.key_file(gmail.token_uri)},
            secret_text=key_line,
            addresses=users,
            put=put,
            where=gmail.where,
            throttle=lambda count, seconds: gmail.throttle(count, retry_after=seconds),
            extra={"fake": gmail},
        )


@contextlib.contextmanager
def imap_mailboxes(n: int = 3) -> Iterator[Mailboxes]:
    users = addresses(n)
    with private_dovecot(imap=True, users=users) as dovecot:
        access = dovecot.imap
        assert access is not None
        context = ssl.create_default_context(cafile=access.pki.ca_file)

        def put(rcpts: Sequence[str], message_id: str) -> None:
            raw = (
                f"From: sender@example.net\r\nTo: {rcpts[0]}\r\nSubject: invoice\r\nMessage-ID: {message_id}\r\n"
                "\r\nplease pay\r\n"
            ).encode()
            for start in range(0, len(rcpts), 200):
                deliver(dovecot.port, rcpts[start : start + 200], raw)

        def where(address: str, message_id: str) -> list[str]:
            client = imaplib.IMAP4_SSL("127.0.0.1", access.tls_port, ssl_context=context)
            try:
                client.login(address, access.passwords[address])
                found = []
                for line in client.list()[1]:
                    assert isinstance(line, bytes)
                    name = line.rsplit(b" ", 1)[-1].strip(b'"').decode()
                    client.select(name, readonly=True)
                    _, hits = client.uid("SEARCH", "NOT", "DELETED", "HEADER", "Message-ID", message_id)
                    found += [IMAP_FOLDERS.get(name, name)] * (len(hits[0].split()) if hits and hits[0] else 0)
                return sorted(found)
            finally:
                client.logout()

        yield Mailboxes(
            kind="imap",
            settings={"host": "127.0.0.1", "port": access.tls_port, "ca_file": str(access.pki.ca_file),
                      "master_user": access.master_user},
            secret={"password": access.master_password},
            secret_text=access.master_password,
            addresses=users,
            put=put,
            where=where,
            extra={"dovecot": dovecot},
        )  # fmt: skip


PROVIDERS: dict[str, Callable[..., contextlib.AbstractContextManager[Mailboxes]]] = {
    "gmail": lambda directory, n=3: gmail_mailboxes(directory, n),
    "graph": lambda directory, n=3: graph_mailboxes(directory, n),
    "imap": lambda directory, n=3: imap_mailboxes(n),
}


def add_connector(mw: Any, boxes: Mailboxes, directory: Path, organisation: str = "acme") -> None:
    """`mailwarden connector add` for these mailboxes, as an administrator would (secret from a file that
    is removed afterwards). `mw` is a tests.integration.harness.Mailwarden."""
    settings, secret = directory / "connector-settings.json", directory / "connector-secret.json"
    settings.write_text(json.dumps(boxes.settings))
    secret.write_text(json.dumps(boxes.secret))
    mw.cli("connector", "add", organisation, boxes.kind, "--kind", boxes.kind, "--settings-file", str(settings),
           "--secret-file", str(secret), "--by", "root")  # fmt: skip
    secret.unlink()
