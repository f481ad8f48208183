"""Evidence inside attachments for the spam filter: the text of PDF and Office files, the links they carry
and the links QR codes hold.

Lures that put their wording and their link in a PDF, a Word file or a picture of a QR code leave the body
almost empty; this module reads what the recipient would read or scan, so the classifier and the phishing
heuristics judge it like body text and body links.

What is read, all of it bounded by `AttachedLimits` (small by default) and by a time budget per message:

- PDF (`pypdf`): the text of the first pages, their link annotations (`/URI` actions) and their embedded
  images (for QR codes). An encrypted PDF that an empty password does not open, or a malformed one, gives
  nothing. QR codes drawn as vector graphics in a PDF are not seen (that needs a renderer).
- Office Open XML (docx, xlsx, pptx): the text (`pipeline/extract.py`), external hyperlinks from the parts'
  relationships, and pictures under `*/media/` (for QR codes).
- Word 97-2003 (.doc): the text, from the document's piece table.
- Images (PNG, JPEG, GIF, inline or attached): QR codes, decoded with zxing-cpp on a grey, downscaled copy.

Never raises: a file that cannot be read adds nothing.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import logging
import re
import struct
import time
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from mailwarden.model.message import Attachment, Message
from mailwarden.pipeline import extract
from mailwarden.pipeline.malware.passwords import candidates

log = logging.getLogger(__name__)

_PDF: Final = "application/pdf"
_OLE: Final = "application/x-ole-storage"
_OOXML_PREFIX: Final = "application/vnd.openxmlformats-officedocument"
_IMAGES: Final = frozenset({"image/png", "image/jpeg", "image/gif"})
# a picture written into HTML as a data: URI (`<img src="data:image/png;base64,...">`)
_DATA_IMAGE_RE: Final = re.compile(r"data:image/(?:png|jpeg|jpg|gif);base64,([A-Za-z0-9+/=\s]{80,})", re.IGNORECASE)
_URL_RE: Final = re.compile(r"""(?i)\b(?:https?://|www\.)[^\s<>"'()\[\]{}]{2,2000}""")
_TRAILING: Final = ".,;:!?"
_MEDIA_RE: Final = re.compile(r"(?:word|xl|ppt)/media/[^/]+\.(?:png|jpe?g|gif)", re.IGNORECASE)
_RELS_RE: Final = re.compile(r"(?:word|xl|ppt)/(?:[^/]+/)*_rels/[^/]+\.rels")
_HYPERLINK_TYPE: Final = "/hyperlink"
MAX_PASSWORDS: Final = 12  # passwords tried on an encrypted PDF (the empty one, then the body's)


@dataclass(frozen=True, slots=True)
class AttachedLimits:
    """How much of a message's attachments is read; `[stages.spam.attachments]` sets them."""

    text: bool = True  # read PDF and Office text and links
    qr: bool = True  # decode QR codes in images
    max_chars: int = 16 * 1024  # attachment text kept per message, all files together
    max_pdf_pages: int = 5  # pages read per PDF
    max_files: int = 5  # PDF and Office files read per message
    max_file_bytes: int = 10 * 1024 * 1024  # larger documents are not opened
    max_images: int = 4  # images decoded per message (attached, inline and inside documents)
    max_image_bytes: int = 2 * 1024 * 1024  # larger image files are not decoded
    max_image_pixels: int = 4_000_000  # images larger than this (after JPEG's cheap reduction) are skipped
    min_image_side: int = 40  # smaller images (icons, tracking pixels) cannot hold a readable QR code
    qr_side: int = 1000  # images are scaled down to this many pixels on their longer side
    seconds: float = 0.25  # CPU time spent per message; checked between pages, files and images
    max_links: int = 200  # links kept from attachments


LIMITS: Final = AttachedLimits()


@dataclass(frozen=True, slots=True)
class QrCode:
    """A QR code found in an image: where it was and what it says."""

    where: str  # the image's file name, or "<document> page N"
    text: str


@dataclass(frozen=True, slots=True)
class AttachedEvidence:
    """What a message's attachments say: text, links and QR codes."""

    text: str = ""
    links: tuple[str, ...] = ()  # links in documents: annotations, hyperlinks and URLs in their text
    qr_codes: tuple[QrCode, ...] = ()

    @property
    def qr_links(self) -> tuple[str, ...]:
        """The QR codes that hold a web link."""
        return tuple(dict.fromkeys(u for c in self.qr_codes if (u := web_link(c.text))))


NOTHING: Final = AttachedEvidence()
_CACHE_KEY: Final = "_mailwarden_attached_evidence"


def attached_evidence(message: Message, limits: AttachedLimits | None = None) -> AttachedEvidence:
    """The evidence in a message's attachments, computed once per message and limits.

    Without `limits`, the evidence already computed for this message is reused whatever its limits were
    (the spam stage computes it first with its configured limits; the tokenizer and heuristics then read
    it), else the defaults apply.
    """
    cache: dict[AttachedLimits, AttachedEvidence] = message.__dict__.setdefault(_CACHE_KEY, {})
    if limits is None:
        if cache:
            return next(iter(cache.values()))
        limits = LIMITS
    found = cache.get(limits)
    if found is None:
        try:
            found = _Reader(limits).read(message)
        except Exception:  # a reader's own failure on hostile bytes never stops the scan
            log.debug("attachment evidence unreadable", exc_info=True)
            found = NOTHING
        cache[limits] = found
    return found


def web_link(text: str) -> str | None:
    """`text` when it is a web link (what a phone's camera would offer to open), else None."""
    value = text.strip()
    if len(value) > 4000 or any(c.isspace() for c in value):
        return None
    low = value.lower()
    if low.startswith(("http://", "https://")):
        return value
    if low.startswith("www."):
        return "http://" + value
    return None


def links_in(text: str) -> Iterator[str]:
    """Web links written out in a piece of text."""
    for m in _URL_RE.finditer(text):
        url = m.group(0).rstrip(_TRAILING)
        yield "http://" + url if url.lower().startswith("www.") else url


class _Reader:
    """One message's reading, with its budgets."""

    def __init__(self, limits: AttachedLimits) -> None:
        self.limits = limits
        # CPU time, not wall time: what a message may cost does not depend on how busy the machine is; this
        # thread's, not the process's: readings on other threads at the same time spend their own budgets
        self.deadline = time.thread_time() + limits.seconds
        self.texts: list[str] = []
        self.chars = 0
        self.links: dict[str, None] = {}
        self.codes: list[QrCode] = []
        self.images_left = limits.max_images
        self.passwords: list[str] | None = None

    def read(self, message: Message) -> AttachedEvidence:
        lim = self.limits
        documents = 0
        for att in message.attachments:
            if self._late():
                break
            kind = att.real_type
            name = att.filename or "(unnamed)"
            if kind in _IMAGES:
                if lim.qr:
                    self._image(att.payload, name)
                continue
            if not lim.text or documents >= lim.max_files or att.size > lim.max_file_bytes:
                continue
            if kind == _PDF:
                documents += 1
                self._pdf(att.payload, name, message)
            elif kind.startswith(_OOXML_PREFIX):
                documents += 1
                self._ooxml(att, name)
            elif kind == _OLE:
                documents += 1
                self._text(_doc_text(att.payload))
        if lim.qr:
            self._data_images(message)
        return AttachedEvidence(
            text="\n".join(self.texts),
            links=tuple(self.links),
            qr_codes=tuple(self.codes),
        )

    def _late(self) -> bool:
        return time.thread_time() > self.deadline

    def _text(self, text: str) -> None:
        left = self.limits.max_chars - self.chars
        text = text.strip()
        if left <= 0 or not text:
            return
        text = text[:left]
        self.chars += len(text)
        self.texts.append(text)
        for url in links_in(text):
            self._link(url)

    def _link(self, url: str) -> None:
        if len(self.links) < self.limits.max_links:
            self.links.setdefault(url, None)

    # ---- PDF ------------------------------------------------------------------------------------
    def _pdf(self, data: bytes, name: str, message: Message) -> None:
        from pypdf import PdfReader  # imported on first PDF: most messages never need it

        logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-file warnings are not ours to log
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted and not self._open(reader, message):
                return
            pages = reader.pages
            count = len(pages)
        except Exception:
            log.debug("PDF %r unreadable", name, exc_info=True)
            return
        read = range(min(count, self.limits.max_pdf_pages))
        # text and links of every page first, pictures after: the words and links cost less
        for index in read:
            if self._late():
                return
            try:
                page = pages[index]
                self._text(page.extract_text() or "")
                for uri in _pdf_uris(page):
                    self._link(uri)
            except Exception:  # one broken page does not hide the others
                log.debug("PDF %r page %d unreadable", name, index, exc_info=True)
        for index in read if self.limits.qr and _qr_available() else ():
            if self.images_left <= 0 or self._late():
                return
            try:
                self._pdf_images(pages[index], f"{name} page {index + 1}")
            except Exception:
                log.debug("PDF %r page %d pictures unreadable", name, index, exc_info=True)

    def _open(self, reader: Any, message: Message) -> bool:
        """Decrypt a PDF: an empty user password opens many; senders of others give the password in the
        body ("Senha PDF: 123"), as for encrypted archives."""
        if self.passwords is None:
            self.passwords = ["", *candidates(message.text_parts, message.html_parts)][:MAX_PASSWORDS]
        for password in self.passwords:
            if self._late():
                return False
            with contextlib.suppress(Exception):
                if reader.decrypt(password):
                    return True
        return False

    def _pdf_images(self, page: Any, where: str) -> None:
        resources = _resolved(_resolved(page).get("/Resources"))
        xobjects = _resolved(resources.get("/XObject")) if isinstance(resources, dict) else {}
        if not isinstance(xobjects, dict):
            return
        for key, ref in list(xobjects.items())[:50]:
            if self.images_left <= 0 or self._late():
                return
            obj = _resolved(ref)
            if not isinstance(obj, dict) or obj.get("/Subtype") != "/Image":
                continue
            width, height = int(obj.get("/Width", 0)), int(obj.get("/Height", 0))
            if min(width, height) < self.limits.min_image_side or width * height > self.limits.max_image_pixels:
                continue
            self.images_left -= 1
            image = page.images[key].image
            if image is not None:
                self._decode(image, where)

    # ---- Office ---------------------------------------------------------------------------------
    def _ooxml(self, att: Attachment, name: str) -> None:
        limits = extract.ExtractLimits(max_chars=self.limits.max_chars, max_pdf_pages=self.limits.max_pdf_pages)
        self._text(extract.attachment_text(name, att.declared_type, att.payload, limits=limits) or "")
        try:
            with zipfile.ZipFile(io.BytesIO(att.payload)) as archive:
                infos = archive.infolist()[: limits.max_members]
                for info in infos:
                    if _RELS_RE.fullmatch(info.filename) and info.file_size <= 1024 * 1024:
                        for url in _hyperlinks(archive.read(info)):
                            self._link(url)
                for info in infos:
                    if not self.limits.qr or self.images_left <= 0 or self._late():
                        break
                    if _MEDIA_RE.fullmatch(info.filename) and info.file_size <= self.limits.max_image_bytes:
                        self._image(archive.read(info), f"{name}/{info.filename}")
        except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError, EOFError):
            log.debug("Office file %r unreadable", name, exc_info=True)

    # ---- images ---------------------------------------------------------------------------------
    def _image(self, data: bytes, where: str) -> None:
        lim = self.limits
        if self.images_left <= 0 or len(data) > lim.max_image_bytes:
            return
        if not _qr_available():
            return
        from PIL import Image

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # palette and truncation warnings of odd files
                with Image.open(io.BytesIO(data)) as image:
                    width, height = image.size
                    if min(width, height) < lim.min_image_side:
                        return
                    self.images_left -= 1
                    image.draft("L", (lim.qr_side, lim.qr_side))  # JPEG decodes at a reduced scale
                    width, height = image.size
                    if width * height > lim.max_image_pixels:
                        return
                    self._decode(image, where)
        except Exception:
            log.debug("image %r unreadable", where, exc_info=True)

    def _data_images(self, message: Message) -> None:
        """Pictures written into HTML bodies as data: URIs, which no MIME part carries."""
        for html in message.html_parts:
            if "data:image/" not in html:  # the cheap test: almost no HTML has one
                continue
            for m in _DATA_IMAGE_RE.finditer(html):
                if self.images_left <= 0 or self._late():
                    return
                encoded = m.group(1)
                if len(encoded) > self.limits.max_image_bytes * 4 // 3 + 4:
                    continue
                with contextlib.suppress(ValueError):
                    self._image(base64.b64decode("".join(encoded.split())), "(picture in the HTML body)")

    def _decode(self, image: Any, where: str) -> None:
        import zxingcpp

        side = self.limits.qr_side
        grey = image.convert("L")
        if max(grey.size) > side:
            grey.thumbnail((side, side))
        for code in zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)):
            if code.text:
                self.codes.append(QrCode(where, code.text[:4000]))


