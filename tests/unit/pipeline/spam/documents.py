"""Attachments built in code for the attachment-evidence tests: PDFs, Office files, QR pictures, mail."""

from __future__ import annotations

import io
import zipfile
import zlib
from email.message import EmailMessage
from email.policy import SMTP

import segno


def qr_matrix(text: str, scale: int = 4, border: int = 4) -> tuple[int, int, bytes]:
    """(width, height, 8-bit grey pixels) of a QR code holding `text`."""
    code = segno.make(text, error="m", micro=False)
    rows = [list(row) for row in code.matrix_iter(scale=scale, border=border)]
    pixels = bytes(0 if dark else 255 for row in rows for dark in row)
    return len(rows[0]), len(rows), pixels


def qr_png(text: str, scale: int = 4) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf(
    pages: list[str],
    *,
    link: str | None = None,
    qr: str | None = None,
) -> bytes:
    """A PDF whose pages show these lines of text; the first page may carry a link annotation to `link`
    and a picture of a QR code holding `qr`."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below
    page_tree = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for index, text in enumerate(pages):
        lines = b"".join(
            b"BT /F1 12 Tf 72 %d Td (%s) Tj ET\n" % (720 - 16 * i, _escape(line).encode("latin-1"))
            for i, line in enumerate(text.splitlines())
        )
        resources = b"/Font << /F1 %d 0 R >>" % font
        extra = b""
        if index == 0 and qr is not None:
            width, height, pixels = qr_matrix(qr)
            data = zlib.compress(pixels)
            image = add(
                b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n"
                % (width, height, len(data))
                + data
                + b"\nendstream"
            )
            resources += b" /XObject << /Im1 %d 0 R >>" % image
            lines += b"q 200 0 0 200 72 300 cm /Im1 Do Q\n"
        content = add(b"<< /Length %d >>\nstream\n" % len(lines) + lines + b"endstream")
        if index == 0 and link is not None:
            annot = add(
                b"<< /Type /Annot /Subtype /Link /Rect [72 700 300 720] /Border [0 0 0] "
                b"/A << /S /URI /URI (%s) >> >>" % _escape(link).encode("latin-1")
            )
            extra = b" /Annots [%d 0 R]" % annot
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << %s >> /Contents %d 0 R%s >>"
                % (page_tree, resources, content, extra)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % page_tree
    objects[page_tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    return bytes(out)


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def docx(paragraphs: list[str], *, hyperlink: str | None = None, picture: bytes | None = None) -> bytes:
    """A Word document with these paragraphs, an external hyperlink and a picture in word/media."""
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    rels = ""
    if hyperlink is not None:
        body += '<w:p><w:hyperlink r:id="rId9"><w:r><w:t>Open</w:t></w:r></w:hyperlink></w:p>'
        rels = f'<Relationship Id="rId9" Type="{_R}/hyperlink" Target="{hyperlink}" TargetMode="External"/>'
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr(
            "word/document.xml",
            f'<?xml version="1.0"?><w:document xmlns:w="{_W}" xmlns:r="{_R}"><w:body>{body}</w:body></w:document>',
        )
        archive.writestr(
            "word/_rels/document.xml.rels",
            f'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f"{rels}</Relationships>",
        )
        if picture is not None:
            archive.writestr("word/media/image1.png", picture)
    return out.getvalue()


def mail_with(
    *attachments: tuple[str, str, bytes],
    text: str | None = "Please see the attached file.",
    subject: str = "Document",
    inline: bool = False,
) -> bytes:
    """A message from an external sender with these (file name, MIME type, bytes) attachments; with
    `inline`, pictures go in as inline parts without a file name."""
    msg = EmailMessage()
    msg["From"] = "Accounts <accounts@example.net>"
    msg["To"] = "bob@example.com"
    msg["Subject"] = subject
    msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    msg["Message-ID"] = "<doc1@mail.example.net>"
    msg.set_content(text or "")
    for name, ctype, data in attachments:
        maintype, subtype = ctype.split("/", 1)
        if inline:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, disposition="inline")
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=SMTP)
