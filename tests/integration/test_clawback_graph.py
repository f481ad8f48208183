"""The Graph connector against the local Graph fake over real HTTPS: msal's token grant, find in every
folder, move, restore, hard delete, JSON batches, throttling, token renewal, and the refusals Graph gives."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mailwarden.clawback.connector import ConnectorError, Folder, MailboxConnector, MailboxNotFound
from mailwarden.clawback.graph import KIND, GraphConnector, Secret, Settings, connect
from mailwarden.logs import configure
from tests.fakes import tls
from tests.fakes.graph import MAIL_ROLE, FakeGraph

pytestmark = pytest.mark.integration

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "s3cr3t~Qz8Q~graph-client-secret-value"
MID = "<campaign-1@evil.example>"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tls.TestPki:
    return tls.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def graph(pki: tls.TestPki) -> Iterator[FakeGraph]:
    with FakeGraph(pki) as fake:
        fake.add_app(CLIENT_ID, secret=SECRET)
        for user in ("alice@contoso.example", "bob@contoso.example", "carol@contoso.example"):
            fake.add_mailbox(user, folders=("Archive",))
        yield fake


def settings_for(graph: FakeGraph, pki: tls.TestPki, **changes: str) -> Settings:
    values = {"tenant_id": graph.tenant_id, "client_id": CLIENT_ID, "login_url": graph.url, "graph_url": graph.url}
    return Settings(**(values | changes), ca_file=pki.ca_file)  # type: ignore[arg-type]


@pytest.fixture
async def make_connector(graph: FakeGraph, pki: tls.TestPki) -> AsyncIterator[Callable[..., GraphConnector]]:
    made: list[GraphConnector] = []

    def factory(secret: str = SECRET, **changes: str) -> GraphConnector:
        connector = connect(settings_for(graph, pki, **changes), Secret(client_secret=secret))  # type: ignore[arg-type]
        made.append(connector)
        return connector

    yield factory
    for connector in made:
        await connector.aclose()


@pytest.fixture
def connector(make_connector: Callable[..., GraphConnector]) -> GraphConnector:
    return make_connector()


async def test_finds_the_copy_in_inbox_junk_trash_and_a_users_own_folder(
    graph: FakeGraph, connector: GraphConnector
) -> None:
    assert isinstance(connector, MailboxConnector) and connector.kind == KIND == "graph"
    graph.put("alice@contoso.example", MID, "inbox")
    graph.put("alice@contoso.example", MID, "Archive")
    graph.put("bob@contoso.example", MID, "junkemail")
    graph.put("carol@contoso.example", MID, "deleteditems")
    graph.put("carol@contoso.example", "<other@x>", "inbox")

    alice = await connector.find("alice@contoso.example", MID)
    assert sorted((f.folder, f.folder_name) for f in alice) == [(Folder.INBOX, "Inbox"), (Folder.OTHER, "Archive")]
    (bob,) = await connector.find("bob@contoso.example", MID)
    assert (bob.folder, bob.folder_name, bob.mailbox) == (Folder.JUNK, "Junk Email", "bob@contoso.example")
    (carol,) = await connector.find("carol@contoso.example", MID)
    assert carol.folder is Folder.TRASH


async def test_moves_to_trash_junk_and_recoverable_items_and_restores_to_the_inbox(
    graph: FakeGraph, connector: GraphConnector
) -> None:
    graph.put("alice@contoso.example", MID)
    (copy,) = await connector.find("alice@contoso.example", MID)

    copy = await connector.move(copy, Folder.TRASH)
    assert graph.where("alice@contoso.example", MID) == ["deleteditems"] and copy.folder is Folder.TRASH
    copy = await connector.move(copy, Folder.JUNK)
    assert graph.where("alice@contoso.example", MID) == ["junkemail"]
    copy = await connector.move(copy, Folder.RECOVERABLE)
    assert graph.where("alice@contoso.example", MID) == ["recoverableitemsdeletions"]

    # soft-deleted: out of the folder tree, still found for the restore
    (found,) = await connector.find("alice@contoso.example", MID)
    assert found.folder is Folder.RECOVERABLE and found.ref == copy.ref
    restored = await connector.move(found, Folder.INBOX)
    assert graph.where("alice@contoso.example", MID) == ["inbox"]
    assert (restored.folder, restored.folder_name) == (Folder.INBOX, "Inbox")


async def test_a_hard_delete_leaves_no_copy_anywhere(graph: FakeGraph, connector: GraphConnector) -> None:
    graph.put("bob@contoso.example", MID, "junkemail")
    (copy,) = await connector.find("bob@contoso.example", MID)
    await connector.delete(copy)
    assert graph.where("bob@contoso.example", MID) == []
    assert await connector.find("bob@contoso.example", MID) == []


async def test_a_copy_already_in_the_destination_is_returned_without_a_call(
    graph: FakeGraph, connector: GraphConnector
) -> None:
    graph.put("alice@contoso.example", MID, "deleteditems")
    (copy,) = await connector.find("alice@contoso.example", MID)
    before = graph.http_requests
    assert await connector.move(copy, Folder.TRASH) == copy
    assert graph.http_requests == before


async def test_not_found_unknown_mailbox_and_a_quote_in_the_message_id(
    graph: FakeGraph, connector: GraphConnector
) -> None:
    assert await connector.find("alice@contoso.example", MID) == []
    with pytest.raises(MailboxNotFound) as caught:
        await connector.find("nobody@contoso.example", MID)
    assert "ErrorInvalidUser" in caught.value.reason and not caught.value.retryable

    odd = "<o'brien+#&1@evil.example>"
    graph.put("alice@contoso.example", odd, "inbox")
    (copy,) = await connector.find("alice@contoso.example", odd)
    assert copy.folder is Folder.INBOX


async def test_a_campaign_goes_in_batches_of_at_most_twenty(graph: FakeGraph, connector: GraphConnector) -> None:
    users = [f"user{n}@contoso.example" for n in range(25)]
    for n, user in enumerate(users):
        graph.add_mailbox(user)
        graph.put(user, MID, "junkemail" if n % 5 == 0 else "inbox")
    pairs = [(user, MID) for user in [*users, "ghost@contoso.example"]]

    found = await connector.find_many(pairs)
    assert isinstance(found[-1], MailboxNotFound)
    copies = [copy for result in found[:-1] if not isinstance(result, ConnectorError) for copy in result]
    assert len(copies) == 25
    assert len(graph.batch_sizes) > 1 and max(graph.batch_sizes) <= 20

    moved = await connector.move_many([(copy, Folder.TRASH) for copy in copies])
    assert all(not isinstance(m, ConnectorError) and m.folder is Folder.TRASH for m in moved)
    assert all(graph.where(user, MID) == ["deleteditems"] for user in users)

    gone = await connector.delete_many([m for m in moved if not isinstance(m, ConnectorError)])
    assert gone == [None] * 25
    assert all(graph.where(user, MID) == [] for user in users)


@pytest.mark.parametrize("status", [429, 503])
async def test_throttling_is_waited_out_for_a_single_call(
    graph: FakeGraph, connector: GraphConnector, status: int
) -> None:
    graph.put("alice@contoso.example", MID)
    graph.throttle(1, retry_after=1, status=status)
    started = time.monotonic()
    (copy,) = await connector.find("alice@contoso.example", MID)
    assert time.monotonic() - started >= 1.0
    assert copy.folder is Folder.INBOX


async def test_a_429_inside_a_batch_is_sent_again_after_its_retry_after(
    graph: FakeGraph, connector: GraphConnector
) -> None:
    users = [f"user{n}@contoso.example" for n in range(12)]
    for user in users:
        graph.add_mailbox(user)
        graph.put(user, MID)
    graph.throttle(3, retry_after=1)
    started = time.monotonic()
    found = await connector.find_many([(user, MID) for user in users])
    assert time.monotonic() - started >= 1.0
    assert all(not isinstance(r, ConnectorError) and len(r) == 1 for r in found)


async def test_throttling_longer_than_the_connector_waits_is_a_retryable_error(
    graph: FakeGraph, connector: GraphConnector
) -> None:
    graph.throttle(100, retry_after=120)
    started = time.monotonic()
    with pytest.raises(ConnectorError) as caught:
        await connector.find("alice@contoso.example", MID)
    assert time.monotonic() - started < 5
    assert caught.value.retryable and caught.value.retry_after == 120


async def test_a_token_graph_expired_is_replaced_without_failing_the_call(
    graph: FakeGraph, connector: GraphConnector
) -> None:
    graph.put("alice@contoso.example", MID)
    assert len(await connector.find("alice@contoso.example", MID)) == 1
    assert len(await connector.find("bob@contoso.example", MID)) == 0
    assert graph.token_requests == 1  # cached by msal between calls
    graph.expire_tokens()
    assert len(await connector.find("alice@contoso.example", MID)) == 1
    assert graph.token_requests == 2


async def test_a_wrong_client_secret_is_a_final_refusal_quoting_entra(
    make_connector: Callable[..., GraphConnector],
) -> None:
    wrong = "wrong-secret-value-123"
    with pytest.raises(ConnectorError) as caught:
        await make_connector(secret=wrong).find("alice@contoso.example", MID)
    assert not caught.value.retryable
    assert "invalid_client" in caught.value.reason and "AADSTS7000215" in caught.value.reason
    assert wrong not in caught.value.reason


async def test_an_unknown_tenant_is_a_final_refusal(make_connector: Callable[..., GraphConnector]) -> None:
    with pytest.raises(ConnectorError) as caught:
        await make_connector(tenant_id="fabrikam").find("alice@contoso.example", MID)
    assert not caught.value.retryable and "AADSTS90002" in caught.value.reason


async def test_an_app_without_mail_readwrite_is_refused(graph: FakeGraph, connector: GraphConnector) -> None:
    graph.set_roles(CLIENT_ID, ("User.Read.All",))
    with pytest.raises(ConnectorError) as caught:
        await connector.find("alice@contoso.example", MID)
    assert not caught.value.retryable and "403 ErrorAccessDenied" in caught.value.reason


def _certificate() -> tuple[str, bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailwarden clawback")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    der = cert.public_bytes(serialization.Encoding.DER)
    return pem.decode(), cert.public_bytes(serialization.Encoding.PEM), hashlib.sha1(der).hexdigest().upper()


async def test_a_certificate_credential_gets_a_token(graph: FakeGraph, pki: tls.TestPki) -> None:
    key, cert, thumbprint = _certificate()
    graph.add_app("cert-app", certificate_pem=cert)
    graph.put("alice@contoso.example", MID)
    secret = Secret(certificate_key=key, certificate_thumbprint=thumbprint)  # type: ignore[arg-type]
    connector = connect(settings_for(graph, pki, client_id="cert-app"), secret)
    try:
        (copy,) = await connector.find("alice@contoso.example", MID)
    finally:
        await connector.aclose()
    assert copy.folder is Folder.INBOX
    assert "PRIVATE KEY" not in repr(secret) + str(secret) + repr(connector)


async def test_secrets_stay_out_of_logs_errors_and_reprs(
    graph: FakeGraph,
    make_connector: Callable[..., GraphConnector],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure("debug", "console")
    caplog.set_level(logging.DEBUG)
    graph.put("alice@contoso.example", MID)
    connector = make_connector()
    graph.throttle(1, retry_after=1)
    (copy,) = await connector.find("alice@contoso.example", MID)
    await connector.move(copy, Folder.TRASH)
    with pytest.raises(ConnectorError) as caught:
        await make_connector(secret=SECRET + "x").find("alice@contoso.example", MID)
    secret = Secret(client_secret=SECRET)  # type: ignore[arg-type]
    shown = [capsys.readouterr().err, caplog.text, str(caught.value), repr(secret), str(secret), repr(connector)]
    assert "graph throttled" in shown[0]  # the log was captured
    for text in shown:
        assert SECRET not in text and "Bearer ey" not in text and "eyJ" not in text


def _trust(pki: tls.TestPki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=pki.ca_file)


class TestTheFakeRefusesLikeGraph:
    """The fake's own refusals, straight over HTTPS (what the connector must never provoke)."""

    def client(self, graph: FakeGraph, pki: tls.TestPki) -> httpx.Client:
        return httpx.Client(base_url=f"{graph.url}/v1.0", verify=_trust(pki))

    def token(self, graph: FakeGraph, pki: tls.TestPki) -> str:
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
        form["scope"] = f"{graph.url}/.default"
        answer = httpx.post(
            f"{graph.url}/{graph.tenant_id}/oauth2/v2.0/token",
            data=form,
            verify=_trust(pki),
        )
        assert answer.status_code == 200
        return str(answer.json()["access_token"])

    def test_bad_tokens_filters_users_and_batches(self, graph: FakeGraph, pki: tls.TestPki) -> None:
        with self.client(graph, pki) as client:
            path = "/users/alice@contoso.example/messages"
            for headers in ({}, {"Authorization": "Bearer not.a.jwt"}):
                answer = client.get(path, headers=headers)
                assert answer.status_code == 401
                assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
            auth = {"Authorization": f"Bearer {self.token(graph, pki)}"}
            answer = client.get(path, params={"$filter": "internetMessageId eq 'unclosed"}, headers=auth)
            assert (answer.status_code, answer.json()["error"]["code"]) == (400, "ErrorInvalidUrlQueryFilter")
            answer = client.get("/users/ghost@contoso.example/messages", headers=auth)
            assert (answer.status_code, answer.json()["error"]["code"]) == (404, "ErrorInvalidUser")
            url = "/users/alice@contoso.example/mailFolders/inbox"
            steps = [{"id": str(n), "method": "GET", "url": url} for n in range(21)]
            answer = client.post("/$batch", json={"requests": steps}, headers=auth)
            assert answer.status_code == 400
            graph.expire_tokens()
            answer = client.get(path, headers=auth)
            assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]

    def test_a_wrong_secret_gets_an_oauth_error_body(self, graph: FakeGraph, pki: tls.TestPki) -> None:
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "nope"}
        form["scope"] = f"{graph.url}/.default"
        answer = httpx.post(
            f"{graph.url}/{graph.tenant_id}/oauth2/v2.0/token",
            data=form,
            verify=_trust(pki),
        )
        assert answer.status_code == 401
        body = answer.json()
        assert body["error"] == "invalid_client" and body["error_codes"] == [7000215]
        assert MAIL_ROLE == "Mail.ReadWrite"


def test_the_fake_holds_a_thousand_mailboxes_quickly(pki: tls.TestPki, tmp_path: Path) -> None:
    with FakeGraph(pki) as graph:
        started = time.monotonic()
        for n in range(1000):
            graph.add_mailbox(f"u{n}@contoso.example")
            graph.put(f"u{n}@contoso.example", MID)
        assert time.monotonic() - started < 2.0
        assert graph.where("u999@contoso.example", MID) == ["inbox"]