@functools.cache
def _qr_available() -> bool:
    """Whether Pillow and zxing-cpp are installed; without them QR codes are not read (logged once)."""
    try:
        import zxingcpp  # noqa: F401
        from PIL import Image  # noqa: F401
    except ImportError as exc:
        log.warning("QR codes are not read: %s", exc)
        return False
    return True


def _pdf_uris(page: Any) -> Iterator[str]:
    """The targets of a page's link annotations that open a web address."""
    annots = _resolved(page.get("/Annots"))
    if not isinstance(annots, list):
        return
    for ref in annots[:500]:
        annot = _resolved(ref)
        if not isinstance(annot, dict) or annot.get("/Subtype") != "/Link":
            continue
        action = _resolved(annot.get("/A"))
        if isinstance(action, dict) and action.get("/S") == "/URI":
            uri = action.get("/URI")
            if isinstance(uri, bytes):
                uri = uri.decode("latin-1")
            if isinstance(uri, str) and (link := web_link(uri)):
                yield link


def _resolved(obj: Any) -> Any:
    """A PDF object with its reference followed; an empty dictionary for what is missing or not one."""
    if obj is None:
        return {}
    obj = obj.get_object() if hasattr(obj, "get_object") else obj
    return obj if isinstance(obj, (dict, list)) else {}


