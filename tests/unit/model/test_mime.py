"""The MIME tree within limits: no input makes the parser, the walk or the writer recurse."""

from __future__ import annotations

import email
import tracemalloc
from email.policy import compat32

import pytest

from mailwarden.model import Message, mime
from tests.factories import build_message
from tests.hostile_mail import FOUND_BY_FUZZING


def nested(levels: int) -> bytes:
    return (
        b"From: a@example.org\r\nSubject: deep\r\n"
        + b"Content-Type: message/rfc822\r\n\r\n" * levels
        + b"Subject: core\r\n\r\nhello\r\n"
    )


def many_parts(count: int) -> bytes:
    parts = b"".join(b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(count))
    head = b"From: a@example.org\r\nSubject: many\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
    return head + parts + b"--B--\r\n"


def test_a_small_message_of_a_thousand_nested_messages_is_read_as_its_header_block() -> None:
    raw = nested(1000)
    assert len(raw) < 33_000
    message = Message(raw)
    assert message.mime_limit == mime.MimeLimit("MIME_NESTING_LIMIT", "MIME parts nested deeper than 100 levels")
    assert message.subject == "deep" and message.from_address == "a@example.org"
    assert message.text_parts == () and message.attachments == () and message.nested_messages == ()


def test_nesting_up_to_the_limit_is_read_whole() -> None:
    message = Message(nested(mime.MAX_DEPTH - 1))  # the top message and 99 inside it: 100 levels
    assert message.mime_limit is None
    assert message.text_parts == ("hello\r\n",)
    assert len(message.nested_messages) == mime.MAX_DEPTH - 1
    assert Message(nested(mime.MAX_DEPTH)).mime_limit is not None


def test_more_parts_than_the_limit_are_not_read() -> None:
    assert Message(many_parts(mime.MAX_PARTS - 1)).mime_limit is None  # with the multipart itself: the limit
    limit = Message(many_parts(mime.MAX_PARTS)).mime_limit
    assert limit is not None and limit.code == "MIME_PART_LIMIT"


def test_parts_are_walked_in_the_standard_order() -> None:
    inner = build_message(subject="inner", attachments=[("a.zip", "application/zip", b"PK\x03\x04")])
    raw = build_message(html="<p>hi</p>", attachments=[("fwd.eml", "message/rfc822", inner)])
    tree = email.message_from_bytes(raw, policy=compat32)
    assert [p.get_content_type() for p in mime.parts(tree)] == [p.get_content_type() for p in tree.walk()]


def test_a_part_is_written_back_as_it_was_read() -> None:
    raw = (
        b"From: a@example.org\nSubject: =?utf-8?q?caf=C3=A9?=\n\tfolded\nContent-Type: multipart/mixed; boundary=B\n\n"
        b"preamble\n--B\nContent-Type: text/plain; charset=no-such-charset\n\ncaf\xe9\n"
        b"--B\nContent-Type: message/rfc822\n\nSubject: inner\n\nhello\n--B--\n"
    )
    tree, limit = mime.parse(raw)
    assert limit is None
    assert mime.part_bytes(tree) == raw


def test_writing_back_never_raises_on_a_hostile_charset() -> None:
    for raw in FOUND_BY_FUZZING:
        tree, _ = mime.parse(raw)
        (inner,) = tree.get_payload()  # the message/rfc822 part is the message itself
        assert b"caf\xe9" in mime.part_bytes(inner)


def test_a_large_one_part_message_of_empty_lines_costs_about_its_size_to_parse() -> None:
    raw = b"From: a@example.org\r\nSubject: blank\r\n\r\n" + b"\r\n" * (4 * 1024 * 1024)
    tracemalloc.start()
    try:
        tree, limit = mime.parse(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert limit is None and tree["Subject"] == "blank" and len(tree.get_payload()) == len(raw) - 39
    assert peak < 4 * len(raw)  # the feed parser kept an object per line: about 35 times the size


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@example.org\r\nSubject: crlf\r\n\r\nline one\r\nline two\r\n",
        b"From: a@example.org\nSubject: lf\n\nbody\n\n\nmore\n",
        b"From: a@example.org\rSubject: cr\r\rbody\r",
        b"Subject: 8-bit \xfc\r\nTo: J\xfcrgen <j@example.com>\r\n\r\nGr\xfc\xdfe\r\n",
        b"From: a@example.org\r\nnot a header line\r\n\r\nbody\r\n",
        b"From: a@example.org\r\nSubject: folded\r\n continued\r\n\r\n\r\nbody after an empty line\r\n",
    ],
)
def test_the_one_part_fast_way_reads_the_same_tree_as_the_feed_parser(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = email.message_from_bytes(raw, policy=compat32)
    monkeypatch.setattr(mime, "SINGLE_PART_FAST", 0)
    tree, _ = mime.parse(raw)
    assert list(tree.raw_items()) == list(reference.raw_items())
    assert vars(tree)["_payload"] == vars(reference)["_payload"]
    assert [type(d) for d in tree.defects] == [type(d) for d in reference.defects]
