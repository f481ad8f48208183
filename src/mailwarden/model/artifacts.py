"""A scanned message's artifacts for the event feed: its attached files, its links and its header addresses.

Everything here is read from what `Message` already parsed and cached for the pipeline (the attachment list
with each file's real type from `filetype.sniff`, the link list, the To and Cc fields), so after a scan it
costs only the copying; the feed's whole added budget is 0.5 ms per message (docs/events.md).
Pure values, JSON-ready; the history record's producer redacts the text in them (`enforce/record.py`).
"""

from __future__ import annotations

from typing import Any, Final

from mailwarden.model.message import Message

MAX_URLS: Final = 200  # links carried per message; `urls_total` says how many the message had
MAX_ATTACHMENTS: Final = 200  # files carried per message; `attachments_total` says how many it had
MAX_ADDRESSES: Final = 200  # To and Cc addresses carried per message, each


def artifacts_of(message: Message) -> dict[str, Any]:
    """The message's files (name, declared and real type, size, SHA-256), links (the first MAX_URLS, in
    order of appearance) and the addresses of its To and Cc fields (which the history record, made from
    the envelope, does not keep)."""
    attachments = message.attachments
    urls = message.urls
    return {
        "attachments": [
            {
                "name": a.filename,
                "declared_type": a.declared_type,
                "real_type": a.real_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in attachments[:MAX_ATTACHMENTS]
        ],
        "attachments_total": len(attachments),
        "urls": list(urls[:MAX_URLS]),
        "urls_total": len(urls),
        "to": list(message.to_addresses[:MAX_ADDRESSES]),
        "cc": list(message.cc_addresses[:MAX_ADDRESSES]),
    }
