"""The Graph connector's settings and request building, without a network."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from mailwarden.clawback.graph import Secret, Settings, _find_calls, connect


def test_secret_takes_exactly_one_credential_form() -> None:
    assert Secret(client_secret="x").credential() == "x"  # type: ignore[arg-type]
    cert = Secret(certificate_key="PEM", certificate_thumbprint="AB:CD")  # type: ignore[arg-type]
    assert cert.credential() == {"private_key": "PEM", "thumbprint": "ABCD"}
    for bad in (
        {},
        {"client_secret": "x", "certificate_key": "k", "certificate_thumbprint": "ab"},
        {"certificate_key": "k"},
        {"client_secret": "x", "certificate_thumbprint": "ab"},
    ):
        with pytest.raises(ValidationError):
            Secret(**bad)  # type: ignore[arg-type]


def test_settings_refuse_unknown_fields_and_default_to_the_public_cloud() -> None:
    settings = Settings(tenant_id="t", client_id="c")
    assert (settings.login_url, settings.graph_url) == (
        "https://login.microsoftonline.com",
        "https://graph.microsoft.com",
    )
    with pytest.raises(ValidationError):
        Settings(tenant_id="t", client_id="c", client_secret="oops")  # type: ignore[call-arg]


def test_no_secret_in_reprs_and_no_network_on_connect() -> None:
    secret = Secret(client_secret="very-secret-value")  # type: ignore[arg-type]
    connector = connect(Settings(tenant_id="t", client_id="c", login_url="https://127.0.0.1:9"), secret)
    for text in (repr(secret), str(secret), repr(connector), str(connector)):
        assert "very-secret-value" not in text


def test_a_quote_in_the_message_id_is_doubled_in_the_filter_and_both_searches_are_made() -> None:
    folder_tree, dumpster = _find_calls("o'hara@contoso.example", "<a'b#c&d@x>")
    for call in (folder_tree, dumpster):
        query = parse_qs(urlsplit(call.url).query)
        assert query["$filter"] == ["internetMessageId eq '<a''b#c&d@x>'"]
        assert query["$select"] == ["id,parentFolderId"]
    assert urlsplit(folder_tree.url).path.endswith("/messages")
    assert "/mailFolders/recoverableitemsdeletions/messages" in dumpster.url
