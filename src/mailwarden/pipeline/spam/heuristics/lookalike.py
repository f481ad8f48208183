"""Lookalike domains: homoglyph skeletons, punycode, edit distance, brand names inside longer domains."""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from mailwarden.model import Organisation
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics.settings import HeuristicsSettings
from mailwarden.pipeline.spam.heuristics.view import View, domain_of, registered_domain

Hit = tuple[str, str]

# Letters that render like a Latin letter: Cyrillic, Greek, Latin look-alikes and digits.
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "һ": "h", "ӏ": "l",
    "ԛ": "q", "ԝ": "w", "ɡ": "g", "ь": "b", "п": "n", "г": "r",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ω": "w", "γ": "y", "μ": "u",
    # Latin look-alikes and digits
    "ı": "i", "ł": "l", "ŀ": "l", "ɩ": "i", "0": "o", "1": "l", "3": "e", "5": "s", "7": "t",
    "$": "s", "|": "l", "!": "i",
}  # fmt: skip
# sequences read as one letter once the skeleton is lower case
_DIGRAPHS = (("rn", "m"), ("vv", "w"), ("cl", "d"), ("i", "l"))


_CONFUSABLE_TABLE = str.maketrans({**CONFUSABLES, "-": None})


@lru_cache(maxsize=16384)
def skeleton(label: str) -> str:
    """A label reduced to what it looks like: accents dropped, homoglyphs and digraphs folded."""
    text = label.lower()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.translate(_CONFUSABLE_TABLE)
    for pair, letter in _DIGRAPHS:
        text = text.replace(pair, letter)
    return text


def to_unicode(domain: str) -> str:
    """A punycode domain as Unicode (labels that do not decode stay as they are)."""
    out = []
    for label in domain.split("."):
        if label.startswith("xn--"):
            with contextlib.suppress(UnicodeError):
                label = label.encode("ascii").decode("idna")
        out.append(label)
    return ".".join(out)


def distance(a: str, b: str, limit: int = 3) -> int:
    """Damerau-Levenshtein distance (optimal string alignment), capped at `limit`."""
    if abs(len(a) - len(b)) >= limit:
        return limit
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) >= limit:
            return limit
        prev2, prev = prev, cur
    return min(prev[-1], limit)


def _name(domain: str) -> str:
    """The registered domain without its public suffix: `paypal` for paypal.co.uk."""
    reg = registered_domain(domain)
    return reg.split(".", 1)[0] if reg else ""


@dataclass(frozen=True, slots=True)
class Target:
    """A domain others may imitate, prepared once: registered domain, name, skeleton of the name."""

    domain: str
    reg: str
    name: str
    skeleton: str

    @classmethod
    def of(cls, domain: str) -> Target:
        name = _name(domain)
        return cls(domain, registered_domain(domain), name, skeleton(name))


def _deletions(word: str, count: int = 2) -> set[str]:
    """`word` with up to `count` letters deleted. Two names within `count` edits (insertions, deletions,
    substitutions, transpositions) share at least one such variant."""
    out = {word}
    frontier = {word}
    for _ in range(count):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


class Targets:
    """Imitation targets, in order, indexed by skeleton and by names with up to two letters deleted,
    so that a candidate is compared only with the few targets it could match."""

    def __init__(self, items: Iterable[Target]) -> None:
        self.items = tuple(items)
        self.by_skeleton: dict[str, list[int]] = {}
        self.by_variant: dict[str, list[int]] = {}
        for i, t in enumerate(self.items):
            self.by_skeleton.setdefault(t.skeleton, []).append(i)
            if len(t.name) >= 6:  # edit distance is judged from six letters on
                for variant in _deletions(t.name):
                    self.by_variant.setdefault(variant, []).append(i)

    def __iter__(self) -> Iterator[Target]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def near(self, name: str, shape: str) -> list[Target]:
        """The targets that share `shape` or may be within two edits of `name`, in order."""
        found = set(self.by_skeleton.get(shape, ()))
        if len(name) >= 5 and self.by_variant:
            for variant in _deletions(name):
                found.update(self.by_variant.get(variant, ()))
        return [self.items[i] for i in sorted(found)]


@lru_cache(maxsize=64)
def targets(domains: frozenset[str]) -> Targets:
    """Imitation targets for a set of domains; names under four letters are too short to judge."""
    out = {t.reg: t for t in (Target.of(d) for d in sorted(domains)) if len(t.name) >= 4}
    return Targets(out.values())


