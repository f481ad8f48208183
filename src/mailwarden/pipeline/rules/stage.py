"""The transport rules stage: the organisation's own rules, after the malware filter, before spam.

It reports one `RULE_<NAME>` finding (score 0) per matched rule and leaves the rules' outcome in
`ctx.facts.rules` for `decide`. A rule that sets SCL -1 (enforce mode) makes the spam filter skip
the message, like the IP allow list.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import ClassVar

from mailwarden.model import Finding, Message, Policy, StageOutcome
from mailwarden.model.rules import CustomSensitiveType, Rule
from mailwarden.model.rules_outcome import MatchedRule, RulesOutcome
from mailwarden.model.scoring import BULK_PREFIX, MALWARE_PREFIX, PHISH_PREFIX, scl_for
from mailwarden.model.verdict import RuleHit
from mailwarden.pipeline.dlp import CustomType, DlpMatch, DlpScanner
from mailwarden.pipeline.extract import message_texts
from mailwarden.pipeline.rules.compiled import CompiledRules, compile_rules
from mailwarden.pipeline.rules.facts import MessageFacts
from mailwarden.pipeline.services import StageServices
from mailwarden.pipeline.stage import Inspection, ScanContext

STAGE = "rules"
FINDING_PREFIX = "RULE_"
_CACHE_SIZE = 64


def finding_code(rule_name: str) -> str:
    return FINDING_PREFIX + (re.sub(r"[^A-Z0-9]+", "_", rule_name.upper()).strip("_") or "UNNAMED")


class RuleSetCache:
    """Compiled rule sets by their rules, so a policy reload recompiles only what changed."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self.size = size
        self._sets: OrderedDict[tuple[Rule, ...], CompiledRules] = OrderedDict()
        self._last: tuple[tuple[Rule, ...], CompiledRules] | None = None

    def get(self, rules: tuple[Rule, ...]) -> CompiledRules:
        # the same policy object comes with every message: find it by identity, without hashing 1,000 rules
        last = self._last
        if last is not None and last[0] is rules:
            return last[1]
        found = self._sets.get(rules)
        if found is None:
            found = compile_rules(rules)
            self._sets[rules] = found
            while len(self._sets) > self.size:
                self._sets.popitem(last=False)
        else:
            self._sets.move_to_end(rules)
        self._last = (rules, found)
        return found


class TransportRules:
    name: ClassVar[str] = STAGE

    def __init__(self) -> None:
        self.cache = RuleSetCache()

    @classmethod
    def from_services(cls, services: StageServices) -> TransportRules:
        return cls()

    async def inspect(self, ctx: ScanContext) -> list[Finding] | Inspection:
        if not ctx.policy.rules:
            return Inspection(StageOutcome.SKIPPED, reason="no transport rules")
        outcome = evaluate(self.cache.get(ctx.policy.rules), ctx)
        ctx.facts.rules = outcome
        if outcome.scl == -1:
            ctx.bypass_spam = ctx.bypass_spam or f"rule:{outcome.enforced[-1].rule.name}"
        findings = tuple(_finding(m) for m in outcome.matched)
        return Inspection(StageOutcome.DETECTED if findings else StageOutcome.CLEAN, findings)


def evaluate(compiled: CompiledRules, ctx: ScanContext) -> RulesOutcome:
    """Run a compiled rule set over the message in `ctx` (also used by `mailwarden rules test`)."""
    connection = ctx.facts.connection
    facts = MessageFacts(
        ctx.message,
        ctx.envelope,
        ctx.organisation.domain_names if ctx.organisation else frozenset(),
        compiled.terms,
        sending_ip=(connection.ip if connection else None) or ctx.envelope.client_ip,
        scl=-1 if ctx.bypass_spam else scl_so_far(ctx),
        dlp=_dlp_for(ctx.policy) if compiled.needs_dlp(ctx.direction) else None,
    )
    matched = compiled.evaluate(ctx.direction, facts)
    scl = next(
        (m.rule.actions.set_scl for m in reversed(matched) if not m.audit and m.rule.actions.set_scl is not None),
        None,
    )
    dlp = tuple(m.as_dict() for m in facts.sensitive)
    return RulesOutcome(tuple(matched), scl, dlp)


def scl_so_far(ctx: ScanContext) -> int:
    """The SCL the findings of earlier stages add up to; the spam filter itself has not run yet."""
    score = sum(
        f.score
        for r in ctx.results
        for f in r.findings
        if not f.code.startswith((MALWARE_PREFIX, PHISH_PREFIX, BULK_PREFIX))
    )
    return scl_for(score)


def _finding(m: MatchedRule) -> Finding:
    return Finding(STAGE, finding_code(m.rule.name), 0.0, RuleHit(m.rule.name, m.audit, m.reasons).detail)


# ---- DLP ----------------------------------------------------------------------------------------


def _dlp_for(policy: Policy) -> Callable[[Message], Sequence[DlpMatch]]:
    def scan(message: Message) -> Sequence[DlpMatch]:
        return dlp_matches(message, policy)

    return scan


def dlp_matches(message: Message, policy: Policy) -> list[DlpMatch]:
    """Sensitive information in the message's visible text (built-in types and the policy's custom
    types); values only in redacted form."""
    return dlp_scanner(policy.dlp.custom_types).scan(message_texts(message))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def dlp_scanner(custom: tuple[CustomSensitiveType, ...]) -> DlpScanner:
    """A scanner for the built-in types and these custom types, compiled once per set of custom types."""
    return DlpScanner(tuple(CustomType.model_validate(t.model_dump(mode="json")) for t in custom))
