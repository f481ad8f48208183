"""Compromised-account signals of the outbound spam filter: an account taken over sends far more than
it ever did, to people it never wrote to, and the bounces of a spam run come back to it.

Pure: the service puts the sender's activity in `ScanFacts.sender` (`service/sender_activity.py`); this
turns it into findings. Each signal alone stays under the spam score; two together, or one with spammy
content, make the message spam, so it leaves through the high-risk pool and counts towards the policy's
`restrict_after_spam` (docs/outbound.md).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mailwarden.model import Finding
from mailwarden.pipeline.facts import SenderFacts

VOLUME_SPIKE = "OUTBOUND_VOLUME_SPIKE"
NEW_RECIPIENTS = "OUTBOUND_MANY_NEW_RECIPIENTS"
NDRS = "OUTBOUND_MANY_NDRS"
COMPROMISE_WEIGHTS: dict[str, float] = {VOLUME_SPIKE: 3.0, NEW_RECIPIENTS: 2.5, NDRS: 3.0}


class CompromiseSignals(BaseModel):
    """`[stages.spam.compromise]`: when the signals fire (over the last two UTC hours)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    volume_min: int = Field(50, ge=1, description="recipients at least, before a volume can be a spike")
    volume_factor: float = Field(4.0, ge=1.0, description="times the sender's busiest two hours of two weeks")
    new_recipients: int = Field(30, ge=1, description="external recipients written to for the first time")
    ndrs: int = Field(10, ge=1, description="delivery reports that came back to the sender")


def compromise_findings(
    facts: SenderFacts, signals: CompromiseSignals, weights: dict[str, float], stage: str
) -> list[Finding]:
    window = f"the last {facts.window_hours} hours"
    out = []
    baseline = facts.baseline
    if baseline is not None and facts.recipients >= max(signals.volume_min, signals.volume_factor * baseline + 1):
        detail = f"{facts.recipients} recipients in {window}; busiest {facts.window_hours} hours before: {baseline}"
        out.append(Finding(stage, VOLUME_SPIKE, weights[VOLUME_SPIKE], detail))
    # a sender without history writes to nobody it knows: new recipients mean something only with a baseline
    if facts.baseline is not None and facts.new_external >= signals.new_recipients:
        detail = f"{facts.new_external} external recipients written to for the first time in {window}"
        out.append(Finding(stage, NEW_RECIPIENTS, weights[NEW_RECIPIENTS], detail))
    if facts.ndrs >= signals.ndrs:
        detail = f"{facts.ndrs} delivery reports came back to the sender in {window}"
        out.append(Finding(stage, NDRS, weights[NDRS], detail))
    return out
