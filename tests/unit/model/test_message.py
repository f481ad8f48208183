from __future__ import annotations

from datetime import UTC, datetime

from mailwarden.model import Message
from tests.factories import build_message


def test_raw_bytes_are_kept_exactly() -> None:
    raw = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    msg = Message(raw)
    assert msg.email["Subject"] == "x"  # parsing does not touch the bytes
    assert msg.raw == raw
    assert msg.size == len(raw)


def test_header_helpers_decode_rfc2047_and_lower_case_addresses() -> None:
    raw = (
        b"From: =?utf-8?b?44Ki44Oq44K5?= <Alice@Example.ORG>\n"
        b"To: Bob <bob@example.com>, carol@example.com\n"
        b"Cc: dave@example.net\n"
        b"Subject: =?iso-2022-jp?b?GyRCJDMkcyRLJEEkTxsoQg==?=\n"
        b"Message-ID: <m1@example.org>\n\nhi\n"
    )
    msg = Message(raw)
    assert msg.from_address == "alice@example.org"
    assert msg.from_display_name == "アリス"
    assert msg.to_addresses == ("bob@example.com", "carol@example.com")
    assert msg.cc_addresses == ("dave@example.net",)
    assert msg.subject == "こんにちは"
    assert msg.message_id == "<m1@example.org>"


def test_raw_eight_bit_subject_is_read_as_utf8() -> None:
    msg = Message("Subject: Grüße\nFrom: a@example.org\n\nx\n".encode())
    assert msg.subject == "Grüße"


def test_text_html_and_urls() -> None:
    msg = Message(
        build_message(
            text="Visit https://example.net/a?b=1. Thanks",
            html='<p><a href="https://login.example.com/x">portal</a> www.example.org/y</p>',
        )
    )
    assert "Visit" in msg.text_parts[0]
    assert "portal" in msg.html_parts[0]
    assert msg.urls == ("https://example.net/a?b=1", "https://login.example.com/x", "www.example.org/y")


def test_attachment_real_type_comes_from_content_not_name() -> None:
    exe = b"MZ\x90\x00" + b"\x00" * 60 + b"This program cannot be run in DOS mode"
    msg = Message(build_message(attachments=[("invoice.pdf", "application/pdf", exe)]))
    (att,) = msg.attachments
    assert att.filename == "invoice.pdf"
    assert att.extension == "pdf"
    assert att.declared_type == "application/pdf"
    assert att.real_type == "application/x-dosexec"
    assert att.size == len(exe)


def test_nested_message_is_walked() -> None:
    inner = build_message(subject="inner", attachments=[("a.zip", "application/zip", b"PK\x03\x04rest")])
    outer = (
        b"From: a@example.org\nTo: b@example.com\nSubject: outer\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/plain\n\nsee attached\n'
        b"--B\nContent-Type: message/rfc822\n\n" + inner + b"\n--B--\n"
    )
    msg = Message(outer)
    assert [m.subject for m in msg.nested_messages] == ["inner"]
    assert [a.real_type for a in msg.attachments] == ["application/zip"]


def test_non_mail_bytes_are_recognised() -> None:
    assert not Message(b"\x89PNG\r\n\x1a\n\x00\x00binary").looks_like_mail()
    assert not Message(b"just some words\nwithout headers\n").looks_like_mail()
    assert Message(b"From: a@example.org\n\nx").looks_like_mail()


def test_malformed_mime_never_raises() -> None:
    raw = (
        b"From: a@example.org\nSubject: =?bogus?q?x?=\nContent-Type: multipart/mixed; boundary=\n\n"
        b"--\nContent-Type: text/plain; charset=no-such-charset\nContent-Transfer-Encoding: base64\n\n!!!notbase64\n"
    )
    msg = Message(raw)
    assert msg.subject
    assert isinstance(msg.text_parts, tuple)
    assert isinstance(msg.attachments, tuple)
    assert isinstance(msg.defects, tuple)


def test_an_attachment_with_raw_8bit_bytes_in_its_disposition_is_still_listed() -> None:
    raw = (
        b"From: a@example.org\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
        b"--B\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="r\xc3\xa9sum\xc3\xa9.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n"
    )
    attachments = Message(raw).attachments
    assert len(attachments) == 1
    assert attachments[0].payload.startswith(b"%PDF")


def test_links_are_found_after_padding_and_beside_characters_that_change_length_when_lowered() -> None:
    from tests.factories import build_message

    padding = "<p>" + "x " * 1_500_000 + "</p>"
    html = f'{padding}<a HREF="https://evil.example/login">İstanbul</a> see www.Other.example/Path.'
    message = Message(build_message(text="İİİ https://A.example/x and http://b.example/www.c.example\n", html=html))
    assert message.urls == (
        "https://A.example/x",
        "http://b.example/www.c.example",
        "https://evil.example/login",
        "www.Other.example/Path",
    )


def test_date_in_utc_with_an_unknown_local_zone_is_aware() -> None:
    def date_of(value: str) -> datetime | None:
        return Message(f"From: a@example.org\r\nDate: {value}\r\n\r\nx\r\n".encode()).date

    assert date_of("Mon, 02 Mar 2026 10:00:00 -0000") == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert date_of("Mon, 02 Mar 2026 10:00:00 +0900") == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    zoneless = date_of("Mon, 02 Mar 2026 10:00:00")
    assert zoneless is not None and zoneless.tzinfo is None  # no zone at all: malformed, left naive


def test_a_charset_declaration_that_cannot_be_read_leaves_the_text_readable() -> None:
    """An RFC 2231 charset parameter whose own charset name holds a NUL makes the standard library raise;
    the body is still read (with the fallback charsets), so the spam filter judges it."""
    raw = b"Content-Type: text/plain; charset*=a%00b''x\r\n\r\nhello\r\n"
    assert Message(raw).text_parts == ("hello\r\n",)
