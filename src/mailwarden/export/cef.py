"""One feed event as an ArcSight CEF line, for the SIEMs that take CEF over syslog rather than JSON.

The line is built from the OCSF body only (the same fields every other sink carries), so CEF never says
something the OCSF event does not. Absent fields are left out rather than sent empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from mailwarden import __version__
from mailwarden.export.event import ExportEvent

CEF_VERSION = "0"
DEFAULT_VENDOR = "mailwarden"
DEFAULT_PRODUCT = "mailwarden"

# OCSF severity_id -> CEF 0-10 (CEF reads 0-3 low, 4-6 medium, 7-8 high, 9-10 very high).
CEF_SEVERITY: Mapping[int, int] = {0: 0, 1: 1, 2: 3, 3: 5, 4: 7, 5: 9, 6: 10, 99: 0}
SHA256_ALGORITHM_ID = 3  # OCSF fingerprint.algorithm_id for SHA-256

_HEADER_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "\r": " ", "\n": " "})
_EXTENSION_ESCAPES = str.maketrans({"\\": "\\\\", "=": "\\=", "\r": "\\r", "\n": "\\n"})


def escape_header(value: str) -> str:
    """A header field: `\\` and `|` escaped; the spec allows no line break in the header, so it becomes a space."""
    return value.translate(_HEADER_ESCAPES)


def escape_extension(value: str) -> str:
    """An extension value: `\\` and `=` escaped, line breaks written as `\\n` / `\\r` (the spec's only
    multi-line form). `|` needs no escape here."""
    return value.translate(_EXTENSION_ESCAPES)


def cef_line(event: ExportEvent) -> str:
    """`CEF:0|vendor|product|version|signature id|name|severity|extensions` for one event (no syslog header)."""
    body = event.body
    product = _get(body, "metadata", "product") or {}
    header = [
        f"CEF:{CEF_VERSION}",
        escape_header(_text(product.get("vendor_name")) or DEFAULT_VENDOR),
        escape_header(_text(product.get("name")) or DEFAULT_PRODUCT),
        escape_header(_text(product.get("version")) or __version__),
        escape_header(_signature_id(event)),
        escape_header(_name(event)),
        str(CEF_SEVERITY.get(event.severity_id, 0)),
    ]
    extensions = " ".join(f"{key}={escape_extension(value)}" for key, value in _extensions(event))
    return "|".join([*header, extensions])


def _signature_id(event: ExportEvent) -> str:
    """The OCSF type_uid (class_uid * 100 + activity_id): class and activity in one stable number."""
    type_uid = event.body.get("type_uid")
    if isinstance(type_uid, int):
        return str(type_uid)
    activity = event.body.get("activity_id")
    return str(event.class_uid * 100 + activity) if isinstance(activity, int) else str(event.class_uid)


def _name(event: ExportEvent) -> str:
    """What happened, for a person: a finding's title, else the event's message, else its OCSF type name."""
    body = event.body
    for candidate in (_get(body, "finding_info", "title"), body.get("message"), body.get("type_name")):
        if text := _text(candidate):
            return text
    return _text(body.get("class_name")) or str(event.class_uid)


def _extensions(event: ExportEvent) -> list[tuple[str, str]]:
    """(key, raw value) pairs in a fixed order; keys whose OCSF field is absent are left out."""
    body = event.body
    email = _first_object(body, "email")
    pairs: list[tuple[str, str | None]] = [
        *_source_address(_text(_get(_first_object(body, "src_endpoint"), "ip"))),
        ("suser", _text(email.get("from")) or _text(_get(body, "actor", "user", "name"))),  # an admin change's actor
        ("duser", _joined(email.get("to"))),
        ("msg", _text(email.get("subject"))),
        *_labelled("cs1", "Message-ID", _text(email.get("message_uid"))),
        *_labelled("cs2", "Rule", _text(_get(body, "finding_info", "analytic", "name"))),
    ]
    file = _first_object(body, "file")
    pairs += [
        ("act", _text(body.get("disposition")) or _text(body.get("action"))),
        ("outcome", _text(body.get("status"))),
        ("fname", _text(file.get("name"))),
        ("fsize", _text(file.get("size"))),
        ("fileHash", _file_hash(file.get("hashes"))),
        ("request", _text(_get(_first_object(body, "url"), "url_string"))),
        ("externalId", _text(_get(body, "metadata", "uid")) or event.uid),
        ("rt", str(_epoch_ms(event.time))),
    ]
    return [(key, value) for key, value in pairs if value is not None]


def _labelled(key: str, label: str, value: str | None) -> list[tuple[str, str | None]]:
    """A custom field and its label (CEF's csN / csNLabel pairs), or nothing when the value is absent."""
    return [] if value is None else [(key, value), (f"{key}Label", label)]


def _source_address(ip: str | None) -> list[tuple[str, str | None]]:
    """CEF's `src` holds IPv4 only; an IPv6 client goes to c6a2, CEF's source IPv6 field."""
    if ip is None:
        return []
    if ":" in ip:
        return [("c6a2", ip), ("c6a2Label", "Source IPv6 Address")]
    return [("src", ip)]


def _file_hash(hashes: Any) -> str | None:
    """The SHA-256 of the file when the body has one, else the first hash it lists."""
    if not isinstance(hashes, list):
        return None
    values = [h for h in hashes if isinstance(h, Mapping) and _text(h.get("value"))]
    for fingerprint in values:
        if fingerprint.get("algorithm_id") == SHA256_ALGORITHM_ID:
            return _text(fingerprint["value"])
    return _text(values[0]["value"]) if values else None


def _first_object(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`body[key]`, or the first evidence's (a Detection Finding carries the email, file or URL there)."""
    value = body.get(key)
    if isinstance(value, Mapping):
        return value
    for evidence in _list(body.get("evidences")):
        if isinstance(evidence, Mapping) and isinstance(evidence.get(key), Mapping):
            found: Mapping[str, Any] = evidence[key]
            return found
    return {}


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _text(value: Any) -> str | None:
    """A scalar as text; None for absent, empty or structured values."""
    if value is None or isinstance(value, Mapping | list) or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _joined(values: Any) -> str | None:
    if isinstance(values, str):
        return _text(values)
    parts = [text for text in (_text(v) for v in _list(values)) if text]
    return ",".join(parts) or None


def _list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else ()


def _epoch_ms(moment: datetime) -> int:
    """CEF's `rt` as milliseconds since the epoch (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
