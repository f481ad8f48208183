"""Indicators a retro-hunt searches kept messages for: sender, sender domain, URL, attachment SHA-256,
subject pattern. Pure: a message and its sender in, what matched out (docs/retro-hunt.md).

Subject patterns are RE2 (linear time whatever the pattern: an analyst's regex cannot stall a hunt over
100,000 messages), searched anywhere in the subject, case-insensitive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2

from mailwarden.errors import MailwardenError
from mailwarden.model import Message
from mailwarden.model.envelope import domain_of, normalise_address

SHA256_LENGTH = 64


class IndicatorError(MailwardenError):
    """An indicator that cannot be searched for (a bad pattern, a malformed hash, none at all)."""

    exit_code = 2


@dataclass(frozen=True)
class Indicators:
    """What to look for; a message matches when it carries any one of them."""

    senders: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    sha256: tuple[str, ...] = ()
    subject: str | None = None
    _pattern: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "senders", tuple(normalise_address(s) for s in self.senders if s.strip()))
        object.__setattr__(self, "domains", tuple(d.strip().lstrip("@").lower() for d in self.domains if d.strip()))
        object.__setattr__(self, "urls", tuple(u.strip().lower() for u in self.urls if u.strip()))
        hashes = tuple(h.strip().lower() for h in self.sha256 if h.strip())
        for h in hashes:
            if len(h) != SHA256_LENGTH or any(c not in "0123456789abcdef" for c in h):
                raise IndicatorError(f"sha256: {h!r} is not a SHA-256 (64 hexadecimal digits)")
        object.__setattr__(self, "sha256", hashes)
        if self.subject:
            options = re2.Options()
            options.case_sensitive = False
            try:
                object.__setattr__(self, "_pattern", re2.compile(self.subject, options))
            except re2.error as exc:
                raise IndicatorError(f"subject: not a valid RE2 pattern: {exc}") from None
        if not self.any():
            raise IndicatorError("name at least one indicator: sender, domain, url, sha256 or subject")

    def any(self) -> bool:
        return bool(self.senders or self.domains or self.urls or self.sha256 or self.subject)

    def as_dict(self) -> dict[str, Any]:
        return {
            "senders": list(self.senders),
            "domains": list(self.domains),
            "urls": list(self.urls),
            "sha256": list(self.sha256),
            "subject": self.subject,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Indicators:
        return cls(
            senders=tuple(doc.get("senders") or ()),
            domains=tuple(doc.get("domains") or ()),
            urls=tuple(doc.get("urls") or ()),
            sha256=tuple(doc.get("sha256") or ()),
            subject=doc.get("subject") or None,
        )

    def matches(self, message: Message, sender: str) -> list[str]:
        """What of this message matched, in words ("url contains example.test"); [] when nothing did.
        `sender` is the envelope sender; the From address counts as a sender too."""
        found: list[str] = []
        addresses = {a for a in (normalise_address(sender), _from(message)) if a}
        found += [f"sender is {s}" for s in self.senders if s in addresses]
        domains = {d for d in (domain_of(a) for a in addresses) if d}
        found += [f"sender domain is {d}" for d in self.domains if any(x == d or x.endswith("." + d) for x in domains)]
        if self.urls:
            urls = [u.lower() for u in message.urls]
            found += [f"url contains {u}" for u in self.urls if any(u in x for x in urls)]
        if self.sha256:
            hashes = {a.sha256: a.filename for a in message.attachments}
            found += [f"attachment {hashes[h] or '(no name)'} has sha256 {h}" for h in self.sha256 if h in hashes]
        if self._pattern is not None and self._pattern.search(message.subject):
            found.append(f"subject matches {self.subject}")
        return found


def _from(message: Message) -> str | None:
    address = message.from_address
    return normalise_address(address) if address else None
