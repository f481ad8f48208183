"""Link heuristics: IP hosts, shorteners, deceptive link text, TLDs, punycode, user@host, free hosting.

Links through a click tracker or a link-protection rewriter are judged by the target they carry
(trackers.py); an opaque tracker link (the target is not in it) never counts as deceptive link text."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mailwarden.mail.received import parse_ip
from mailwarden.model import Organisation
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics.settings import HeuristicsSettings
from mailwarden.pipeline.spam.heuristics.trackers import unwrap
from mailwarden.pipeline.spam.heuristics.view import View, authority_of, host_of, registered_domain

Hit = tuple[str, str]

MANY_DOMAINS = 10
MAX_UNWRAPPED = 500  # distinct tracker links decoded per message; newsletters have a few dozen
# link text that is itself a URL or a bare domain name
_SHOWN_URL = re.compile(r"^\s*(?:https?://)?((?:[a-z0-9-]+\.)+[a-z]{2,24})(?:[:/?#]\S*)?\s*$", re.IGNORECASE)
_FILE_EXT = frozenset({"pdf", "doc", "docx", "xls", "xlsx", "zip", "jpg", "png", "html", "htm", "php", "txt"})
# top-level domains a bare name in link text ("example.com") is read as; anything else there is more
# often a file name (`detector.sv`, `worker.js`) than a domain
_BARE_TLDS = frozenset(
    {"com", "net", "org", "info", "biz", "io", "co", "us", "uk", "de", "nl", "fr", "be", "br", "jp", "eu", "es",
     "it", "ch", "at", "ca", "au", "gov", "edu", "pt", "pl", "se", "no", "dk", "fi", "ie", "in", "mx", "ar"}
)  # fmt: skip


def _host_matches(host: str, names: frozenset[str]) -> str | None:
    """The entry of `names` that `host` is or is under, if any."""
    parts = host.split(".")
    for i in range(len(parts) - 1):
        candidate = ".".join(parts[i:])
        if candidate in names:
            return candidate
    return None


def shown_domain(text: str) -> str | None:
    """The domain a piece of link text shows, when it shows one ('www.example.com', 'https://x.example/')."""
    m = _SHOWN_URL.match(text.strip().lower())
    if m is None:
        return None
    host = m.group(1)
    bare = not text.strip().lower().startswith(("http://", "https://", "www."))
    if bare and host.rsplit(".", 1)[1] not in _BARE_TLDS:
        return None  # "invoice.pdf", "worker.js" are file names, not domains
    if host.rsplit(".", 1)[1] in _FILE_EXT and "/" not in text:
        return None
    return host


def _tracked(url: str, view: View, s: HeuristicsSettings) -> tuple[bool, str | None]:
    """(whether the link goes through a click tracker, its target when the link carries one)."""
    known = view.unwrapped.get(url)
    if known is not None:
        return known
    host = host_of(url)
    if not host or _host_matches(host, s.tracker_hosts) is None:
        return False, None  # the cheap test first: most links go through no tracker
    if len(view.unwrapped) >= MAX_UNWRAPPED:
        return True, None  # past the bound a tracker link is judged as an opaque one
    view.unwrapped[url] = found = unwrap(url, s.tracker_paths)
    return found


def check(view: View, facts: ScanFacts, org: Organisation | None, s: HeuristicsSettings) -> Iterator[Hit]:
    yield from _anchors(view, s)
    targets: list[str] = []
    for url in view.links:
        _, target = _tracked(url, view, s)
        targets.append(target if target is not None else url)
    targets += [f for f in view.forms if f.lower().startswith(("http:", "https:"))]
    seen: set[str] = set()

    def once(symbol: str, detail: str) -> Iterator[Hit]:
        if symbol not in seen:
            seen.add(symbol)
            yield symbol, detail[:80]

    for url in targets:
        host = host_of(url)
        if not host:
            continue
        literal = host.strip("[]").strip()
        # an IP address ends in a digit (IPv4) or has a colon (IPv6): parse only those
        if literal and (":" in literal or literal[-1].isdigit()) and parse_ip(literal) is not None:
            yield from once("PHISH_URL_IP_HOST", host)
        if _host_matches(host, s.shorteners):
            yield from once("PHISH_URL_SHORTENER", host)
        if host.rsplit(".", 1)[-1] in s.suspicious_tlds:
            yield from once("PHISH_URL_SUSPICIOUS_TLD", host)
        if "xn--" in host and any(label.startswith("xn--") for label in host.split(".")):
            yield from once("PHISH_URL_PUNYCODE", host)
        if "@" in url and "@" in authority_of(url):
            yield from once("PHISH_URL_USERINFO", authority_of(url))
        match = _host_matches(host, s.free_hosting)
        if match and registered_domain(host) != view.from_org_domain:
            # alone no evidence: the composite PHISH_URL_FREE_HOSTING needs a lure beside it (composites.py)
            yield from once("URL_FREE_HOSTING", host)
    if len(view.link_domains) > MANY_DOMAINS:
        yield "URL_MANY_DOMAINS", str(len(view.link_domains))
    if any(a.href.lower().startswith("data:") for a in view.anchors) or any(
        f.lower().startswith("data:") for f in view.forms
    ):
        yield "PHISH_URL_DATA_URI", ""


def _anchors(view: View, s: HeuristicsSettings) -> Iterator[Hit]:
    for anchor in view.anchors:
        if not anchor.href.lower().startswith(("http://", "https://")):
            continue
        shown = shown_domain(anchor.text)
        if shown is None:
            continue
        href = anchor.href
        tracked, target = _tracked(href, view, s)
        if tracked:
            if target is None:
                continue  # an opaque tracker id: the link does not say where it leads
            href = target
        real = host_of(href)
        if _host_matches(shown, s.tracker_hosts):
            continue
        if real and registered_domain(shown) != registered_domain(real):
            yield "PHISH_ANCHOR_MISMATCH", f"{shown} -> {real}"[:80]
            return
