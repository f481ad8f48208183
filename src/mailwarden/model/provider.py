"""The mail provider's own verdict on a journal copy, and how it compares with mailwarden's.

Microsoft 365 and Google Workspace say on every copy what their filters concluded (the fields are read by
`ingest/journal/verdicts.py`). Kept beside mailwarden's verdict, it answers the question a monitor-only
deployment is for: what did the provider deliver that should have been stopped?
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mailwarden.model.verdict import Category


class Provider(StrEnum):
    MICROSOFT_365 = "microsoft365"
    GOOGLE = "google"


class ProviderCategory(StrEnum):
    """A provider's verdict in mailwarden's words; also the columns of mailwarden's side of the comparison."""

    CLEAN = "clean"
    SPAM = "spam"
    BULK = "bulk"
    PHISH = "phish"
    MALWARE = "malware"
    UNKNOWN = "unknown"  # the provider's fields say nothing we can read as a verdict


class Agreement(StrEnum):
    """How the provider's verdict compares with mailwarden's, for one message."""

    AGREE = "agree"  # the same category
    PROVIDER_MISSED = "provider_missed"  # the provider passed it, mailwarden judges it spam, phish or malware
    PROVIDER_ONLY = "provider_only"  # the provider judged it spam, phish or malware, mailwarden passed it
    DIFFER = "differ"  # both have a verdict and they differ otherwise (e.g. spam against phish, bulk)
    UNKNOWN = "unknown"  # one side has no verdict to compare (provider unknown; internal, rule or error)


FIELD_NAMES = {
    "cat": "CAT",
    "sfv": "SFV",
    "srv": "SRV",
    "scl": "SCL",
    "bcl": "BCL",
    "dir": "DIR",
    "x_gm_spam": "X-Gm-Spam",
    "x_gm_phishy": "X-Gm-Phishy",
}
# "Flagged" on either side: what a report of missed mail is about. Bulk is a matter of taste, not a miss.
FLAGGED = frozenset({ProviderCategory.SPAM, ProviderCategory.PHISH, ProviderCategory.MALWARE})
COMPARED = (
    ProviderCategory.CLEAN,
    ProviderCategory.SPAM,
    ProviderCategory.BULK,
    ProviderCategory.PHISH,
    ProviderCategory.MALWARE,
)

_OURS = {
    Category.CLEAN: ProviderCategory.CLEAN,
    Category.SPAM: ProviderCategory.SPAM,
    Category.HIGH_CONFIDENCE_SPAM: ProviderCategory.SPAM,
    Category.BULK: ProviderCategory.BULK,
    Category.PHISH: ProviderCategory.PHISH,
    Category.HIGH_CONFIDENCE_PHISH: ProviderCategory.PHISH,
    Category.MALWARE: ProviderCategory.MALWARE,
}
# mailwarden's categories that are flagged, for a search on the raw category column
FLAGGED_CATEGORIES = frozenset(c for c, ours in _OURS.items() if ours in FLAGGED)


def ours(category: Category) -> ProviderCategory:
    """mailwarden's category on the provider's scale; rule, blocked, internal and scan errors are unknown."""
    return _OURS.get(category, ProviderCategory.UNKNOWN)


def agreement(provider: ProviderCategory, category: Category) -> Agreement:
    """How the provider's category compares with mailwarden's category of the same message."""
    mine = ours(category)
    if provider is ProviderCategory.UNKNOWN or mine is ProviderCategory.UNKNOWN:
        return Agreement.UNKNOWN
    if provider is mine:
        return Agreement.AGREE
    if provider is ProviderCategory.CLEAN and mine in FLAGGED:
        return Agreement.PROVIDER_MISSED
    if provider in FLAGGED and mine is ProviderCategory.CLEAN:
        return Agreement.PROVIDER_ONLY
    return Agreement.DIFFER


@dataclass(frozen=True, slots=True)
class ProviderVerdict:
    """What the provider concluded about one message: its category, SCL and BCL when it gives them, and
    the fields it was read from, as written (`sfv`, `cat`, `scl`, `bcl`, `dir`, `srv`; `x_gm_spam`,
    `x_gm_phishy`)."""

    provider: Provider
    category: ProviderCategory
    scl: int | None = None
    bcl: int | None = None
    fields: dict[str, str] = field(default_factory=dict, hash=False)

    def shown(self) -> str:
        """The fields as the provider names them: `CAT:NONE SFV:NSPM SCL:1`, `X-Gm-Spam:0 X-Gm-Phishy:1`."""
        return " ".join(f"{FIELD_NAMES.get(name, name)}:{value}" for name, value in self.fields.items())

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider.value,
            "category": self.category.value,
            "scl": self.scl,
            "bcl": self.bcl,
            "fields": dict(self.fields),
        }
