"""The outbound spam policy (sending limits per sender, what happens at a limit, who is told) and the
restricted sender it leads to.

Pure pydantic, like the rest of the policy document (`model/policy.py` holds it as `outbound_spam`).
The names follow EOP's outbound spam filter policy (`RecipientLimitExternalPerHour`,
`RecipientLimitInternalPerHour`, `RecipientLimitPerDay`, `ActionWhenThresholdReached`): a limit of 0
means "the service default", and the service defaults are EOP's recommended values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# EOP's recommended (Standard) limits: what a limit of 0 stands for.
DEFAULT_EXTERNAL_PER_HOUR = 500
DEFAULT_INTERNAL_PER_HOUR = 1000
DEFAULT_PER_DAY = 1000
MAX_LIMIT = 10000  # EOP's valid range is 0 to 10000

_Address = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]


class LimitAction(StrEnum):
    """What happens to a sender who reaches a limit (EOP's `ActionWhenThresholdReached`)."""

    BLOCK_USER_FOR_TODAY = "block_user_for_today"  # restricted until the next day (UTC)
    BLOCK_USER = "block_user"  # restricted until an administrator releases the sender
    ALERT = "alert"  # no action, the administrators are alerted


class OutboundSpamPolicy(BaseModel):
    """`outbound_spam`: recipient limits per sender and the response to outbound spam.

    Outbound messages judged spam, high-confidence spam or phish are not held: they leave through the
    delivery pool `high_risk` so the organisation's normal sending addresses keep their reputation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    external_per_hour: int = Field(
        0, ge=0, le=MAX_LIMIT, description=f"external recipients per sender and hour; 0 = {DEFAULT_EXTERNAL_PER_HOUR}"
    )
    internal_per_hour: int = Field(
        0, ge=0, le=MAX_LIMIT, description=f"internal recipients per sender and hour; 0 = {DEFAULT_INTERNAL_PER_HOUR}"
    )
    per_day: int = Field(0, ge=0, le=MAX_LIMIT, description=f"recipients per sender and day; 0 = {DEFAULT_PER_DAY}")
    action_at_limit: LimitAction = LimitAction.BLOCK_USER_FOR_TODAY
    notify_admins: tuple[_Address, ...] = ()
    bcc_suspicious: _Address | None = Field(None, description="a copy of every outbound message judged spam")
    restrict_after_spam: int = Field(
        0, ge=0, le=MAX_LIMIT, description="outbound spam messages within window_hours that restrict a sender; 0 = off"
    )
    window_hours: float = Field(
        24.0, gt=0, le=24 * 30,
        description="the window restrict_after_spam counts in: up to 1 is the last hour, more is the UTC day "
        "(the sending counters' two windows)",
    )  # fmt: skip

    @property
    def effective_external_per_hour(self) -> int:
        return self.external_per_hour or DEFAULT_EXTERNAL_PER_HOUR

    @property
    def effective_internal_per_hour(self) -> int:
        return self.internal_per_hour or DEFAULT_INTERNAL_PER_HOUR

    @property
    def effective_per_day(self) -> int:
        return self.per_day or DEFAULT_PER_DAY


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
