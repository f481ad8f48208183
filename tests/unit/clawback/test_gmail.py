"""The Gmail connector's pure parts: the batch format, the search query, labels to folders, the calls a
move takes, what Google's errors mean, and settings that keep the key file to themselves."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr, ValidationError

from mailwarden.clawback import gmail
from mailwarden.clawback.connector import ConnectorError, Folder, Found, MailboxNotFound
from mailwarden.clawback.gmail_batch import ApiCall, ApiReply, BatchFormatError, decode_batch, encode_batch
from mailwarden.clawback.gmail_transport import reply_error

BOUNDARY = "batch_xyz"
KEY_FILE = json.dumps(
    {
        "type": "service_account",
        "client_email": "cb@project.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\n"
        "TUlJRXZRSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS2N3Z2dTakFnRUFBb0lCQVFD\n"
        "-----END PRIVATE KEY-----\n",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
)


def _reply_part(content_id: str, status: str, body: str) -> str:
    return (
        f"--{BOUNDARY}\r\nContent-Type: application/http\r\nContent-ID: <response-{content_id}>\r\n\r\n"
        f"HTTP/1.1 {status}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{body}\r\n"
    )


def test_each_part_of_a_batch_carries_its_own_token_and_body() -> None:
    calls = [
        (ApiCall("a@example.com", "GET", "/gmail/v1/users/a@example.com/messages?q=x"), "token-a"),
        (
            ApiCall(
                "b@example.com", "POST", "/gmail/v1/users/b@example.com/messages/1/modify", {"addLabelIds": ["SPAM"]}
            ),
            "token-b",
        ),
    ]
    body, content_type = encode_batch(calls)
    assert content_type.startswith("multipart/mixed; boundary=")
    parts = body.split(b"Content-ID: ")[1:]
    assert parts[0].startswith(b"<item-0>") and b"GET /gmail/v1/users/a@example.com/messages?q=x HTTP/1.1" in parts[0]
    assert b"Authorization: Bearer token-a" in parts[0] and b"token-b" not in parts[0]
    assert b"Authorization: Bearer token-b" in parts[1] and b'{"addLabelIds": ["SPAM"]}' in parts[1]


def test_a_batch_holds_one_to_a_hundred_calls() -> None:
    call = (ApiCall("a@example.com", "GET", "/x"), "t")
    with pytest.raises(ValueError):
        encode_batch([call] * 101)
    with pytest.raises(ValueError):
        encode_batch([])


def test_answers_are_paired_by_content_id_not_position() -> None:
    body = (
        _reply_part("item-1", "404 Not Found", '{"error": {"code": 404, "status": "NOT_FOUND"}}')
        + _reply_part("item-0", "200 OK", '{"id": "m0", "labelIds": ["INBOX"]}')
        + f"--{BOUNDARY}--\r\n"
    )
    first, second = decode_batch(body.encode(), f'multipart/mixed; boundary="{BOUNDARY}"', 2)
    assert (first.status, first.body["id"]) == (200, "m0")
    assert second.status == 404 and second.headers["content-type"].startswith("application/json")


def test_a_batch_reply_missing_an_answer_or_not_multipart_is_an_error() -> None:
    body = _reply_part("item-0", "200 OK", "{}") + f"--{BOUNDARY}--\r\n"
    with pytest.raises(BatchFormatError):
        decode_batch(body.encode(), f"multipart/mixed; boundary={BOUNDARY}", 2)
    with pytest.raises(BatchFormatError):
        decode_batch(b"{}", "application/json", 1)


@pytest.mark.parametrize(
    ("message_id", "query"),
    [
        ("<abc.123@mail.example.com>", "rfc822msgid:abc.123@mail.example.com"),
        ("  <abc@x>  ", "rfc822msgid:abc@x"),
        ("<odd (comment)@x>", 'rfc822msgid:"odd (comment)@x"'),
        ('<"quoted"@x>', 'rfc822msgid:"quoted"@x'),  # cannot be written; Google refuses it (400)
    ],
)
def test_search_query(message_id: str, query: str) -> None:
    assert gmail.search_query(message_id) == query


@pytest.mark.parametrize(
    ("labels", "folder", "name"),
    [
        (["INBOX", "TRASH", "UNREAD"], Folder.TRASH, "Trash"),
        (["SPAM", "INBOX"], Folder.JUNK, "Spam"),
        (["CATEGORY_UPDATES", "INBOX"], Folder.INBOX, "Inbox"),
        (["UNREAD", "CATEGORY_PERSONAL"], Folder.OTHER, "All Mail"),  # archived
        (["IMPORTANT", "Label_7"], Folder.OTHER, "Label_7"),
        (["SENT"], Folder.OTHER, "Sent"),
    ],
)
def test_labels_say_where_a_message_is(labels: list[str], folder: Folder, name: str) -> None:
    assert gmail.folder_of(labels) == (folder, name)


def _paths(found: Found, to: Folder) -> list[tuple[str, str, object]]:
    return [(c.method, c.path.rpartition("/")[2], c.body) for c in gmail._plan(found, to)]


def test_the_calls_each_move_takes() -> None:
    inbox = Found("a@example.com", "m1", Folder.INBOX, "Inbox")
    trash = Found("a@example.com", "m1", Folder.TRASH, "Trash")
    junk = Found("a@example.com", "m1", Folder.JUNK, "Spam")
    assert _paths(inbox, Folder.RECOVERABLE) == [("POST", "trash", None)]
    assert _paths(inbox, Folder.JUNK) == [("POST", "modify", {"addLabelIds": ["SPAM"], "removeLabelIds": ["INBOX"]})]
    restore = {"addLabelIds": ["INBOX"], "removeLabelIds": ["SPAM"]}
    assert _paths(trash, Folder.INBOX) == [("POST", "untrash", None), ("POST", "modify", restore)]
    assert _paths(junk, Folder.INBOX) == [("POST", "modify", restore)]
    assert _paths(trash, Folder.RECOVERABLE) == [] and _paths(junk, Folder.JUNK) == []
    with pytest.raises(ConnectorError):
        gmail._plan(inbox, Folder.OTHER)


def _error(status: int, reason: str, google_status: str) -> ApiReply:
    body = {
        "error": {"code": status, "message": "says Google", "status": google_status, "errors": [{"reason": reason}]}
    }
    return ApiReply(status, {"retry-after": "7"}, body)


def test_what_googles_errors_mean() -> None:
    listing = ApiCall("a@example.com", "GET", "/gmail/v1/users/a@example.com/messages?q=x")
    message = ApiCall("a@example.com", "POST", "/gmail/v1/users/a@example.com/messages/m1/trash")
    assert isinstance(reply_error(_error(404, "notFound", "NOT_FOUND"), listing), MailboxNotFound)
    assert isinstance(reply_error(_error(400, "failedPrecondition", "FAILED_PRECONDITION"), message), MailboxNotFound)
    gone = reply_error(_error(404, "notFound", "NOT_FOUND"), message)
    assert not isinstance(gone, MailboxNotFound) and not gone.retryable
    assert gone.reason == "Gmail API 404 notFound: says Google"
    throttled = reply_error(_error(429, "rateLimitExceeded", "RESOURCE_EXHAUSTED"), message)
    assert throttled.retryable and throttled.retry_after == 7.0


def test_settings_are_strict_and_the_secret_shows_nothing() -> None:
    with pytest.raises(ValidationError):
        gmail.Settings.model_validate({"api_url": "https://x", "client_secret": "oops"})
    with pytest.raises(ValidationError):
        gmail.Settings(batch_size=101)
    secret = gmail.Secret(service_account_json=SecretStr(KEY_FILE))
    for shown in (str(secret), repr(secret), secret.model_dump_json()):
        assert "PRIVATE KEY" not in shown and "TUlJ" not in shown


@pytest.mark.parametrize(
    ("key_file", "reason"),
    [
        ("not json at all -----BEGIN PRIVATE KEY-----", "is not JSON"),
        (json.dumps({"type": "authorized_user", "refresh_token": "1//secret"}), "not a service account key file"),
        (json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----"}), "lacks client_email"),
        (KEY_FILE, "unreadable private_key"),
    ],
)
def test_a_bad_key_file_is_refused_without_quoting_it(key_file: str, reason: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        gmail.connect(gmail.Settings(), gmail.Secret(service_account_json=SecretStr(key_file)))
    assert reason in caught.value.reason and not caught.value.retryable
    assert "PRIVATE KEY" not in str(caught.value) and "secret" not in str(caught.value)
    assert caught.value.__cause__ is None  # no chained error that quotes the key file
    assert caught.value.__context__ is None or caught.value.__suppress_context__
