"""The quarantine: entries, permissions, release, preview, expiry and end-user digests (docs/quarantine.md)."""

from mailwarden.quarantine.model import (
    Actor,
    Entry,
    Operation,
    PermissionDeniedError,
    QuarantineError,
    Reason,
    Role,
    Status,
    can,
    reason_for,
)
from mailwarden.quarantine.preview import AttachmentInfo, Preview
from mailwarden.quarantine.service import (
    EntryPage,
    NewEntry,
    Quarantine,
    QuarantineQuery,
    ReleaseDispatcher,
    new_entries,
)

__all__ = [
    "Actor",
    "AttachmentInfo",
    "Entry",
    "EntryPage",
    "NewEntry",
    "Operation",
    "PermissionDeniedError",
    "Preview",
    "Quarantine",
    "QuarantineError",
    "QuarantineQuery",
    "Reason",
    "ReleaseDispatcher",
    "Role",
    "Status",
    "can",
    "new_entries",
    "reason_for",
]
