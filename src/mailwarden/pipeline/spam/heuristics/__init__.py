"""The spam filter's rule-based evidence: header, HTML, link, phishing, lookalike, bulk and QR-code heuristics.

`Heuristics.evaluate` is pure and synchronous: it looks at a parsed message, the facts earlier stages
shared (`ctx.facts`: authentication results) and the recipient organisation, and returns named findings
whose scores come from the symbol table (symbols.py) as overridden by `[stages.spam.weights]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mailwarden.model import Finding, Message, Organisation
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics import bulk, headers, html, lookalike, phishing, qr, urls
from mailwarden.pipeline.spam.heuristics.composites import add_composites
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
    ("qr", qr.check),
)


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
        weights = self.settings.weights
        return [
            Finding(STAGE, code, weights[code], detail)
            for code, detail in self._fired(message, ctx_facts, organisation).items()
            if weights.get(code, 0.0)
        ]

    def symbols(
        self, message: Message, ctx_facts: ScanFacts | None = None, organisation: Organisation | None = None
    ) -> list[tuple[str, str]]:
        """Every symbol that fires, weight 0 included (for benchmarks and `scan --explain`)."""
        return list(self._fired(message, ctx_facts, organisation).items())

    def _fired(
        self, message: Message, ctx_facts: ScanFacts | None, organisation: Organisation | None
    ) -> dict[str, str]:
        view = View(message)
        facts = ctx_facts or ScanFacts()
        fired: dict[str, str] = {}
        for _, check in CHECKS:
            for code, detail in check(view, facts, organisation, self.settings):
                fired.setdefault(code, detail)
        add_composites(fired, view, self.settings)
        return fired


__all__ = ["DEFAULT_WEIGHTS", "SYMBOLS", "Heuristics", "HeuristicsSettings"]
