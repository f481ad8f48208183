"""Which delivery pool outbound spam leaves through: the high-risk pool, as EOP does (`DI=SO`).

An outbound message judged spam, high-confidence spam or phish is not held by the outbound spam filter;
it is relayed through the pool `high_risk` (its own smart host or source address in `[delivery] pools`)
so that the organisation's normal sending addresses keep their reputation. A message the policy or a
transport rule holds, rejects or drops is not relayed at all, so no pool applies. Pure: verdict in,
decision out.
"""

from __future__ import annotations

from mailwarden.deliver.config import HIGH_RISK_POOL as HIGH_RISK_POOL  # re-exported: the enforce layer names it
from mailwarden.model import Category, Direction, Verdict
from mailwarden.model.rules_outcome import DELIVERING
from mailwarden.model.scoring import OUTBOUND_HIGH_RISK

# EOP's custom_data code for the high-risk delivery pool (DI=SO; SN is the normal outbound pool)
HIGH_RISK_CODE = "SO"


def is_high_risk(verdict: Verdict) -> bool:
    """Whether the message, when relayed, belongs in the high-risk pool: outbound, judged spam or phish,
    and still delivered."""
    return (
        verdict.direction is Direction.OUTBOUND
        and verdict.category in OUTBOUND_HIGH_RISK
        and verdict.disposition.action in DELIVERING
    )


def high_risk_reason(verdict: Verdict) -> str:
    """The trace's words for why the message takes the high-risk pool."""
    label = "outbound spam" if verdict.category in (Category.SPAM, Category.HIGH_CONFIDENCE_SPAM) else "outbound phish"
    return f"{label} (DI={HIGH_RISK_CODE})"
