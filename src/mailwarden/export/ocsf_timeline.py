"""Timeline events added after a message was recorded, and admin changes, as OCSF events.

- delivery (deliver, defer, fail, DSN): Email Activity (4009) Send, its outcome in status_id/status_code;
- remediation of a delivered or held copy (clawback, restore, quarantine release, retention expiry):
  Remediation Activity (7001) Isolate / Evict / Restore, the D3FEND verbs OCSF 1.3.0 gives remediation;
- a retro-hunt's rescan: Detection Finding (2004) Create;
- a merged journal copy: Email Activity Receive; any other: Email Activity Other with its trace name;
- an audit log entry: Entity Management (3004), the changed object before and after.
docs/events.md has the tables and the reasons.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

from mailwarden.export.ocsf_base import HOST, OTHER, Draft, emails, epoch_ms, is_email, text, when
from mailwarden.export.ocsf_message import DIRECTIONS, UNKNOWN_FROM

SEND, RECEIVE, SCAN = 1, 2, 3
ISOLATE, EVICT, RESTORE = 1, 2, 3
_JOB: Final = re.compile(r"\bjob (\S+?)[\]\s;,]")
_REPLY_CODE: Final = re.compile(r"^\s*([245]\d\d)\b")

# trace event type: (status_id, severity_id) of an Email Activity Send
_DELIVERY: Final = {"deliver": (1, 1), "defer": (2, 1), "fail": (2, 2)}
# trace event type: (activity_id, status_id, severity_id) of a Remediation Activity; None: by the detail
_REMEDIATION: Final[dict[str, tuple[int | None, int, int]]] = {
    "clawback": (None, 1, 1),
    "clawback_failed": (None, 2, 2),
    "restore": (RESTORE, 1, 1),
    "release": (RESTORE, 1, 1),  # a quarantined message goes back to its recipient
    "expire": (EVICT, 1, 1),  # retention over: the held copy is deleted for good
}
_ENTITY_ACTIVITIES: Final = {
    "add": 1,
    "create": 1,
    "import": 1,
    "update": 3,
    "save": 3,
    "put": 3,
    "set": 3,
    "set_password": 3,
    "delete": 4,
    "remove": 4,
    "enable": 8,
    "disable": 9,
}


def event_drafts(payload: dict[str, Any], at: datetime) -> list[Draft]:
    event, message = payload["event"], payload.get("message") or {}
    kind = str(event.get("type") or "")
    moment = when(event.get("at"), at)
    email = _email(message, event.get("recipient"))
    detail = text(event.get("detail"))
    if kind in _DELIVERY:
        return [_delivery(kind, event, message, email, detail, moment)]
    if kind in _REMEDIATION:
        return [_remediation(kind, event, message, email, detail, moment)]
    if kind == "rescan":
        return [_rescan(message, email, detail, moment)]
    activity = {"journal_unwrap": RECEIVE, "receive": RECEIVE, "scan": SCAN}.get(kind, OTHER)
    fields = {"email": email, "message": detail, "status_id": 1, **_direction(message)}
    return [Draft(4009, activity, 1, fields, moment, activity_name=kind.replace("_", " ").title(), event_code=kind)]


def _email(message: dict[str, Any], recipient: Any) -> dict[str, Any]:
    """The message the event is about: the envelope sender and the recipient concerned (the header
    addresses are on the message's own Email Activity; `email.uid` joins the two)."""
    sender = message.get("sender") or ""
    refused: list[str] = []
    email: dict[str, Any] = {
        "uid": message.get("id"),
        "from": sender if is_email(sender) else UNKNOWN_FROM,
        "to": emails([recipient] if recipient else [], refused),
        "subject": text(message.get("subject")),
    }
    if message.get("internet_message_id"):
        email["message_uid"] = text(message["internet_message_id"])
    if is_email(sender):
        email["smtp_from"] = sender
    if email["to"]:
        email["smtp_to"] = list(email["to"])
    return email


def _delivery(
    kind: str, event: dict[str, Any], message: dict[str, Any], email: dict[str, Any], detail: str, at: datetime
) -> Draft:
    status_id, severity = _DELIVERY[kind]
    reply = text(event.get("smtp_reply"))
    fields: dict[str, Any] = {
        "email": email,
        **_direction(message),
        "status_id": status_id,
        "status": "Success" if status_id == 1 else "Failure",
        "status_detail": f"{kind}: {reply or detail}",
        "message": detail,
    }
    code = _REPLY_CODE.match(reply)
    if code:
        fields["status_code"] = code.group(1)
    return Draft(4009, SEND, severity, fields, at, event_code=kind)


def _direction(message: dict[str, Any]) -> dict[str, Any]:
    direction = str(message.get("direction") or "unknown")
    return {"direction_id": DIRECTIONS.get(direction, 0), "direction": direction}


def _remediation(
    kind: str, event: dict[str, Any], message: dict[str, Any], email: dict[str, Any], detail: str, at: datetime
) -> Draft:
    activity, status_id, severity = _REMEDIATION[kind]
    if activity is None:  # a clawback moves the copy out of the Inbox (isolate) or deletes it (evict)
        activity = EVICT if "delete" in detail.lower() else ISOLATE
    job = _JOB.search(detail + " ")
    fields: dict[str, Any] = {
        "command_uid": job.group(1) if job else f"{message.get('id')}.{kind}",
        "status_id": status_id,
        "status": "Success" if status_id == 1 else "Failure",
        "message": detail,
        "remediation": {"desc": detail or kind},
        "observables": _observables(email),
    }
    unmapped = {"email": email, "recipient": event.get("recipient"), "organisation": message.get("organisation")}
    unmapped = {k: v for k, v in unmapped.items() if v is not None}
    return Draft(7001, activity, severity, fields, at, event_code=kind, unmapped=unmapped)


def _observables(email: dict[str, Any]) -> list[dict[str, Any]]:
    out = [{"name": "email.uid", "type_id": OTHER, "type": "Other", "value": str(email.get("uid"))}]
    if email.get("message_uid"):
        out.append({"name": "email.message_uid", "type_id": OTHER, "type": "Other", "value": email["message_uid"]})
    out += [{"name": "email.to", "type_id": 5, "type": "Email Address", "value": a} for a in email.get("to") or []]
    return out


def _rescan(message: dict[str, Any], email: dict[str, Any], detail: str, at: datetime) -> Draft:
    """A retro-hunt found the message: today's verdict differs from the recorded one or an indicator
    matched. A new finding about a message already recorded."""
    info = {
        "uid": f"{message.get('id')}.rescan.{epoch_ms(at)}",
        "title": text(f"Retro-hunt: {detail}", 1024),
        "types": ["rescan"],
        "analytic": {"name": "retro-hunt", "type_id": 1, "type": "Rule"},
        "created_time": epoch_ms(at),
    }
    fields: dict[str, Any] = {
        "finding_info": info,
        "status_id": 1,
        "status": "New",
        "message": detail,
        "evidences": [{"email": email}],
    }
    return Draft(2004, 1, 3, fields, at, event_code="rescan")


def audit_drafts(payload: dict[str, Any], at: datetime) -> list[Draft]:
    """An admin change as Entity Management: who (actor), what (the object, before and after), which verb."""
    action = str(payload.get("action") or "")
    verb = action.rsplit(".", 1)[-1]
    activity = _ENTITY_ACTIVITIES.get(verb, OTHER)
    obj = text(payload.get("object"), 1024)
    kind = re.split(r"[:/.]", obj, maxsplit=1)[0] if obj else action.split(".", 1)[0]
    entity: dict[str, Any] = {"uid": obj, "name": obj, "type": kind}
    result = dict(entity)
    if payload.get("before") is not None:
        entity["data"] = payload["before"]
    if payload.get("after") is not None:
        result["data"] = payload["after"]
    actor = text(payload.get("actor"), 200) or "system"
    fields: dict[str, Any] = {
        "entity": entity,
        "entity_result": result,
        "actor": {"user": {"name": actor}},
        "status_id": 1,
        "status": "Success",
        "message": f"{actor}: {action} {obj}",
    }
    unmapped = {"audit_id": payload.get("id")} if payload.get("id") is not None else {}
    moment = when(payload.get("at"), at)
    return [
        Draft(3004, activity, 1, fields, moment, (HOST,), activity_name=action, event_code=action, unmapped=unmapped)
    ]
