"""The text a recipient sees in a message, for transport-rule conditions and DLP.

Pure: it parses only the bytes it is given. Visible headers (Subject, display names), text bodies, HTML
bodies turned into text, and text pulled out of attachments: plain text, CSV, HTML, Office Open XML
(docx/xlsx/pptx) and PDF. Hostile input (zip bombs, broken or entity-laden XML, encrypted or corrupt
PDFs) yields what could be read and never raises; every reader is bounded in bytes, members, pages and
characters.
"""

from __future__ import annotations

import codecs
import contextlib
import email.utils
import io
import logging
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Final, TypeVar
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from mailwarden.model import filetype
from mailwarden.model.message import Message, bounded, decode_header_value

_T = TypeVar("_T")

DEFAULT_MAX_CHARS: Final = 2_000_000
"""Characters of text kept per message, all sources together."""


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """How far one attachment is opened. Office files are zips: the limits echo the malware walker's."""

    max_input_bytes: int = 25 * 1024 * 1024
    max_chars: int = 1_000_000
    max_members: int = 2_000
    max_member_bytes: int = 20 * 1024 * 1024
    max_total_bytes: int = 60 * 1024 * 1024
    max_ratio: float = 100.0
    # small XML parts compress far better than 100:1 without being bombs
    ratio_min_bytes: int = 1024 * 1024
    max_pdf_pages: int = 50
    # HTML parses at a few MB per CPU second: a multi-megabyte body (seen in phishing) is read in part
    max_html_chars: int = 512 * 1024


LIMITS: Final = ExtractLimits()


@dataclass(frozen=True, slots=True)
class TextSource:
    """One piece of visible text and where it came from.

    `where` is "subject", "from", "to", "cc", "body" (text and HTML bodies alike) or
    "attachment:<file name>".
    """

    where: str
    text: str


# ---- the message --------------------------------------------------------------------------------

_CACHE_KEY: Final = "_mailwarden_extract_texts"


