"""Visible text of messages and attachments, including hostile files built here."""

from __future__ import annotations

import io
import zipfile

import pytest
from pypdf import PdfReader, PdfWriter

from mailwarden.model.message import Message
from mailwarden.pipeline.extract import ExtractLimits, TextSource, attachment_text, html_to_text, message_texts
from tests.factories import build_message

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
A = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
S = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _zip(members: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        for name, body in members.items():
            z.writestr(name, body)
    return buf.getvalue()


def docx(*paragraphs: str) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    return _zip({"word/document.xml": f"<w:document {W}><w:body>{body}</w:body></w:document>"})


def footer(text: str) -> str:
    return f"<w:ftr {W}><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:ftr>"


def xlsx(shared: list[str], rows: list[list[tuple[str | None, str]]]) -> bytes:
    sst = "".join(f"<si><t>{s}</t></si>" for s in shared)
    xml_rows = []
    for r, row in enumerate(rows, 1):
        cells = []
        for kind, value in row:
            if kind == "inlineStr":
                cells.append(f'<c r="A{r}" t="inlineStr"><is><t>{value}</t></is></c>')
            elif kind:
                cells.append(f'<c r="A{r}" t="{kind}"><v>{value}</v></c>')
            else:
                cells.append(f'<c r="A{r}"><v>{value}</v></c>')
        xml_rows.append(f'<row r="{r}">{"".join(cells)}</row>')
    return _zip(
        {
            "xl/workbook.xml": f"<workbook {S}/>",
            "xl/sharedStrings.xml": f"<sst {S}>{sst}</sst>",
            "xl/worksheets/sheet1.xml": f"<worksheet {S}><sheetData>{''.join(xml_rows)}</sheetData></worksheet>",
        }
    )


def pptx(*slides: str) -> bytes:
    members: dict[str, str | bytes] = {"ppt/presentation.xml": "<p/>"}
    for i, text in enumerate(slides, 1):
        members[f"ppt/slides/slide{i}.xml"] = f"<sld {A}><a:p><a:r><a:t>{text}</a:t></a:r></a:p></sld>"
    return _zip(members)


def pdf(*pages: str) -> bytes:
    """A minimal PDF with one line of Helvetica text per page, offsets computed so no repair is needed."""
    objects: list[bytes] = []
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def encrypted(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# ---- the message ---------------------------------------------------------------------------------


def test_message_texts_has_subject_display_names_bodies_and_attachments() -> None:
    raw = build_message(
        sender="=?utf-8?b?5bGx55Sw5aSq6YOO?= <taro@example.jp>",
        to="Bob Builder <bob@example.com>, carol@example.com",
        subject="Invoice 42",
        text="plain body",
        html="<p>html body &amp; more</p>",
        attachments=[("notes.txt", "text/plain", b"attached words")],
    )
    texts = message_texts(Message(raw))
    assert TextSource("subject", "Invoice 42") in texts
    assert TextSource("from", "山田太郎") in texts
    assert TextSource("to", "Bob Builder") in texts
    bodies = [t.text for t in texts if t.where == "body"]
    assert any("plain body" in b for b in bodies)
    assert "html body & more" in bodies
    assert TextSource("attachment:notes.txt", "attached words") in texts
    # addresses are not display text: DLP must not count every recipient as an e-mail address
    assert not any("bob@example.com" in t.text for t in texts)


def test_message_texts_is_cached_and_bounded() -> None:
    message = Message(build_message(text="x" * 5000))
    first = message_texts(message, max_chars=100)
    assert sum(len(t.text) for t in first) == 100
    assert message_texts(message, max_chars=100) == first
    assert sum(len(t.text) for t in message_texts(message)) > 5000


def test_office_attachment_in_a_message_is_read() -> None:
    raw = build_message(attachments=[("report.docx", DOCX, docx("Card 4111 1111 1111 1111"))])
    texts = message_texts(Message(raw))
    assert TextSource("attachment:report.docx", "Card 4111 1111 1111 1111") in texts


# ---- HTML ----------------------------------------------------------------------------------------


def test_html_to_text_drops_script_and_style_and_decodes_entities() -> None:
    html = (
        "<html><head><title>Hello</title><style>.a{color:red}</style></head><body>"
        "<script>var secret = 1;</script><p>Tom &amp; Jerry&nbsp;&#x2603;</p><div>second<br>line</div>"
        '<img alt="logo text"></body></html>'
    )
    text = html_to_text(html)
    assert "secret" not in text and "color" not in text
    assert "Tom & Jerry ☃" in text
    assert "second\nline" in text
    assert "logo text" in text


def test_html_to_text_survives_broken_markup() -> None:
    text = html_to_text("<p <b>>unclosed <script>never closed</scr <div>")
    assert "unclosed" in text and "never closed" not in text
    assert html_to_text("<div>still here</p></td>") == "still here"


# ---- attachments ---------------------------------------------------------------------------------


def test_text_csv_and_html_attachments() -> None:
    assert attachment_text("a.txt", "text/plain", b"hello") == "hello"
    sjis = "氏名,電話番号\n山田,03-1234-5678\n".encode("cp932")
    assert attachment_text("list.csv", "text/csv", sjis) == "氏名,電話番号\n山田,03-1234-5678\n"
    assert attachment_text("u16.txt", "text/plain", "\ufeffwide".encode("utf-16-le")) == "wide"
    assert attachment_text("p.html", "text/html", b"<b>bold</b><script>x</script>") == "bold"


def test_binary_attachment_has_no_text() -> None:
    assert attachment_text("photo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(100)) is None
    assert attachment_text("tool.exe", "application/octet-stream", b"MZ" + bytes(100)) is None


def test_docx_paragraphs() -> None:
    assert attachment_text("a.docx", DOCX, docx("first line", "second line")) == "first line\nsecond line"


def test_xlsx_shared_inline_and_numeric_cells() -> None:
    data = xlsx(
        ["カード番号", "Name"],
        [[("s", "0"), (None, "4111111111111111")], [("s", "1"), ("inlineStr", "Taro")]],
    )
    assert attachment_text("a.xlsx", "application/octet-stream", data) == "カード番号\t4111111111111111\nName\tTaro"


def test_pptx_slides_in_order() -> None:
    data = pptx(*(f"slide {i}" for i in range(1, 12)))
    text = attachment_text("deck.pptx", "application/vnd.ms-powerpoint", data)
    assert text is not None
    assert text.split("\n") == [f"slide {i}" for i in range(1, 12)]


def test_office_renamed_as_txt_is_still_read_as_office() -> None:
    assert attachment_text("innocent.txt", "text/plain", docx("hidden words")) == "hidden words"


def test_pdf_text_and_page_limit() -> None:
    data = pdf("first page 4111 1111 1111 1111", "second page")
    text = attachment_text("a.pdf", "application/pdf", data)
    assert text is not None and "4111 1111 1111 1111" in text and "second page" in text
    one = attachment_text("a.pdf", "application/pdf", data, limits=ExtractLimits(max_pdf_pages=1))
    assert one is not None and "first page" in one and "second page" not in one


def test_pdf_encrypted_with_empty_user_password_is_read_and_with_a_password_is_not() -> None:
    plain = pdf("confidential words")
    opened = attachment_text("a.pdf", "application/pdf", encrypted(plain, ""))
    assert opened is not None and "confidential words" in opened
    assert attachment_text("a.pdf", "application/pdf", encrypted(plain, "s3cret")) == ""


def test_truncated_pdf_gives_what_it_can_without_raising() -> None:
    data = pdf("some text")
    assert attachment_text("a.pdf", "application/pdf", data[: len(data) // 2]) in ("", "some text")
    assert attachment_text("a.pdf", "application/pdf", b"%PDF-1.7\n\x00garbage") == ""


# ---- hostile Office files ------------------------------------------------------------------------


def test_xml_entity_expansion_is_refused() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        f"<w:document {W}><w:body><w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>"
    )
    data = _zip({"word/document.xml": bomb, "word/footer1.xml": footer("ok")})
    assert attachment_text("a.docx", DOCX, data) == "ok"


def test_broken_xml_and_broken_zip_never_raise() -> None:
    assert attachment_text("a.docx", DOCX, _zip({"word/document.xml": "<w:document><unclosed"})) == ""
    assert attachment_text("a.docx", DOCX, docx("x")[:60]) == ""


def test_zip_bomb_member_is_not_expanded() -> None:
    huge = b"<w:t>" + b"A" * (30 * 1024 * 1024) + b"</w:t>"
    data = _zip({"word/document.xml": huge, "word/footer1.xml": footer("tail")})
    assert len(data) < 100_000
    # the 30 MB part is over both the member limit and the 100:1 ratio: it is skipped, the small one read
    assert attachment_text("a.docx", DOCX, data) == "tail"


def test_member_that_lies_about_its_size_does_not_raise() -> None:
    body = f"<w:document {W}><w:body><w:p><w:r><w:t>" + "B" * 200_000 + "</w:t></w:r></w:p></w:body></w:document>"
    data = bytearray(_zip({"word/document.xml": body}))
    # rewrite the declared uncompressed size (central directory) to 10 bytes; zipfile then refuses
    # to read more than it declared, and the reader must not raise
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    result = attachment_text("a.docx", DOCX, bytes(data), limits=ExtractLimits(max_member_bytes=1000))
    assert result == ""


@pytest.mark.parametrize("members", [3, 50])
def test_member_count_limit(members: int) -> None:
    data = _zip(
        {f"ppt/slides/slide{i}.xml": f"<sld {A}><a:p><a:r><a:t>s{i}</a:t></a:r></a:p></sld>" for i in range(1, 51)}
    )
    text = attachment_text("d.pptx", DOCX, data, limits=ExtractLimits(max_members=members))
    assert text is not None
    assert len(text.split("\n")) == members


def test_a_part_the_message_model_cannot_read_does_not_hide_the_rest() -> None:
    # raw 8-bit bytes in Content-Disposition make the model's attachment listing raise (compat32 Header)
    raw = (
        b"From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nbody text\r\n"
        b"--XX\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="\xe5\xa5\xbd.bin"\r\n\r\nxyz\r\n--XX--\r\n'
    )
    assert TextSource("body", "body text") in message_texts(Message(raw))