def _hyperlinks(data: bytes) -> Iterator[str]:
    """External hyperlink targets of an Office relationships part."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (SafeET.ParseError, DefusedXmlException, ValueError):
        return
    for rel in root:
        if rel.get("Type", "").endswith(_HYPERLINK_TYPE) and rel.get("TargetMode") == "External":
            link = web_link(rel.get("Target", ""))
            if link:
                yield link


# ---- Word 97-2003 -----------------------------------------------------------------------------

_FIB_FLAGS: Final = 0x000A
_FIB_CLX: Final = 0x01A2
_WHICH_TABLE: Final = 0x0200
_COMPRESSED: Final = 0x40000000
_MAX_PIECES: Final = 10_000


def _doc_text(data: bytes, max_chars: int = 64 * 1024) -> str:
    """The text of a Word 97-2003 document, read from its piece table; "" when it is not one."""
    import olefile  # type: ignore[import-untyped]

    with contextlib.suppress(Exception), olefile.OleFileIO(data) as ole:
        if not ole.exists("WordDocument"):
            return ""
        word = ole.openstream("WordDocument").read()
        if len(word) < _FIB_CLX + 8:
            return ""
        (flags,) = struct.unpack_from("<H", word, _FIB_FLAGS)
        table_name = "1Table" if flags & _WHICH_TABLE else "0Table"
        if not ole.exists(table_name):
            return ""
        table = ole.openstream(table_name).read()
        fc_clx, lcb_clx = struct.unpack_from("<II", word, _FIB_CLX)
        return _pieces(word, table[fc_clx : fc_clx + lcb_clx], max_chars)
    return ""


def _pieces(word: bytes, clx: bytes, max_chars: int) -> str:
    pos = 0
    while pos < len(clx) and clx[pos] == 0x01:  # property modifiers come first; skip them
        (size,) = struct.unpack_from("<H", clx, pos + 1)
        pos += 3 + size
    if pos + 5 > len(clx) or clx[pos] != 0x02:
        return ""
    (size,) = struct.unpack_from("<I", clx, pos + 1)
    plc = clx[pos + 5 : pos + 5 + size]
    count = min((len(plc) - 4) // 12, _MAX_PIECES)
    cps = struct.unpack_from(f"<{count + 1}I", plc, 0)
    out: list[str] = []
    chars = 0
    for i in range(count):
        (fc,) = struct.unpack_from("<I", plc, 4 * (count + 1) + 8 * i + 2)
        length = min(max(cps[i + 1] - cps[i], 0), max_chars - chars)
        if length <= 0:
            break
        if fc & _COMPRESSED:
            start = (fc & ~_COMPRESSED) // 2
            out.append(word[start : start + length].decode("cp1252", "replace"))
        else:
            out.append(word[fc : fc + 2 * length].decode("utf-16-le", "replace"))
        chars += length
    # Word marks paragraphs with \r and cells with \x07; other control characters are field codes
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", " ", "".join(out).replace("\r", "\n"))
