"""What the heuristics look at, computed once per message: HTML as seen and as hidden, links, text, and
what attachments say (the text of PDF and Office files, their links, the links of QR codes)."""

from __future__ import annotations

import re
import unicodedata
from functools import cached_property, lru_cache
from urllib.parse import urlsplit

from mailwarden.model import Message
from mailwarden.model.message import bounded
from mailwarden.pipeline.auth.dmarc import organisational_domain
from mailwarden.pipeline.spam.attached import AttachedEvidence, attached_evidence
from mailwarden.pipeline.spam.heuristics.markup import MAX_HTML_CHARS, Anchor, HtmlScan, scan_html
from mailwarden.pipeline.spam.heuristics.patterns import word_runs

# Bounds the work a hostile message can cause.
MAX_TEXT_CHARS = 256 * 1024
MAX_LINKS = 5000  # distinct link targets judged; the most in the corpus is 3,134


# a web URL whose authority is a plain host name (and port) followed by the path, query or fragment
_PLAIN_WEB_URL = re.compile(r"(?i:https?)://([A-Za-z0-9.-]*)(?::[0-9]*)?(?=[/?#]|\Z)")


def host_of(url: str) -> str:
    """The lower-case host of a URL ('' when there is none); `www.` links count as http."""
    # the checks ask for the same links' hosts several times; long URLs are not kept
    return _cached_host(url) if len(url) <= 512 else _host(url)


def _host(url: str) -> str:
    if url.lower().startswith("www."):
        url = "http://" + url
    plain = _PLAIN_WEB_URL.match(url)
    if plain is not None:  # what urlsplit would find, without its cost
        return plain.group(1).rstrip(".").lower()
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


_cached_host = lru_cache(maxsize=8192)(_host)


def authority_of(url: str) -> str:
    try:
        return urlsplit(url).netloc
    except ValueError:
        return ""


@lru_cache(maxsize=8192)
def registered_domain(host: str) -> str:
    return organisational_domain(host) if host else ""


def domain_of(address: str | None) -> str:
    if not address or "@" not in address:
        return ""
    return address.rsplit("@", 1)[1].strip().strip(">").rstrip(".").lower()


def fold(text: str) -> str:
    """Lower case without diacritics (`válidate` -> `validate`); a lone dot inside a word becomes a space."""
    text = text.lower()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        # one look-up per distinct character, not per character
        marks = {ord(c): None for c in set(text) if unicodedata.combining(c)}
        if marks:
            text = text.translate(marks)
    return _DOT_IN_WORD.sub(" ", text)


# Characters that render as nothing, which lures put between letters to split words the filters look for:
# zero-width spaces and joiners, soft hyphen, invisible operators, variation selectors, Unicode tags.
INVISIBLE_IN_WORDS = (
    "\u00ad\u034f\u200b\u200c\u200d\u2060-\u2064\ufe00-\ufe0f\ufeff\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
_INVISIBLE = re.compile(f"[{INVISIBLE_IN_WORDS}\u180e\u200e\u200f]+")


def visible_only(text: str) -> str:
    """`text` without the characters that render as nothing (for matching words and names)."""
    return text if text.isascii() else _INVISIBLE.sub("", text)


_LIST_ID = re.compile(r"<([^<>\s]+)>")
_MAILTO = re.compile(r"<mailto:[^@<>\s]+@([^>?\s]+)", re.IGNORECASE)
_SEAL_DOMAIN = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)")
# headers only a list manager writes beside List-Id: its posting address, Mailman's, Google Groups'
LIST_MECHANICS = frozenset({"list-post", "x-mailman-version", "mailing-list", "x-google-group-id"})
MAX_SEALS = 10


# the dot first, so that the engine looks for dots rather than trying the look-behind everywhere
_DOT_IN_WORD = re.compile(r"\.(?<=[a-z]{4}\.)(?=[a-z]{2,}\b)")