@lru_cache(maxsize=8192)
def imitated(candidate: str, candidates: Targets) -> Target | None:
    """The target that `candidate`, a different registered domain, could be taken for."""
    uni = to_unicode(candidate)
    reg = registered_domain(uni)
    name = _name(uni)
    if not reg or not name:
        return None
    shape = skeleton(name)
    for t in candidates.near(name, shape):
        if reg == t.reg or name == t.name:
            continue
        if shape == t.skeleton:
            return t
        # edit distance on the name: none under 6 letters (too many real names are that close),
        # 1 up to 9 letters, 2 from 10 on
        if len(t.name) < 6 or len(name) < 5:
            continue
        allowed = 1 if len(t.name) < 10 else 2
        if abs(len(name) - len(t.name)) <= allowed and distance(name, t.name, allowed + 1) <= allowed:
            return t
    return None


def looks_like(candidate: str, target: str) -> bool:
    """True when `candidate` is a different registered domain that a reader could take for `target`."""
    return imitated(candidate, targets(frozenset({target}))) is not None


def brand_token_in(domain: str, token: str) -> bool:
    """A brand's name inside a domain that is not the brand's: `paypal-secure-login.example.net`,
    `paypal.example`, `login.paypal.com.example.net`. Short names (dhl, ups, ing) count only as a
    whole label or hyphen-separated word; names of six letters or more also inside a word."""
    token = skeleton(token)
    words, labels = _domain_shapes(domain)
    if token in words:
        return True
    return len(token) >= 6 and any(token in label for label in labels)


@lru_cache(maxsize=4096)
def embedded_brand(domain: str, brand_tokens: tuple[tuple[str, str], ...]) -> str | None:
    """The first brand (brand, token) whose token `brand_token_in` finds in `domain`."""
    return next((brand for brand, token in brand_tokens if brand_token_in(domain, token)), None)


@lru_cache(maxsize=4096)
def _domain_shapes(domain: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """Skeletons of a domain's hyphen-separated words and of its labels, the public suffix left out."""
    uni = to_unicode(domain).lower()
    reg = registered_domain(uni)
    labels = [*uni[: len(uni) - len(reg)].split("."), _name(uni)] if reg else uni.split(".")
    words = frozenset(skeleton(w) for label in labels for w in label.split("-") if w)
    return words, tuple(skeleton(label) for label in labels)


def _domains(view: View) -> Iterable[tuple[str, str]]:
    """(where, domain) for the sender's domains and the link hosts."""
    if view.from_domain:
        yield "from", view.from_domain
    reply = domain_of(view.message.reply_to)
    if reply and reply != view.from_domain:
        yield "reply-to", reply
    for host in view.link_hosts[:50]:
        yield "link", host


def check(view: View, facts: ScanFacts, org: Organisation | None, s: HeuristicsSettings) -> Iterator[Hit]:
    if any(label.startswith("xn--") for label in view.from_domain.split(".")):
        yield "PHISH_PUNYCODE_SENDER", to_unicode(view.from_domain)
    domains = list(_domains(view))
    org_targets = targets(org.domain_names) if org is not None else targets(frozenset())
    for where, domain in domains:
        hit = imitated(domain, org_targets)
        if hit:
            yield "PHISH_LOOKALIKE_ORG", f"{where} {domain} ~ {hit.domain}"
            break
    brand_domains = s.brand_domains
    # freemail domains are everyone's sender domains, not something a lure imitates
    brand_targets = targets(s.imitable_brand_domains)
    lookalike = embedded = False
    for where, domain in domains:
        reg = registered_domain(domain)
        if reg in brand_domains or reg in s.freemail:
            continue
        if not lookalike:
            hit = imitated(domain, brand_targets)
            if hit:
                yield "PHISH_LOOKALIKE_BRAND", f"{where} {domain} ~ {hit.domain}"
                lookalike = True
        # inside link hosts brand names are too common in legitimate mail (googlegroups, amazonaws)
        if not embedded and where != "link":
            brand = embedded_brand(domain, s.brand_tokens)
            if brand:
                yield "PHISH_BRAND_IN_DOMAIN", f"{where} {domain} ({brand})"
                embedded = True
