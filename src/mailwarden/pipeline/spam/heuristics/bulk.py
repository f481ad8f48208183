"""Bulk-mail evidence for the bulk complaint level (BCL). Bulk is not spam: a list post lands near BCL 1-4,
a marketing blast from an email service provider near 6-8."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mailwarden.model import Organisation
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics.patterns import literal_alternation
from mailwarden.pipeline.spam.heuristics.settings import HeuristicsSettings
from mailwarden.pipeline.spam.heuristics.view import View

Hit = tuple[str, str]

# headers only bulk mailers set
MAILER_HEADERS = (
    "X-Campaign", "X-Campaign-Id", "X-CampaignID", "X-Mailchimp-Campaign", "X-MC-User", "X-Mailgun-Tag",
    "X-Mailgun-Variables", "X-SG-EID", "X-SG-ID", "X-SES-Outgoing", "X-Mandrill-User", "X-MSYS-API",
    "X-Sendinblue-Campaign", "X-Mailin-Campaign", "X-Mailjet-Campaign", "X-CSA-Complaints", "X-Job",
    "X-Marketo-Id", "X-Hubspot-Msg", "X-Klaviyo-Id", "X-Campaign-Monitor", "X-CMail-Id", "X-Listmonk",
    "X-Emarsys-Identify", "X-Newsletter",
)  # fmt: skip
# X-Mailer values and Received hosts of email service providers (as a trie: it runs over every hop)
ESP_NAMES = (
    "mailchimp", "mcsv.net", "mcdlv.net", "rsgsv.net", "mandrillapp", "sendgrid", "sparkpost", "mailgun",
    "amazonses", "constantcontact", "ctctcdn", "createsend", "sendinblue", "brevo", "mailjet", "klaviyo",
    "hubspot", "hs-analytics", "exacttarget", "salesforce.com", "marketo", "mktomail", "emarsys", "acoustic",
    "silverpop", "responsys", "campaign-archive", "listmonk", "mailerlite", "getresponse", "aweber",
    "activecampaign", "moosend", "sailthru", "iterable", "customer.io", "postmarkapp", "blueshift", "braze",
    "substack", "beehiiv", "convertkit", "phplist", "mailpoet", "newsletter2go",
)  # fmt: skip
_ESP = re.compile(literal_alternation(ESP_NAMES) + r"|cmail\d", re.IGNORECASE)
_ESP_LOWER = re.compile(literal_alternation(ESP_NAMES) + r"|cmail\d")  # for ASCII text already lower-cased
UNSUBSCRIBE_WORDS = (
    "unsubscribe", "opt out", "opt-out", "optout", "abmelden", "abbestellen", "descadastr", "cancelar inscri",
    "cancelar a inscri", "afmelden", "se désinscrire", "désabonner", "désinscription", "配信停止",
    "メール配信の停止",
)  # fmt: skip
_UNSUB_FOOTER = re.compile(literal_alternation(UNSUBSCRIBE_WORDS), re.IGNORECASE)
_UNSUB_FOOTER_LOWER = re.compile(literal_alternation(UNSUBSCRIBE_WORDS))  # for ASCII text already lower-cased


def _unsubscribe_words(text: str) -> bool:
    if text.isascii():
        return _UNSUB_FOOTER_LOWER.search(text.lower()) is not None
    return _UNSUB_FOOTER.search(text) is not None


def check(view: View, facts: ScanFacts, org: Organisation | None, s: HeuristicsSettings) -> Iterator[Hit]:
    msg = view.message
    unsubscribe = msg.header("List-Unsubscribe")
    if unsubscribe:
        yield "BULK_LIST_UNSUBSCRIBE", unsubscribe[:80]
        post = (msg.header("List-Unsubscribe-Post") or "").replace(" ", "").lower()
        if post == "list-unsubscribe=one-click":
            yield "BULK_ONE_CLICK", ""
    precedence = (msg.header("Precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        yield "BULK_PRECEDENCE", precedence
    yield from _mailer(view)
    for src, w, h, hidden in (i for scan in view.html for i in scan.images):
        if src.lower().startswith(("http://", "https://", "//")) and (hidden or (w in ("0", "1") and h in ("0", "1"))):
            yield "BULK_TRACKING_PIXEL", src[:80]
            break
    if view.list_id:
        yield "LIST", view.list_id[:80]
    tail = view.visible_text[-2000:]
    if _unsubscribe_words(tail) or any(_unsubscribe_words(a.text) for a in view.anchors):
        yield "BULK_UNSUBSCRIBE_FOOTER", ""


def _mailer(view: View) -> Iterator[Hit]:
    msg = view.message
    present = msg.header_names()
    for name in MAILER_HEADERS:
        if name.lower() in present:
            yield "BULK_MAILER", name
            return
    if "feedback-id" in present:
        yield "BULK_MAILER", "Feedback-ID"
        return
    mailer = (msg.header("X-Mailer") or "") + " " + (msg.header("X-Report-Abuse") or "")
    if _esp(mailer):
        yield "BULK_MAILER", mailer.strip()[:80]
        return
    for value in msg.raw_headers("Received")[:6]:
        found = _esp(value)
        if found:
            yield "BULK_MAILER", f"Received via {found}"
            return


def _esp(text: str) -> str | None:
    """The email service provider's name as written in `text`, if one is."""
    if text.isascii():  # lower-casing keeps every offset, and a case-sensitive trie is much faster
        m = _ESP_LOWER.search(text.lower())
        return text[m.start() : m.end()] if m else None
    m = _ESP.search(text)
    return m.group(0) if m else None
