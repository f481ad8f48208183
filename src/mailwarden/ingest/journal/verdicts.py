"""The provider's verdict, normalised from the fields its filters wrote on the copy (docs/journal.md).

Microsoft 365: `X-Forefront-Antispam-Report` (`CAT`, `SFV`, `SRV`, `SCL`, `DIR`), `X-MS-Exchange-Organization-SCL`
and `X-Microsoft-Antispam` (`BCL`), read from Exchange reports only. Google Workspace: `X-Gm-Spam` and
`X-Gm-Phishy`. The provider hints of the unwrapper come in (`exchange.microsoft_hints`, `google.gmail_hints`);
a copy without any verdict field has no provider verdict.
"""

from __future__ import annotations

from collections.abc import Mapping

from mailwarden.model.provider import Provider, ProviderCategory, ProviderVerdict

MAX_FIELD = 64  # a value is kept up to this many characters: they are codes, never prose

# CAT: the policy that acted (eop-semantics §5); the most specific statement, so it wins
_CAT = {
    "MALW": ProviderCategory.MALWARE,
    "AMP": ProviderCategory.MALWARE,
    "FTBP": ProviderCategory.MALWARE,  # common attachment filter
    "SAP": ProviderCategory.MALWARE,  # Safe Attachments
    "PHSH": ProviderCategory.PHISH,
    "HPHSH": ProviderCategory.PHISH,
    "HPHISH": ProviderCategory.PHISH,
    "SPOOF": ProviderCategory.PHISH,
    "BIMP": ProviderCategory.PHISH,
    "DIMP": ProviderCategory.PHISH,
    "GIMP": ProviderCategory.PHISH,
    "UIMP": ProviderCategory.PHISH,
    "INTOS": ProviderCategory.PHISH,
    "SPM": ProviderCategory.SPAM,
    "HSPM": ProviderCategory.SPAM,
    "OSPM": ProviderCategory.SPAM,
    "BULK": ProviderCategory.BULK,
}
# SFV: the spam filter's verdict, when no policy category says more
_SFV = {
    "SPM": ProviderCategory.SPAM,
    "SKS": ProviderCategory.SPAM,  # marked spam before filtering (transport rule)
    "SKB": ProviderCategory.SPAM,  # blocked sender or domain in the anti-spam policy
    "BLK": ProviderCategory.SPAM,  # the user's Blocked Senders
    "NSPM": ProviderCategory.CLEAN,
    "SKN": ProviderCategory.CLEAN,  # marked non-spam before filtering
    "SKA": ProviderCategory.CLEAN,  # allowed sender or domain in the anti-spam policy
    "SFE": ProviderCategory.CLEAN,  # the user's Safe Senders
    "SKI": ProviderCategory.CLEAN,
    "SKQ": ProviderCategory.CLEAN,  # released from quarantine
}
_MICROSOFT_FIELDS = ("cat", "sfv", "srv", "scl", "bcl", "dir")
_GOOGLE_FIELDS = ("x_gm_spam", "x_gm_phishy")
SPAM_SCL = 5  # Microsoft: SCL 5 and 6 are spam, 7 to 9 high-confidence spam


def microsoft_verdict(hints: Mapping[str, str]) -> ProviderVerdict | None:
    """Microsoft 365's verdict from an Exchange report's provider hints; None when it has no verdict field."""
    fields = _kept(hints, _MICROSOFT_FIELDS)
    if not fields.keys() - {"dir"}:
        return None
    scl = _level(fields.get("scl"), -1, 9)
    bcl = _level(fields.get("bcl"), 0, 9)
    category = _CAT.get(fields.get("cat", "").upper())
    if category is None:
        category = _SFV.get(fields.get("sfv", "").upper())
        if category is not ProviderCategory.SPAM and fields.get("srv", "").upper() == "BULK":
            category = ProviderCategory.BULK
    if category is None and scl is not None:
        category = ProviderCategory.SPAM if scl >= SPAM_SCL else ProviderCategory.CLEAN
    return ProviderVerdict(Provider.MICROSOFT_365, category or ProviderCategory.UNKNOWN, scl, bcl, fields)


def google_verdict(hints: Mapping[str, str]) -> ProviderVerdict | None:
    """Gmail's verdict from a routing copy's `X-Gm-Spam` / `X-Gm-Phishy`; None when the copy has neither."""
    fields = _kept(hints, _GOOGLE_FIELDS)
    if not fields:
        return None
    flags = {name: _flag(value) for name, value in fields.items()}
    if flags.get("x_gm_phishy") is True:
        category = ProviderCategory.PHISH
    elif flags.get("x_gm_spam") is True:
        category = ProviderCategory.SPAM
    elif any(flag is False for flag in flags.values()) and None not in flags.values():
        category = ProviderCategory.CLEAN
    else:
        category = ProviderCategory.UNKNOWN
    return ProviderVerdict(Provider.GOOGLE, category, fields=fields)


def _kept(hints: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for name in names:
        value = " ".join(hints.get(name, "").split())[:MAX_FIELD]
        if value:
            out[name] = value
    return out


def _level(value: str | None, low: int, high: int) -> int | None:
    """An SCL or BCL as a number in its range, None when absent or not one."""
    try:
        level = int((value or "").strip())
    except ValueError:
        return None
    return level if low <= level <= high else None


def _flag(value: str) -> bool | None:
    return {"0": False, "1": True}.get(value.strip())
