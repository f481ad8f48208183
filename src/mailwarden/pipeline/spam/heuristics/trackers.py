"""Click trackers and link-protection rewriters: where a tracked link leads, when the link says so.

A tracker carries its target in the link in one of a few shapes: a query parameter (`?url=`, `?q=`,
`?u=`), URL-encoded in the path (`/L0/https:%2F%2F...`), Proofpoint's own encodings (v2 `u=` with `-` for
`%` and `_` for `/`, v3 `/v3/__<url>__;`), or base64 (of the URL or of JSON holding it). Others keep an
opaque id and look the target up on their server: nothing in the link says where it leads.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_DEPTH = 3  # a tracker inside a link-protection rewrite inside another one
MAX_URL_CHARS = 8192
MAX_PIECES = 12  # query values and path segments tried as base64
MIN_BASE64 = 16

_EMBEDDED = re.compile(r"https?://[^\s\"'<>\\]+", re.IGNORECASE)
_BASE64 = re.compile(rf"^[A-Za-z0-9+/_-]{{{MIN_BASE64},}}={{0,2}}$")


def tracker_of(host: str, path: str, trackers: Mapping[str, tuple[str, ...]]) -> str | None:
    """The tracker entry a link with this host and path goes through, if any."""
    parts = host.split(".")
    for i in range(len(parts) - 1):
        prefixes = trackers.get(".".join(parts[i:]))
        if prefixes is not None:
            for prefix in prefixes:
                if path.startswith(prefix):
                    return ".".join(parts[i:]) + prefix
    return None


def unwrap(url: str, trackers: Mapping[str, tuple[str, ...]]) -> tuple[bool, str | None]:
    """(whether `url` goes through a click tracker, the target it leads to when the link carries it).

    Nested trackers are followed; a target that is itself an opaque tracker link counts as opaque."""
    tracked = False
    for _ in range(MAX_DEPTH):
        parts = _split(url)
        if parts is None:
            return tracked, None
        host, path, query = parts
        if tracker_of(host, path, trackers) is None:
            return tracked, url if tracked else None
        tracked = True
        target = _target(url, host, path, query)
        if target is None:
            return True, None
        url = target
    return True, None


def _split(url: str) -> tuple[str, str, str] | None:
    if len(url) > MAX_URL_CHARS:
        return None
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    return (host, parts.path, parts.query) if host else None


def _target(url: str, host: str, path: str, query: str) -> str | None:
    """The URL a tracker link carries, or None for an opaque one."""
    if host.endswith("urldefense.com") and path.startswith("/v3/__"):
        end = url.find("__;", url.find("/v3/__") + 6)
        inner = url[url.find("/v3/__") + 6 : end if end >= 0 else None]
        return inner if inner.lower().startswith(("http://", "https://")) and "*" not in _host_part(inner) else None
    values = [v for _, v in parse_qsl(query, keep_blank_values=False)]
    if host.endswith("urldefense.proofpoint.com") and path.startswith("/v2/"):
        values = [unquote(v.replace("-", "%").replace("_", "/")) for v in values]
    for value in values:
        if value.lower().startswith(("http://", "https://")):
            return value
        if value.lower().startswith("www."):
            return "http://" + value
    embedded = _EMBEDDED.search(unquote(path))
    if embedded:
        return embedded.group(0)
    pieces = [*values, *path.split("/")][:MAX_PIECES]
    for piece in pieces:
        found = _from_base64(piece)
        if found:
            return found
    return None


def _host_part(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _from_base64(piece: str) -> str | None:
    piece = piece.replace(" ", "+")  # a query's `+` reads as a space
    if len(piece) < MIN_BASE64 or len(piece) > MAX_URL_CHARS or not _BASE64.match(piece):
        return None
    try:
        raw = base64.urlsafe_b64decode(piece.replace("+", "-").replace("/", "_") + "=" * (-len(piece) % 4))
    except (binascii.Error, ValueError):
        return None
    if b"http" not in raw:
        return None
    m = _EMBEDDED.search(raw.decode("latin-1").replace("\\/", "/"))
    return m.group(0) if m else None
