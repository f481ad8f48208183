"""Outbound protection as values: a restricted sender and why (docs/outbound.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RestrictedSender:
    """A sender who may not send outbound mail. `until` None: until an administrator releases them (EOP's
    BlockUser); a time: until then (BlockUserForToday ends at the next midnight UTC). `would_have`: monitor
    mode recorded that the sender would have been restricted; nothing is refused."""

    organisation: str
    sender: str
    reason: str
    since: datetime
    until: datetime | None
    would_have: bool = False

    def active(self, now: datetime) -> bool:
        return not self.would_have and (self.until is None or now < self.until)
