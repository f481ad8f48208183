"""A quarantined message made safe to look at: headers, text, sanitised HTML, attachment list.

The HTML goes through nh3 (the ammonia sanitiser): scripts, event handlers, styles, forms and frames
are removed, and every URL that would make the browser fetch or navigate anywhere is dropped — remote
and data images, http(s) and javascript: links. Only `cid:` images (parts of the message itself) and
`mailto:` links stay. The console still shows the result in a sandboxed iframe under a strict CSP;
this is the first of two walls, not the only one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nh3

from mailwarden.model import Message
from mailwarden.model.message import decode_header_value

# no <img> from elsewhere, no links that go anywhere; what the reader sees of a link is its text
_KEPT_URL_SCHEMES = frozenset({"cid", "mailto"})
_URL_ATTRIBUTES = frozenset({"href", "src", "cite", "longdesc", "action", "background", "poster", "srcset"})
MAX_TEXT = 1_000_000


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    filename: str | None
    declared_type: str
    real_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Preview:
    headers: list[tuple[str, str]]
    text: str
    html: str  # sanitised; empty when the message has no HTML part
    attachments: list[AttachmentInfo]
    blocked: int = 0  # URLs removed from the HTML (remote images, links, script URLs)
    notes: list[str] = field(default_factory=list)


def sanitise_html(html: str) -> tuple[str, int]:
    """HTML with nothing active and nothing remote left; and how many URLs were removed."""
    blocked = 0

    def keep(_element: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        if attribute.lower() not in _URL_ATTRIBUTES:
            return value
        scheme = value.strip().split(":", 1)[0].lower() if ":" in value else ""
        if scheme in _KEPT_URL_SCHEMES:
            return value
        blocked += 1
        return None

    clean = nh3.clean(
        html[:MAX_TEXT],
        # http(s) pass nh3's scheme check only to be counted and dropped by `keep`; others go silently
        url_schemes=set(_KEPT_URL_SCHEMES | {"http", "https"}),
        attribute_filter=keep,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return clean, blocked


def build_preview(message: Message) -> Preview:
    headers = [(str(name), decode_header_value(value)) for name, value in message.email.items()]
    text = "\n\n".join(message.text_parts)[:MAX_TEXT]
    html, blocked = ("", 0)
    if message.html_parts:
        html, blocked = sanitise_html("\n".join(message.html_parts))
    attachments = [
        AttachmentInfo(a.filename, a.declared_type, a.real_type, a.size, a.sha256) for a in message.attachments
    ]
    notes = [f"{blocked} remote or active URLs removed"] if blocked else []
    return Preview(headers, text, html, attachments, blocked, notes)