class View:
    """A message as the heuristics see it. Everything is computed on first use."""

    def __init__(self, message: Message) -> None:
        self.message = message
        # click-tracker links already unwrapped: (tracked, target), shared by the anchor and link checks
        self.unwrapped: dict[str, tuple[bool, str | None]] = {}

    @cached_property
    def html(self) -> list[HtmlScan]:
        return [scan_html(h) for h in self.message.html_parts]

    @cached_property
    def raw_html(self) -> str:
        return bounded("\n".join(self.message.html_parts), MAX_HTML_CHARS)

    @cached_property
    def plain(self) -> str:
        return "\n".join(self.message.text_parts)[:MAX_TEXT_CHARS]

    @cached_property
    def visible_text(self) -> str:
        """What a reader sees: text parts, else the visible HTML text."""
        html_text = " ".join(t for s in self.html for t in s.visible)
        return (self.plain if self.plain.strip() else html_text)[:MAX_TEXT_CHARS]

    @cached_property
    def attached(self) -> AttachedEvidence:
        """What the attachments say (pipeline/spam/attached.py), read once per message."""
        return attached_evidence(self.message)

    @cached_property
    def attachment_text(self) -> str:
        """The text of PDF and Office attachments (bounded by the attachment limits)."""
        return self.attached.text

    @cached_property
    def attachment_links(self) -> list[str]:
        """Links inside PDF and Office attachments: link annotations, hyperlinks, URLs in their text."""
        return list(self.attached.links)

    @cached_property
    def qr_links(self) -> list[str]:
        """Web links held by QR codes in images, attached or inline, and in documents' pictures."""
        return list(self.attached.qr_links)

    @cached_property
    def search_text(self) -> str:
        """Subject plus body and attachment text, NFKC-folded, lower case, whitespace collapsed, for phrase
        matching: a lure written in a PDF is read like one in the body."""
        html_text = " ".join(t for s in self.html for t in s.visible)
        text = " ".join((self.message.subject, self.plain[:65536], html_text[:65536], self.attachment_text[:65536]))
        text = visible_only(unicodedata.normalize("NFKC", text))
        return " ".join(text.lower().split())

    @cached_property
    def folded_text(self) -> str:
        """`search_text` with accents dropped, for phrases that lures misspell with diacritics."""
        return fold(self.search_text)

    @cached_property
    def folded_words(self) -> frozenset[str]:
        """The distinct words of `folded_text`, for the phrase lists' pre-test."""
        return word_runs(self.folded_text)

    @cached_property
    def anchors(self) -> list[Anchor]:
        return [a for s in self.html for a in s.anchors]

    @cached_property
    def forms(self) -> list[str]:
        return [f for s in self.html for f in s.forms]

    @cached_property
    def password_forms(self) -> list[str]:
        return [f for s in self.html for f in s.password_forms]

    @cached_property
    def input_forms(self) -> list[str]:
        return [f for s in self.html for f in s.input_forms]

    @cached_property
    def links(self) -> list[str]:
        """Every link target: the message's URLs, anchor hrefs that are web links, then the links of
        attachments and QR codes, judged like the body's (the first MAX_LINKS)."""
        seen = dict.fromkeys(self.message.urls[:MAX_LINKS])
        for a in self.anchors:
            if len(seen) >= MAX_LINKS:
                break
            if a.href.lower().startswith(("http://", "https://")):
                seen.setdefault(a.href, None)
        for url in (*self.attachment_links, *self.qr_links):
            if len(seen) >= MAX_LINKS:
                break
            seen.setdefault(url, None)
        return list(seen)

    @cached_property
    def link_hosts(self) -> list[str]:
        return list(dict.fromkeys(h for h in (host_of(u) for u in self.links) if h))

    @cached_property
    def link_domains(self) -> list[str]:
        return list(dict.fromkeys(registered_domain(h) for h in self.link_hosts))

    @cached_property
    def from_domain(self) -> str:
        return domain_of(self.message.from_address)

    @cached_property
    def from_org_domain(self) -> str:
        return registered_domain(self.from_domain)

    @cached_property
    def list_id(self) -> str:
        """The list's identifier when the message is a mailing-list post, else ''.

        A post has a List-Id (RFC 2919) and what only a list manager adds beside it: a List-Post address,
        a Mailman or Google Groups header, or an ARC seal by the list's domain. List-Id alone is not
        enough: email service providers set it on newsletters."""
        raw = self.message.header("List-Id")
        if not raw:
            return ""
        m = _LIST_ID.search(raw)
        ident = (m.group(1) if m else raw.strip()).lower().strip(".")
        if "." not in ident or len(ident) > 255:
            return ""
        present = {name.lower() for name in self.message.email}
        if present & LIST_MECHANICS:
            return ident
        domain = registered_domain(ident)
        for seal in self.message.raw_headers("ARC-Seal")[:MAX_SEALS]:
            d = _SEAL_DOMAIN.search(seal)
            if d and registered_domain(d.group(1).lower().strip(".")) == domain:
                return ident
        return ""

    @cached_property
    def list_domains(self) -> frozenset[str]:
        """The registered domains a list post's list writes with: its List-Id's and its posting address's."""
        if not self.list_id:
            return frozenset()
        domains = {registered_domain(self.list_id)}
        post = _MAILTO.search(self.message.header("List-Post") or "")
        if post:
            domains.add(registered_domain(post.group(1).lower().strip(".")))
        return frozenset(domains - {""})

    @cached_property
    def from_list(self) -> bool:
        """The list rewrote From to its own address (DMARC mitigation): the poster is in Reply-To or the name."""
        return bool(self.from_org_domain) and self.from_org_domain in self.list_domains

    @property
    def has_link_or_form(self) -> bool:
        return bool(self.links or self.forms)


__all__ = [
    "MAX_HTML_CHARS",
    "MAX_LINKS",
    "MAX_TEXT_CHARS",
    "Anchor",
    "HtmlScan",
    "View",
    "authority_of",
    "domain_of",
    "fold",
    "host_of",
    "registered_domain",
    "scan_html",
    "visible_only",
]
