"""Feed events built in code, shaped like the OCSF 1.3.0 bodies the renderer makes (only the fields the sinks
and CEF read, plus the required base fields), so the sink tests say what they are about."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mailwarden.export.event import ExportEvent

SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
T0 = dt.datetime(2026, 3, 14, 9, 26, 53, 589000, tzinfo=dt.UTC)


def _base(n: int, class_uid: int, class_name: str, activity_id: int, severity_id: int) -> dict[str, Any]:
    return {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": class_uid // 1000,
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": severity_id,
        "time": int((T0 + dt.timedelta(seconds=n)).timestamp() * 1000),
        "metadata": {
            "uid": uid(n),
            "version": "1.3.0",
            "product": {"name": "mailwarden", "vendor_name": "mailwarden", "version": "0.1.0"},
        },
    }


def uid(n: int) -> str:
    return f"01JQ7ZV0000000000000{n:06d}"


def email_activity(n: int, *, subject: str = "Quarterly numbers", severity_id: int = 1, **extra: Any) -> ExportEvent:
    body = (
        _base(n, 4009, "Email Activity", 2, severity_id)
        | {
            "message": "Message received",
            "disposition": "Quarantined",
            "disposition_id": 3,
            "status": "Success",
            "status_id": 1,
            "src_endpoint": {"ip": "198.51.100.7"},
            "email": {
                "from": "alice@example.org",
                "to": ["bob@example.com", "carol@example.com"],
                "subject": subject,
                "message_uid": f"<m{n}@example.org>",
            },
        }
        | extra
    )
    return ExportEvent(n, uid(n), 4009, severity_id, T0 + dt.timedelta(seconds=n), body)


def email_file_activity(n: int, *, hashes: list[dict[str, Any]] | None = None) -> ExportEvent:
    body = _base(n, 4011, "Email File Activity", 3, 4) | {
        "email_uid": f"<m{n}@example.org>",
        "disposition": "Blocked",
        "file": {
            "name": "invoice.pdf.exe",
            "type_id": 1,
            "size": 68,
            "hashes": hashes
            if hashes is not None
            else [
                {"algorithm_id": 2, "algorithm": "SHA-1", "value": "cf8bd9dfddff007f75adf4c2be48005cea317c62"},
                {"algorithm_id": 3, "algorithm": "SHA-256", "value": SHA256},
            ],
        },
    }
    return ExportEvent(n, uid(n), 4011, 4, T0 + dt.timedelta(seconds=n), body)


def email_url_activity(n: int, url: str = "https://login.example.net/reset?a=1&b=2") -> ExportEvent:
    body = _base(n, 4012, "Email URL Activity", 3, 3) | {"email_uid": f"<m{n}@example.org>", "url": {"url_string": url}}
    return ExportEvent(n, uid(n), 4012, 3, T0 + dt.timedelta(seconds=n), body)


def detection_finding(n: int, *, title: str = "Phishing: credential harvesting link") -> ExportEvent:
    body = _base(n, 2004, "Detection Finding", 1, 5) | {
        "message": "Phish detected",
        "finding_info": {"uid": f"finding-{n}", "title": title, "analytic": {"name": "PHISH_URL", "type_id": 1}},
        "evidences": [{"email": {"from": "mallory@example.net", "subject": "Reset your password"}}],
    }
    return ExportEvent(n, uid(n), 2004, 5, T0 + dt.timedelta(seconds=n), body)
