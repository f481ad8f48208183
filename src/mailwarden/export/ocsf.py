"""One outbox row as OCSF 1.3.0 events, the feed's schema (docs/events.md).

`render(seq, uid, kind, at, payload)` is pure: the same row always renders to the same events, whose
`metadata.uid` is `{row uid}.{n}` (n: the event's index within the row), so a consumer de-duplicates a
batch sent twice. Every event validates against the OCSF 1.3.0 JSON schema of its class and the profiles
it names in `metadata.profiles` (tests/unit/export/test_ocsf.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from mailwarden.export.event import ExportEvent
from mailwarden.export.ocsf_base import OCSF_VERSION, Draft, finish
from mailwarden.export.ocsf_message import message_drafts
from mailwarden.export.ocsf_timeline import audit_drafts, event_drafts

_RENDERERS: Final[dict[str, Callable[[dict[str, Any], datetime], list[Draft]]]] = {
    "message": message_drafts,
    "event": event_drafts,
    "audit": audit_drafts,
}

__all__ = ["OCSF_VERSION", "render"]


def render(seq: int, uid: str, kind: str, at: datetime, payload: dict[str, Any]) -> list[ExportEvent]:
    """The OCSF events of one outbox row: for a message its Email Activity first, then one Email File
    Activity per attachment, one Email URL Activity per link and one Detection Finding per detection; for
    a timeline event or an audit entry, one event. Raises ValueError for a kind it does not know."""
    renderer = _RENDERERS.get(kind)
    if renderer is None:
        raise ValueError(f"outbox row {uid}: unknown kind {kind!r}")
    drafts = renderer(payload, at)
    message = payload.get("message") or {}
    correlation = message.get("id") if kind != "audit" else None
    tenant = message.get("organisation")
    out = []
    for n, draft in enumerate(drafts):
        event_uid = f"{uid}.{n}"
        body = finish(draft, seq=seq, uid=event_uid, correlation=correlation, tenant=tenant)
        out.append(ExportEvent(seq, event_uid, draft.class_uid, draft.severity_id, draft.time, body))
    return out
