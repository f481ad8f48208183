"""The quarantine: release, preview, expiry and end-user digests (docs/quarantine.md).

The entry, its closed sets and who may do what live in `mailwarden.model.quarantine`.
"""

from mailwarden.quarantine.preview import AttachmentInfo, Preview
from mailwarden.quarantine.service import Quarantine, ReleaseDispatcher

__all__ = ["AttachmentInfo", "Preview", "Quarantine", "ReleaseDispatcher"]
