"""Evidence inside attachments: PDF and Office text and links, QR codes, and what the spam filter makes of
them. Every document and picture is built in the test."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter

from mailwarden.errors import ConfigError
from mailwarden.model import Direction, Message, Policy
from mailwarden.model.org import Domain, Organisation
from mailwarden.pipeline.engine import Pipeline
from mailwarden.pipeline.services import StageServices
from mailwarden.pipeline.spam import attached
from mailwarden.pipeline.spam.attached import AttachedLimits, attached_evidence
from mailwarden.pipeline.spam.heuristics import Heuristics
from mailwarden.pipeline.spam.stage import SpamFilter
from mailwarden.pipeline.spam.tokens import tokenize
from mailwarden.service.runtime import offline_envelope
from tests.unit.pipeline.spam.documents import docx, mail_with, pdf, qr_png
from tests.unit.pipeline.spam.heuristics.helpers import mail

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
LURE = ["Your mailbox is full.", "Verify your account to keep receiving mail."]
ORG = Organisation("Example Corp", (Domain("example.com"),))


def symbols(raw: bytes) -> dict[str, str]:
    return dict(Heuristics().symbols(Message(raw)))


def scan(raw: bytes, tmp_path: Path, **stage: Any) -> Any:
    services = StageServices(resolver=None, data_dir=tmp_path, stage_config={"spam": stage})  # type: ignore[arg-type]
    pipeline = Pipeline({Direction.INBOUND: [SpamFilter.from_services(services)]})
    message = Message(raw)
    return asyncio.run(
        pipeline.scan(message, offline_envelope(message), Policy(), organisation=ORG, direction=Direction.INBOUND)
    )


# ---- PDF ----------------------------------------------------------------------------------------


def test_a_lure_written_in_a_pdf_is_judged_like_one_in_the_body() -> None:
    raw = mail_with(("notice.pdf", PDF, pdf(LURE, link="https://mail-check.example.top/login")), text="")
    evidence = attached_evidence(Message(raw))
    assert "Verify your account" in evidence.text
    assert evidence.links == ("https://mail-check.example.top/login",)
    found = symbols(raw)
    assert found["PHISH_CREDENTIAL_WORDING"] == "mailbox is full"
    assert found["PHISH_URL_SUSPICIOUS_TLD"] == "mail-check.example.top"
    # the same message with the PDF's text and link in nothing the filter reads gives neither
    assert not {"PHISH_CREDENTIAL_WORDING", "PHISH_URL_SUSPICIOUS_TLD"} & set(symbols(mail_with(text="")))


def test_pdf_words_reach_the_classifier_as_their_own_tokens_and_its_links_as_link_tokens() -> None:
    raw = mail_with(("notice.pdf", PDF, pdf(LURE, link="https://mail-check.example.top/login")), text="Hello")
    tokens = tokenize(Message(raw))
    assert {"doc:mailbox", "doc:verify", "att:hastext"} <= tokens
    assert "verify" not in tokens  # a body word only when the body says it
    assert {"url:host:mail-check.example.top", "url:dom:example.top"} <= tokens
    assert "url:count:0" in tokens  # the body has no link: the count is the body's


def test_only_the_first_pages_and_characters_are_read() -> None:
    raw = mail_with(("long.pdf", PDF, pdf(["page one words", "page two words", "page three words"])))
    message = Message(raw)
    assert "page three" in attached_evidence(message, AttachedLimits()).text
    two_pages = attached_evidence(Message(raw), AttachedLimits(max_pdf_pages=2)).text
    assert "page two" in two_pages and "page three" not in two_pages
    assert len(attached_evidence(Message(raw), AttachedLimits(max_chars=6)).text) == 6


def test_an_encrypted_pdf_opens_with_the_password_the_body_gives_and_stays_closed_without_it() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf(LURE))))
    writer.encrypt("7391", algorithm="RC4-128")
    locked = io.BytesIO()
    writer.write(locked)
    document = ("fatura.pdf", PDF, locked.getvalue())
    given_password = mail_with(document, text="Your invoice is attached.\nPDF password: 7391")
    assert "Verify your account" in attached_evidence(Message(given_password)).text
    assert attached_evidence(Message(mail_with(document, text="Your invoice is attached."))).text == ""


# ---- Office -------------------------------------------------------------------------------------


def test_a_word_file_gives_its_text_its_hyperlinks_and_the_qr_code_in_its_pictures() -> None:
    document = docx(
        ["Your password expires today.", "Keep your current password."],
        hyperlink="http://198.51.100.7/owa/",
        picture=qr_png("https://sso.example-login.xyz/m"),
    )
    raw = mail_with(("policy.docx", DOCX, document))
    evidence = attached_evidence(Message(raw))
    assert "password expires today" in evidence.text
    assert evidence.links == ("http://198.51.100.7/owa/",)
    assert evidence.qr_links == ("https://sso.example-login.xyz/m",)
    found = symbols(raw)
    assert found["PHISH_URL_IP_HOST"] == "198.51.100.7"
    assert found["PHISH_CREDENTIAL_WORDING"] == "your password"


def test_word_97_text_is_read_from_the_piece_table() -> None:
    # WordDocument stream: 8-bit text at byte 0x600 (a "compressed" piece), UTF-16 text at 0x800
    word = bytearray(0x900)
    word[0x600:0x60B] = b"Dear user\r\n"
    word[0x800:0x818] = "Verify now\r".encode("utf-16-le") + b"\x00\x00"
    cps = struct.pack("<3I", 0, 11, 22)
    pcds = struct.pack("<HIH", 0, (0x600 * 2) | 0x40000000, 0) + struct.pack("<HIH", 0, 0x800, 0)
    plc = cps + pcds
    clx = b"\x02" + struct.pack("<I", len(plc)) + plc
    text = attached._pieces(bytes(word), clx, 1000)
    assert text.startswith("Dear user\n") and "Verify now" in text
    assert attached._doc_text(b"not an OLE file") == ""


# ---- QR codes -----------------------------------------------------------------------------------


def test_a_qr_code_alone_in_a_short_mail_is_a_lure_and_its_link_is_judged() -> None:
    raw = mail_with(("scan.png", "image/png", qr_png("https://bit.ly/3xYzAbc")), text="Action required.")
    found = symbols(raw)
    assert found["QR_URL"] == "bit.ly"
    assert found["PHISH_QR_LURE"].startswith("2 words of text")
    assert found["PHISH_QR_SUSPICIOUS_URL"] == "PHISH_URL_SHORTENER"
    assert found["PHISH_URL_SHORTENER"] == "bit.ly"


def test_a_qr_code_to_a_file_share_behind_a_bare_request_to_scan_is_free_hosting_phish() -> None:
    picture = ("scan.png", "image/png", qr_png("https://storage.googleapis.com/bucket/login.html"))
    found = symbols(mail_with(picture, text="Scan the QR code to read your document."))
    assert found["PHISH_URL_FREE_HOSTING"] == "storage.googleapis.com with PHISH_QR_LURE"


def test_an_inline_qr_picture_in_a_long_mail_is_a_lure_only_when_the_text_asks_to_scan_it() -> None:
    story = " ".join(["Our team met on Tuesday to plan the spring event in the hall."] * 10)
    picture = ("", "image/png", qr_png("https://events.example.org/spring"))
    plain = symbols(mail_with(picture, text=story, inline=True))
    assert plain["QR_URL"] == "events.example.org"
    assert "PHISH_QR_LURE" not in plain and "PHISH_QR_SUSPICIOUS_URL" not in plain
    asking = symbols(mail_with(picture, text=story + " Scan the QR code with your phone.", inline=True))
    assert asking["PHISH_QR_LURE"].startswith("asks to scan (scan the qr)")


def test_a_qr_picture_written_into_the_html_as_a_data_uri_is_read() -> None:
    encoded = base64.b64encode(qr_png("https://mylinks.example.us/x")).decode()
    html = f'<p>Your mailbox password expires.</p><img src="data:image/png;base64,{encoded}">'
    found = dict(Heuristics().symbols(mail(text=None, html=html)))
    assert found["QR_URL"] == "mylinks.example.us"
    assert found["PHISH_QR_LURE"].startswith("4 words of text")


def test_a_qr_code_in_a_pdf_picture_is_read() -> None:
    raw = mail_with(("mfa.pdf", PDF, pdf(["Re-enable two-factor sign-in"], qr="https://mfa.example.net/renew")))
    evidence = attached_evidence(Message(raw))
    assert [(c.where, c.text) for c in evidence.qr_codes] == [("mfa.pdf page 1", "https://mfa.example.net/renew")]


def test_a_qr_lure_with_a_shortened_link_is_phish(tmp_path: Path) -> None:
    raw = mail_with(("scan.png", "image/png", qr_png("https://bit.ly/3xYzAbc")), text="Scan to re-validate MFA.")
    verdict = scan(raw, tmp_path)
    row = verdict.as_dict()
    codes = {f["code"] for stage in row["stages"] for f in stage["findings"]}
    assert {"QR_URL", "PHISH_QR_LURE", "PHISH_QR_SUSPICIOUS_URL", "PHISH_URL_SHORTENER"} <= codes
    assert row["category"] == "phish"


def test_qr_reading_and_text_reading_can_be_switched_off_and_limits_are_validated(tmp_path: Path) -> None:
    raw = mail_with(("scan.png", "image/png", qr_png("https://bit.ly/3xYzAbc")), text="Scan to re-validate MFA.")
    off = scan(raw, tmp_path, attachments={"qr": False})
    assert not any(f.code.startswith(("QR_", "PHISH_QR_")) for f in off.findings)
    with pytest.raises(ConfigError, match="attachments"):
        scan(raw, tmp_path, attachments={"max_images": -1})


def test_pictures_too_small_for_a_code_and_pictures_past_the_limit_are_not_decoded() -> None:
    tiny = qr_png("https://a.example/", scale=1)  # 29 pixels square: below the 40-pixel floor
    assert attached_evidence(Message(mail_with(("t.png", "image/png", tiny)))).qr_codes == ()
    pictures = [(f"{i}.png", "image/png", qr_png(f"https://a.example/{i}")) for i in range(3)]
    two = attached_evidence(Message(mail_with(*pictures)), AttachedLimits(max_images=2))
    assert [c.text for c in two.qr_codes] == ["https://a.example/0", "https://a.example/1"]
    nothing = attached_evidence(Message(mail_with(*pictures)), AttachedLimits(seconds=1e-9))
    assert nothing.qr_codes == ()  # the time budget is spent before the first picture


# ---- hostile input ------------------------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A grey PNG that declares these dimensions and carries almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


_BROKEN = [
    ("cut.pdf", PDF, pdf(LURE, link="https://x.example/")[:200]),
    ("garbage.pdf", PDF, b"%PDF-1.7\n" + bytes(range(256)) * 20),
    ("loop.pdf", PDF, b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 1 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF"),
    ("bad.docx", DOCX, b"PK\x03\x04word/" + b"\x00" * 300),
    ("bad.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\xff" * 500),
    ("bad.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 500),
    ("bad.doc", "application/msword", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600),
    ("huge.png", "image/png", _png_header(60_000, 60_000)),
    ("large.png", "image/png", _png_header(5_000, 5_000)),
]


@pytest.mark.parametrize(("name", "ctype", "data"), _BROKEN, ids=[b[0] for b in _BROKEN])
def test_broken_attachments_give_nothing_and_never_fail_the_scan(
    name: str, ctype: str, data: bytes, tmp_path: Path
) -> None:
    raw = mail_with((name, ctype, data))
    evidence = attached_evidence(Message(raw))
    assert evidence.qr_codes == ()
    verdict = scan(raw, tmp_path)
    assert all(stage.error is None for stage in verdict.stages)


@settings(max_examples=40, deadline=None)
@given(
    head=st.sampled_from([b"%PDF-1.4\n", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"PK\x03\x04word/"]),
    body=st.binary(max_size=2000),
)
def test_random_bytes_behind_a_document_or_picture_signature_never_raise(head: bytes, body: bytes) -> None:
    attached_evidence(Message(mail_with(("f.bin", "application/octet-stream", head + body))))
