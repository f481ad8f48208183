"""Real file type from content: a small signature table for the types mail security cares about.

Pure and fast; the name of a file is never consulted here.
"""

from __future__ import annotations

# (offset, magic, mime type); the first match wins, so longer / more specific signatures come first.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"MZ", "application/x-dosexec"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"\xca\xfe\xba\xbe", "application/x-mach-binary"),
    (0, b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"PK\x05\x06", "application/zip"),
    (0, b"PK\x07\x08", "application/zip"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"Rar!\x1a\x07", "application/vnd.rar"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"BZh", "application/x-bzip2"),
    (0, b"\xfd7zXZ\x00", "application/x-xz"),
    (257, b"ustar", "application/x-tar"),
    (0x8001, b"CD001", "application/x-iso9660-image"),
    (0, b"\x78\x9f\x3e\x22", "application/vnd.ms-tnef"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"{\\rtf", "text/rtf"),
    (0, b"MSCF", "application/vnd.ms-cab-compressed"),
    (0, b"L\x00\x00\x00\x01\x14\x02\x00", "application/x-ms-shortcut"),
)

_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<svg")


def sniff(data: bytes) -> str:
    """The MIME type the bytes really are, `text/plain` for text and `application/octet-stream` else."""
    for offset, magic, mime in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            if mime == "application/zip":
                return _zip_flavour(data)
            return mime
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<?xml") and b"<svg" in head:
        return "image/svg+xml"
    if any(head.startswith(m) or m in head[:256] for m in _HTML_MARKERS):
        return "text/html"
    if _looks_like_text(data[:4096]):
        return "text/plain"
    return "application/octet-stream"


def _zip_flavour(data: bytes) -> str:
    """Tell Office Open XML and similar zip-based documents from a plain zip by their first entries."""
    head = data[:8192]
    if b"word/" in head:
        return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    if b"xl/" in head:
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    if b"ppt/" in head:
        return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    if b"mimetypeapplication/vnd.oasis.opendocument" in head:
        return "application/vnd.oasis.opendocument"
    if b"META-INF/MANIFEST.MF" in head:
        return "application/java-archive"
    return "application/zip"


def _looks_like_text(sample: bytes) -> bool:
    if not sample:
        return True
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        # a multi-byte character cut at the sample's end is still text
        if exc.start >= len(sample) - 3:
            return True
    controls = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return controls / len(sample) < 0.05
