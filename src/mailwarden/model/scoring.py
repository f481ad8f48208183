"""The scoring table: how the total of the stages' finding scores becomes SCL, phish level and BCL.

One table, read by the decision (`pipeline/decide.py`) and by what reports it (the X-Spam-Status header's
`required`). Finding codes say by their prefix which verdict their score counts towards.
"""

from __future__ import annotations

from mailwarden.model.verdict import Category

# The total spam score at which a message is spam (SCL 5); X-Spam-Status reports it as `required`.
SPAM_SCORE = 5.0
# Total spam score → SCL. Evaluated top-down; the first row whose floor the score reaches wins.
SCL_TABLE: tuple[tuple[float, int], ...] = (
    (15.0, 9),
    (10.0, 8),
    (7.0, 6),
    (SPAM_SCORE, 5),
    (1.0, 1),
)
PHISH_THRESHOLD = 5.0
HIGH_CONFIDENCE_PHISH_THRESHOLD = 10.0
HIGH_CONFIDENCE_SCL = 7

# Spam verdicts that outbound mail is scored with but not held for.
OUTBOUND_SCORED = frozenset(
    {Category.SPAM, Category.HIGH_CONFIDENCE_SPAM, Category.BULK, Category.PHISH, Category.HIGH_CONFIDENCE_PHISH}
)
# Of those, the ones that leave through the high-risk delivery pool (enforce/pool.py; EOP's DI=SO).
OUTBOUND_HIGH_RISK = frozenset(
    {Category.SPAM, Category.HIGH_CONFIDENCE_SPAM, Category.PHISH, Category.HIGH_CONFIDENCE_PHISH}
)

# Families of finding codes: the prefix says which verdict the score counts towards.
MALWARE_PREFIX = "MALWARE_"
PHISH_PREFIX = "PHISH_"
BULK_PREFIX = "BULK_"


def scl_for(score: float) -> int:
    for floor, scl in SCL_TABLE:
        if score >= floor:
            return scl
    return 0