def message_texts(message: Message, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[TextSource]:
    """Every visible text of a message, in reading order, at most `max_chars` characters in all.

    The result is cached on the message object, so rules and DLP share one extraction.
    """
    cache: dict[int, tuple[TextSource, ...]] = message.__dict__.setdefault(_CACHE_KEY, {})
    found = cache.get(max_chars)
    if found is None:
        found = tuple(_bounded(_message_sources(message), max_chars))
        cache[max_chars] = found
    return list(found)


def _message_sources(message: Message) -> Iterator[TextSource]:
    yield TextSource("subject", _safely(lambda: message.subject) or "")
    for header in ("From", "To", "Cc"):
        names = _display_names(message, header)
        if names:
            yield TextSource(header.lower(), names)
    for text in _safely(lambda: message.text_parts) or ():
        yield TextSource("body", text)
    for html in _safely(lambda: message.html_parts) or ():
        yield TextSource("body", html_to_text(bounded(html, LIMITS.max_html_chars)))
    for att in _safely(lambda: message.attachments) or ():
        name = att.filename or ""
        extracted = attachment_text(name, att.declared_type, att.payload)
        if extracted:
            yield TextSource(f"attachment:{name}", extracted)


def _safely(read: Callable[[], _T]) -> _T | None:
    """A part of the message model, or None when malformed MIME makes the model raise: one broken
    part must not hide the text of the others."""
    try:
        return read()
    except Exception:
        logging.getLogger(__name__).debug("message part unreadable", exc_info=True)
        return None


def _display_names(message: Message, header: str) -> str:
    values = message.raw_headers(header)
    try:
        pairs = email.utils.getaddresses(values)
    except (TypeError, ValueError, IndexError):
        return ""
    names = (decode_header_value(display) for display, _ in pairs)
    return ", ".join(n for n in names if n)


def _bounded(sources: Iterable[TextSource], max_chars: int) -> Iterator[TextSource]:
    left = max_chars
    for source in sources:
        if left <= 0:
            return
        if not source.text:
            continue
        text = source.text[:left]
        left -= len(text)
        yield TextSource(source.where, text)


# ---- one attachment -----------------------------------------------------------------------------

_TEXT_EXTENSIONS: Final = frozenset({"txt", "text", "csv", "tsv", "log", "md", "json", "xml", "eml"})
_HTML_EXTENSIONS: Final = frozenset({"html", "htm", "xhtml"})
_OOXML_EXTENSIONS: Final = frozenset({"docx", "docm", "xlsx", "xlsm", "pptx", "pptm"})


def attachment_text(name: str, content_type: str, data: bytes, *, limits: ExtractLimits = LIMITS) -> str | None:
    """The text inside one attached file, or None when the type carries no text we read.

    The kind is decided by the bytes first (an Office file renamed .txt is still read as Office), then by
    the name and the declared type. Never raises; a broken file gives what could be read, possibly "".
    """
    if len(data) > limits.max_input_bytes:
        data = data[: limits.max_input_bytes]
    reader = _reader_for(name, content_type, data)
    if reader is None:
        return None
    try:
        text = reader(data, limits)
    except Exception:  # a parser's own failure on hostile bytes must not stop the pipeline
        logging.getLogger(__name__).debug("text extraction failed for %r", name, exc_info=True)
        return ""
    return text[: limits.max_chars]


def _reader_for(name: str, content_type: str, data: bytes) -> Callable[[bytes, ExtractLimits], str] | None:
    real = filetype.sniff(data)
    ext = name.rsplit(".", 1)[1].lower() if "." in name else ""
    ctype = content_type.lower()
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        real = "text/plain"  # the sniffer takes UTF-16's NUL bytes for binary
    if real == "application/pdf":
        return _pdf_text
    if real.startswith("application/vnd.openxmlformats-officedocument") or (
        real == "application/zip" and ext in _OOXML_EXTENSIONS
    ):
        return _ooxml_text
    if real in ("text/plain", "text/html"):
        if real == "text/html" or ext in _HTML_EXTENSIONS or ctype == "text/html":
            return lambda b, lim: html_to_text(bounded(decode_bytes(b), lim.max_html_chars))
        if ext in _TEXT_EXTENSIONS or ctype.startswith("text/") or not ext:
            return lambda b, lim: decode_bytes(b)
    return None


_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_bytes(data: bytes) -> str:
    """Bytes of a text file as str: a BOM, else UTF-8, else Shift_JIS (cp932, common for Japanese CSV
    from Excel), else cp1252."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, "replace")
    for codec in ("utf-8", "cp932"):
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode(codec)
    return data.decode("cp1252", "replace")


# ---- HTML ---------------------------------------------------------------------------------------

_SKIPPED_TAGS: Final = frozenset({"script", "style", "template"})
_BLOCK_TAGS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption",
        "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
        "ol", "p", "pre", "section", "table", "td", "th", "title", "tr", "ul",
    }
)  # fmt: skip
_SPACES_RE: Final = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES_RE: Final = re.compile(r"\n\s*\n+")


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping: str | None = None  # inside <script>, <style> or <template>: nothing is shown

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS and self.skipping is None:
            self.skipping = tag
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")
        elif tag == "img" and self.skipping is None:
            alt = dict(attrs).get("alt")
            if alt:
                self.chunks.append(f" {alt} ")

    def handle_endtag(self, tag: str) -> None:
        if tag == self.skipping:
            self.skipping = None
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping is None:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """Readable text of an HTML document: no script or style, entities decoded, blocks on their own
    lines. Hidden text (display:none) is kept: it is still sent, and DLP must see it."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser copes with almost anything; keep what it read if it does not
        logging.getLogger(__name__).debug("HTML parse failed", exc_info=True)
    text = _SPACES_RE.sub(" ", "".join(parser.chunks))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES_RE.sub("\n\n", text).strip()


# ---- Office Open XML ----------------------------------------------------------------------------


class _Budget:
    """What is left of one zip's byte and member limits."""

    def __init__(self, limits: ExtractLimits) -> None:
        self.limits = limits
        self.total = 0
        self.members = 0

    def read(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
        """A member's bytes, or None when a limit forbids reading it (then the rest is skipped too)."""
        lim = self.limits
        self.members += 1
        if self.members > lim.max_members or info.file_size > lim.max_member_bytes:
            return None
        if info.file_size >= lim.ratio_min_bytes and info.file_size > lim.max_ratio * max(info.compress_size, 1):
            return None
        allowed = min(lim.max_member_bytes, lim.max_total_bytes - self.total)
        if allowed <= 0:
            return None
        # the declared size may lie: read one byte past what is allowed to notice
        with archive.open(info) as member:
            data = member.read(allowed + 1)
        if len(data) > allowed:
            return None
        if len(data) >= lim.ratio_min_bytes and len(data) > lim.max_ratio * max(info.compress_size, 1):
            return None
        self.total += len(data)
        return data


def _natural_key(name: str) -> tuple[int, str]:
    digits = re.search(r"(\d+)\.xml$", name)
    return (int(digits.group(1)) if digits else 0, name)


_DOCX_PARTS: Final = re.compile(r"word/(document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml")
_PPTX_PARTS: Final = re.compile(r"ppt/(slides/slide|notesSlides/notesSlide)\d+\.xml")
_XLSX_SHEETS: Final = re.compile(r"xl/worksheets/sheet\d+\.xml")


def _ooxml_text(data: bytes, limits: ExtractLimits) -> str:
    out: list[str] = []
    budget = _Budget(limits)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        if "xl/workbook.xml" in infos:
            shared: list[str] = []
            if "xl/sharedStrings.xml" in infos:
                root = _parse(budget.read(archive, infos["xl/sharedStrings.xml"]))
                if root is not None:
                    shared = [_joined_t(si) for si in root if _local(si.tag) == "si"]
            for name in sorted((n for n in infos if _XLSX_SHEETS.fullmatch(n)), key=_natural_key):
                root = _parse(budget.read(archive, infos[name]))
                if root is not None:
                    out.append(_sheet_text(root, shared))
        else:
            parts = [n for n in infos if _DOCX_PARTS.fullmatch(n) or _PPTX_PARTS.fullmatch(n)]
            for name in sorted(parts, key=lambda n: (n.split("/")[1], _natural_key(n))):
                root = _parse(budget.read(archive, infos[name]))
                if root is not None:
                    out.append(_paragraph_text(root))
                if sum(map(len, out)) > limits.max_chars:
                    break
    return "\n".join(t for t in out if t)


def _parse(data: bytes | None) -> Element | None:
    if data is None:
        return None
    try:
        root: Element = SafeET.fromstring(data, forbid_dtd=True)
    except (SafeET.ParseError, DefusedXmlException, ValueError):
        return None
    return root


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _joined_t(element: Element) -> str:
    return "".join(e.text or "" for e in element.iter() if _local(e.tag) == "t")


def _paragraph_text(root: Element) -> str:
    """Word and PowerPoint text: runs (`t`) joined, a line per paragraph (`p`), tabs and breaks kept."""
    lines: list[str] = []
    for para in root.iter():
        if _local(para.tag) != "p":
            continue
        chunks: list[str] = []
        for e in para.iter():
            name = _local(e.tag)
            if name == "t":
                chunks.append(e.text or "")
            elif name == "tab":
                chunks.append("\t")
            elif name in ("br", "cr"):
                chunks.append("\n")
        if chunks:
            lines.append("".join(chunks))
    return "\n".join(lines)


def _sheet_text(root: Element, shared: list[str]) -> str:
    """A worksheet as tab-separated rows; shared strings resolved, inline strings and values kept."""
    rows: list[str] = []
    for row in root.iter():
        if _local(row.tag) != "row":
            continue
        cells: list[str] = []
        for cell in row:
            if _local(cell.tag) != "c":
                continue
            kind = cell.get("t")
            if kind == "inlineStr":
                cells.append(_joined_t(cell))
                continue
            value = next((e.text or "" for e in cell if _local(e.tag) == "v"), "")
            if kind == "s":
                with contextlib.suppress(ValueError, IndexError):
                    value = shared[int(value)]
            cells.append(value)
        rows.append("\t".join(cells))
    return "\n".join(rows)


# ---- PDF ----------------------------------------------------------------------------------------


def _pdf_text(data: bytes, limits: ExtractLimits) -> str:
    from pypdf import PdfReader  # imported on first PDF: pypdf costs import time most messages never need

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-file warnings are not ours to log
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        # an empty user password opens many "encrypted" PDFs (permissions only); others stay closed
        try:
            opened = reader.decrypt("")
        except Exception:
            return ""
        if not opened:
            return ""
    out: list[str] = []
    size = 0
    for index, page in enumerate(reader.pages):
        if index >= limits.max_pdf_pages or size > limits.max_chars:
            break
        try:
            text = page.extract_text() or ""
        except Exception:  # one broken page content stream does not hide the others
            logging.getLogger(__name__).debug("PDF page %d unreadable", index, exc_info=True)
            continue
        out.append(text)
        size += len(text)
    return "\n".join(out)
