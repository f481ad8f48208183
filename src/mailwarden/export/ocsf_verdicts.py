"""mailwarden's verdict words in OCSF's: actions as disposition_id / action_id, categories as severity_id.

The tables are the mapping docs/events.md documents; they are kept here, once, as data.
"""

from __future__ import annotations

from typing import Any, Final

SCAN: Final = 3  # Email (File, URL) Activity: Scan
ALLOWED: Final = 1
DETECTED: Final = 15  # "detected without further action": monitor mode's verdict other than deliver

# disposition_id: its caption (OCSF 1.3.0 enum)
DISPOSITIONS: Final = {
    0: "Unknown",
    1: "Allowed",
    2: "Blocked",
    3: "Quarantined",
    5: "Deleted",
    6: "Dropped",
    7: "Custom Action",
    9: "Restored",
    11: "Corrected",
    14: "Delayed",
    15: "Detected",
    18: "Tagged",
    27: "Error",
}

# mailwarden action (applied): (disposition_id, action_id); action_id 1 Allowed = it still reaches the
# recipient's mailbox, 2 Denied = it does not
_APPLIED: Final[dict[str, tuple[int, int]]] = {
    "deliver": (1, 1),
    "junk": (18, 1),  # delivered, tagged for the Junk folder (X-Spam-Flag)
    "add_header": (18, 1),
    "prepend_subject": (18, 1),
    "replace_attachments": (11, 1),  # delivered with the infected files replaced by an alert text
    "redirect": (7, 2),  # sent to other recipients instead
    "quarantine": (3, 2),
    "reject": (2, 2),  # refused in the SMTP dialogue (5xx)
    "drop": (6, 2),  # accepted and discarded without a DSN
}

# verdict category: severity_id
_SEVERITY: Final = {
    "clean": 1,
    "internal": 1,
    "bulk": 1,
    "spam": 2,
    "rule": 2,
    "blocked": 2,
    "high_confidence_spam": 3,
    "phish": 3,
    "scan_error": 3,
    "high_confidence_phish": 4,
    "malware": 4,
}


def applied_disposition(action: str) -> tuple[int, int]:
    """(disposition_id, action_id) of an action that was applied; (0, 0) for one this table lacks."""
    return _APPLIED.get(action, (0, 0))


def disposition_name(disposition_id: int) -> str:
    return DISPOSITIONS.get(disposition_id, "Other")


def category_severity(category: str) -> int:
    return _SEVERITY.get(category, 0)


def file_is_infected(name: str, verdict: dict[str, Any]) -> bool:
    """Whether the attachment of this (redacted) name is one the malware filter named in its detections
    (`<signature> in <file>`) or among the files it replaced."""
    if not name:
        return False
    disposition = verdict.get("disposition") or {}
    if name in (disposition.get("replace_attachments") or []):
        return True
    return any(str(m).endswith(f" in {name}") or f" in {name}/" in str(m) for m in verdict.get("malware") or [])
