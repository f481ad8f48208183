from __future__ import annotations

import email
from email.policy import default

import pytest

from mailwarden.mail.rewrite import add_headers, prepend_subject, remove_headers, set_header, split_head

CRLF = (
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org;\r\n\tb=abc\r\n"
    b"From: a@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-Old: 1\r\n\r\nbody line\r\n"
)
LF = b"From: a@example.org\nSubject: Hello\nX-Old: 1\n  folded\n\nbody\n\nmore\n"


@pytest.mark.parametrize("raw", [CRLF, LF])
def test_edits_keep_the_body_and_other_fields_byte_for_byte(raw: bytes) -> None:
    _, sep, body = split_head(raw)
    edited = set_header(remove_headers(raw, ["x-old"]), "X-Spam-Flag", "YES")
    e_head, e_sep, e_body = split_head(edited)
    assert (e_sep, e_body) == (sep, body)
    assert b"X-Old" not in edited and b"folded" not in edited
    assert e_head.startswith(b"X-Spam-Flag: YES" + sep)
    assert b"From: a@example.org" + sep in e_head


def test_added_fields_use_the_message_line_ending_and_encode_non_ascii() -> None:
    edited = add_headers(CRLF, [("X-Note", "日本語のメモ")])
    first = edited.split(b"\r\n", 1)[0]
    assert first.startswith(b"X-Note: =?utf-8?")
    parsed = email.message_from_bytes(edited, policy=default)
    assert parsed["X-Note"] == "日本語のメモ"
    assert edited.endswith(CRLF)


def test_subject_prefix_keeps_the_encoded_original_and_is_not_repeated() -> None:
    once = prepend_subject(CRLF, "[SPAM] ")
    parsed = email.message_from_bytes(once, policy=default)
    assert parsed["Subject"] == "[SPAM] Grüße"
    assert prepend_subject(once, "[SPAM] ") == once
    japanese = email.message_from_bytes(prepend_subject(LF, "【迷惑】"), policy=default)
    assert japanese["Subject"] == "【迷惑】 Hello"


def test_message_without_subject_gets_one() -> None:
    edited = prepend_subject(b"From: a@example.org\n\nx\n", "[SPAM] ")
    assert email.message_from_bytes(edited, policy=default)["Subject"] == "[SPAM]"
