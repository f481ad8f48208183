"""Symbols made of other symbols: evidence that counts only together with other evidence.

- `PHISH_URL_FREE_HOSTING`: a link to free hosting, a form builder or a file share (`URL_FREE_HOSTING`,
  no evidence alone: list posts link surveys and project pages) together with a lure or concealment.
- `PHISH_SUSPICIOUS_MIX`: phish evidence of 3 or more together with spam evidence of 2 or more (the two
  scores feed separate verdicts in decide(), so without it a lure with both halves at 4 passes).
- `SPAM_BULK_PHISH`: phishing evidence in mail sent through an email service provider. Bulk evidence alone
  raises only the BCL; with a lure it is a marketing-style scam, and this counts towards the SCL.
"""

from __future__ import annotations

from mailwarden.pipeline.spam.heuristics.settings import HeuristicsSettings
from mailwarden.pipeline.spam.heuristics.view import View

FREE_HOSTING_LINK = "URL_FREE_HOSTING"
FREE_HOSTING = "PHISH_URL_FREE_HOSTING"
MIX = "PHISH_SUSPICIOUS_MIX"
MIX_PHISH = 3.0
MIX_SPAM = 2.0
BULK_PHISH = "SPAM_BULK_PHISH"
BULK_PHISH_MIN = 1.5  # phish evidence that makes an ESP's mail a scam: one lure symbol or two weak ones

# What a lure looks like: credential, account or payment wording, impersonation, a sender hiding its reply
# address, money offered, a bare request to scan a QR code
LURE: tuple[str, ...] = (
    "PHISH_CREDENTIAL_WORDING", "PHISH_URGENCY_ACCOUNT", "PHISH_BRAND_DISPLAY_NAME", "PHISH_BRAND_SUBJECT",
    "PHISH_ORG_DISPLAY_NAME", "PHISH_LOOKALIKE_ORG", "PHISH_LOOKALIKE_BRAND", "PHISH_BRAND_IN_DOMAIN",
    "PHISH_PUNYCODE_SENDER", "PHISH_DISPLAY_NAME_ADDRESS", "PHISH_REPLYTO_FREEMAIL", "PHISH_DMARC_FAIL",
    "PHISH_HTML_PASSWORD_FORM", "PRIZE_WORDING", "ADVANCE_FEE_WORDING", "PHISH_QR_LURE",
)  # fmt: skip
# What hiding looks like: text a reader does not see, links that are not what they show, a forged sender
CONCEALMENT: tuple[str, ...] = (
    "HTML_HIDDEN_TEXT", "HTML_ZERO_FONT", "HTML_IMAGE_ONLY", "HTML_ZERO_WIDTH", "MIXED_SCRIPT_WORD",
    "FROM_DOMAIN_INVALID", "PHISH_URL_SHORTENER", "PHISH_URL_IP_HOST", "PHISH_URL_SUSPICIOUS_TLD",
    "PHISH_ANCHOR_MISMATCH", "PHISH_URL_USERINFO", "PHISH_URL_DATA_URI", "PHISH_URL_PUNYCODE",
)  # fmt: skip
ESP = ("BULK_MAILER", "BULK_ONE_CLICK")


def add_composites(fired: dict[str, str], view: View, s: HeuristicsSettings) -> None:
    """Add the composite symbols that `fired` (every symbol that fired, with its detail) makes, in place.

    Only symbols with a positive weight count: a symbol turned off is no evidence."""
    weights = s.weights

    def on(code: str) -> bool:
        return code in fired and weights.get(code, 0.0) > 0

    if FREE_HOSTING_LINK in fired:
        context = next((c for c in (*LURE, *CONCEALMENT) if on(c)), None)
        # a list relays its members' mail: a freemail member sharing a document there is list business
        freemail = view.from_domain in s.freemail or view.from_org_domain in s.freemail
        if context is None and freemail and not view.list_id:
            context = "a freemail sender"
        if context is not None:
            fired.setdefault(FREE_HOSTING, f"{fired[FREE_HOSTING_LINK]} with {context}"[:80])
    phish = spam = 0.0
    for code in fired:
        if code.startswith("PHISH_"):
            phish += weights.get(code, 0.0)
        elif not code.startswith("BULK_"):
            spam += weights.get(code, 0.0)
    if phish >= MIX_PHISH and spam >= MIX_SPAM:
        fired.setdefault(MIX, "")
    esp = next((c for c in ESP if on(c)), None)
    if esp is not None and phish >= BULK_PHISH_MIN:
        fired.setdefault(BULK_PHISH, f"{esp} with phish score {phish:g}")
