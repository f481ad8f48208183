"""What every OCSF event of the feed shares: the pinned version, metadata, the class table, and the checks
that keep a value out of a typed field it would make invalid (an address OCSF's `email_t` refuses, an IP
that is not one). A value that fails such a check moves to `unmapped` instead of being dropped.

Pure functions over JSON-ready dicts; docs/events.md has the mapping tables.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from mailwarden import __version__

OCSF_VERSION: Final = "1.3.0"
PRODUCT: Final = {"name": "mailwarden", "vendor_name": "mailwarden", "version": __version__}
SECURITY_CONTROL: Final = "security_control"  # profile: action_id, disposition_id, malware
HOST: Final = "host"  # profile: actor
MAX_TEXT: Final = 65_535  # OCSF string_t's max_len

# class_uid: (class name, category_uid, category name, activity names by id)
CLASSES: Final[dict[int, tuple[str, int, str, dict[int, str]]]] = {
    2004: ("Detection Finding", 2, "Findings", {1: "Create", 2: "Update", 3: "Close"}),
    3004: (
        "Entity Management",
        3,
        "Identity & Access Management",
        {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 5: "Move", 8: "Enable", 9: "Disable"},
    ),
    4009: ("Email Activity", 4, "Network Activity", {1: "Send", 2: "Receive", 3: "Scan"}),
    4011: ("Email File Activity", 4, "Network Activity", {1: "Send", 2: "Receive", 3: "Scan"}),
    4012: ("Email URL Activity", 4, "Network Activity", {1: "Send", 2: "Receive", 3: "Scan"}),
    7001: ("Remediation Activity", 7, "Remediation", {1: "Isolate", 2: "Evict", 3: "Restore"}),
}
OTHER: Final = 99  # activity_id / disposition_id "Other": the source's own word goes in the *_name field

SEVERITY_NAMES: Final = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}

# OCSF's own patterns for its email_t and hostname_t types (schema 1.3.0, dictionary types)
_EMAIL: Final = re.compile(r"^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$")
_HOSTNAME: Final = re.compile(
    r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$"
)


@dataclass(slots=True)
class Draft:
    """One event before its shared fields: the class, activity, severity and the class's own fields."""

    class_uid: int
    activity_id: int
    severity_id: int
    fields: dict[str, Any]
    time: datetime
    profiles: tuple[str, ...] = ()
    activity_name: str | None = None  # the source's word when activity_id is Other
    event_code: str | None = None  # mailwarden's own name for what happened (trace event type, audit action)
    unmapped: dict[str, Any] = field(default_factory=dict)


def finish(draft: Draft, *, seq: int, uid: str, correlation: str | None, tenant: str | None) -> dict[str, Any]:
    """The full OCSF event: the draft's fields plus class, category, type, time and metadata."""
    class_name, category_uid, category_name, activities = CLASSES[draft.class_uid]
    activity = draft.activity_name if draft.activity_id == OTHER else activities[draft.activity_id]
    metadata: dict[str, Any] = {"uid": uid, "version": OCSF_VERSION, "product": dict(PRODUCT), "sequence": seq}
    if draft.profiles:
        metadata["profiles"] = list(draft.profiles)
    if correlation:
        metadata["correlation_uid"] = correlation
    if tenant:
        metadata["tenant_uid"] = tenant
    if draft.event_code:
        metadata["event_code"] = draft.event_code
    body: dict[str, Any] = {
        "class_uid": draft.class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": draft.activity_id,
        "activity_name": activity or "Other",
        "type_uid": draft.class_uid * 100 + draft.activity_id,
        "type_name": f"{class_name}: {activity or 'Other'}",
        "severity_id": draft.severity_id,
        "severity": SEVERITY_NAMES.get(draft.severity_id, "Other"),
        "time": epoch_ms(draft.time),
        "metadata": metadata,
        **draft.fields,
    }
    if draft.unmapped:
        body["unmapped"] = draft.unmapped
    return body


def epoch_ms(at: datetime) -> int:
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


def when(value: Any, default: datetime) -> datetime:
    """A payload's time (ISO 8601 text or a datetime); `default` when it has none or it does not parse."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return default
    return default


def text(value: Any, limit: int = MAX_TEXT) -> str:
    """A string for a string_t field, cut to OCSF's limit."""
    out = "" if value is None else str(value)
    return out[:limit]


def is_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT and _EMAIL.match(value) is not None


def emails(values: Iterable[Any], invalid: list[str]) -> list[str]:
    """The values OCSF accepts as email_t, each once, in order; the others are added to `invalid`."""
    out: dict[str, None] = {}
    for value in values:
        if is_email(value):
            out.setdefault(value, None)
        elif value:
            invalid.append(text(value, 320))
    return list(out)


def ip_or_none(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def hostname_or_none(value: str | None) -> str | None:
    if value and len(value) <= 253 and _HOSTNAME.match(value):
        return value
    return None
