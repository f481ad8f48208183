"""The spam filter's rule-based evidence: header, HTML, link, phishing, lookalike and bulk heuristics.

`Heuristics.evaluate` is pure and synchronous: it looks at a parsed message, the facts earlier stages
shared (`ctx.facts`: authentication results) and the recipient organisation, and returns named findings
whose scores come from the symbol table (symbols.py) as overridden by `[stages.spam.weights]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from mailwarden.model import Finding, Message, Organisation
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics import bulk, headers, html, lookalike, phishing, urls
from mailwarden.pipeline.spam.heuristics.settings import HeuristicsSettings
from mailwarden.pipeline.spam.heuristics.symbols import DEFAULT_WEIGHTS, SYMBOLS
from mailwarden.pipeline.spam.heuristics.view import View

STAGE = "spam"

Check = Callable[[View, ScanFacts, Organisation | None, HeuristicsSettings], Iterator[tuple[str, str]]]
CHECKS: tuple[tuple[str, Check], ...] = (
    ("headers", headers.check),
    ("html", html.check),
    ("urls", urls.check),
    ("phishing", phishing.check),
    ("lookalike", lookalike.check),
    ("bulk", bulk.check),
)


# The composite PHISH_SUSPICIOUS_MIX: phishing that also looks like spam is likelier phishing than
# either half alone (the two scores feed separate verdicts in decide()).
MIX_PHISH = 3.0
MIX_SPAM = 2.0
MIX = "PHISH_SUSPICIOUS_MIX"


def _mixed(codes: Iterable[str], weights: Mapping[str, float]) -> bool:
    phish = spam = 0.0
    for code in codes:
        if code.startswith("PHISH_"):
            phish += weights.get(code, 0.0)
        elif not code.startswith("BULK_"):
            spam += weights.get(code, 0.0)
    return phish >= MIX_PHISH and spam >= MIX_SPAM


class Heuristics:
    """All heuristic checks with their weights."""

    def __init__(self, settings: HeuristicsSettings | None = None) -> None:
        self.settings = settings or HeuristicsSettings()

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> Heuristics:
        return cls(HeuristicsSettings.from_config(section))

    def evaluate(
        self,
        message: Message,
        ctx_facts: ScanFacts | None = None,
        organisation: Organisation | None = None,
    ) -> list[Finding]:
        """Findings for every symbol that fires and has a non-zero weight, each symbol at most once."""
        view = View(message)
        facts = ctx_facts or ScanFacts()
        weights = self.settings.weights
        out: dict[str, Finding] = {}
        for _, check in CHECKS:
            for code, detail in check(view, facts, organisation, self.settings):
                weight = weights.get(code, 0.0)
                if code in out or not weight:
                    continue
                out[code] = Finding(STAGE, code, weight, detail)
        if weights.get(MIX, 0.0) and _mixed(out, weights):
            out[MIX] = Finding(STAGE, MIX, weights[MIX], "")
        return list(out.values())

    def symbols(
        self, message: Message, ctx_facts: ScanFacts | None = None, organisation: Organisation | None = None
    ) -> list[tuple[str, str]]:
        """Every symbol that fires, weight 0 included (for benchmarks and `scan --explain`)."""
        view = View(message)
        seen: dict[str, str] = {}
        for _, check in CHECKS:
            for code, detail in check(view, ctx_facts or ScanFacts(), organisation, self.settings):
                seen.setdefault(code, detail)
        if _mixed(seen, self.settings.weights):
            seen[MIX] = ""
        return list(seen.items())


__all__ = ["DEFAULT_WEIGHTS", "SYMBOLS", "Heuristics", "HeuristicsSettings"]
