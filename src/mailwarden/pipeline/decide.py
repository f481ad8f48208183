"""The one place that turns evidence into a verdict and a verdict into a (policy) disposition."""

from __future__ import annotations

from collections.abc import Sequence

from mailwarden.model import (
    Action,
    Category,
    Direction,
    Disposition,
    Finding,
    PhishLevel,
    Policy,
    StageResult,
    Verdict,
)
from mailwarden.model.policy import MalwareAction, ScanErrorAction, SpamVerdictAction
from mailwarden.model.replies import dmarc_reject
from mailwarden.model.rules_outcome import STRENGTH, RulesOutcome, combine
from mailwarden.model.scoring import (
    BULK_PREFIX,
    HIGH_CONFIDENCE_PHISH_THRESHOLD,
    HIGH_CONFIDENCE_SCL,
    MALWARE_PREFIX,
    OUTBOUND_HIGH_RISK,
    OUTBOUND_SCORED,
    PHISH_PREFIX,
    PHISH_THRESHOLD,
    scl_for,
)
from mailwarden.model.verdict import RuleHit
from mailwarden.pipeline.facts import ScanFacts

# verdicts whose own handling a DMARC policy never replaces: malware, a failed scan's fail-safe, a block
_DMARC_KEEPS = frozenset({Category.MALWARE, Category.SCAN_ERROR, Category.BLOCKED, Category.INTERNAL})


def decide(
    direction: Direction,
    stages: Sequence[StageResult],
    policy: Policy,
    *,
    bypass_spam: str | None = None,
    reject: str | None = None,
    facts: ScanFacts | None = None,
) -> Verdict:
    """Combine every stage's findings into one verdict and pick the policy's action for it."""
    findings = [f for s in stages for f in s.findings]
    errors = tuple(f"{s.stage}: {s.error}" for s in stages if s.error)
    malware = tuple(dict.fromkeys(f.detail or f.code for f in findings if f.code.startswith(MALWARE_PREFIX)))
    phish_score = sum(f.score for f in findings if f.code.startswith(PHISH_PREFIX))
    bcl = min(9, max(0, round(sum(f.score for f in findings if f.code.startswith(BULK_PREFIX)))))
    # Phishing evidence is evidence of unwanted mail too: the SCL is taken from spam and (positive) phish
    # scores together, while the phish verdict keeps its own thresholds. docs/spam-filter.md
    spam_score = sum(f.score for f in findings if not f.code.startswith((MALWARE_PREFIX, PHISH_PREFIX, BULK_PREFIX)))
    spam_score += max(phish_score, 0.0)

    scl = -1 if bypass_spam else scl_for(spam_score)
    facts = facts or ScanFacts()
    rules = facts.rules or RulesOutcome()
    if rules.scl is not None:
        scl = rules.scl  # a transport rule's SCL replaces the filters' (EOP: SFV:SKS / SKN)
    phish = PhishLevel.NONE
    if phish_score >= HIGH_CONFIDENCE_PHISH_THRESHOLD:
        phish = PhishLevel.HIGH_CONFIDENCE
    elif phish_score >= PHISH_THRESHOLD:
        phish = PhishLevel.PHISH

    category = Category.BLOCKED if reject else _category(scl, bcl, phish, malware, errors, policy)
    if reject:
        disposition = Disposition(Action.REJECT, reason="connection blocked", smtp_reply=reject)
    elif direction is Direction.OUTBOUND and category in OUTBOUND_SCORED:
        # outbound spam is not held: it leaves through the high-risk delivery pool (enforce/pool.py)
        done = "relayed through the high-risk pool" if category in OUTBOUND_HIGH_RISK else "score recorded"
        disposition = Disposition(Action.DELIVER, reason=f"outbound {category.value}: {done}")
    else:
        disposition = disposition_for(category, policy, malware=malware, facts=facts)
        honoured = None if bypass_spam or direction is not Direction.INBOUND else dmarc_disposition(facts, policy)
        if honoured and category not in _DMARC_KEEPS and STRENGTH[honoured.action] >= STRENGTH[disposition.action]:
            disposition = honoured
            if category in (Category.CLEAN, Category.BULK):  # the domain's policy says it is not wanted
                category, scl = Category.SPAM, max(scl, 5)
    if not reject:
        # transport rules' actions and changes, by the precedence in pipeline/rules/outcome.py
        category, disposition = combine(category, disposition, rules)
    return Verdict(
        direction=direction,
        category=category,
        disposition=disposition,
        rules=tuple(RuleHit(m.rule.name, m.audit, m.reasons) for m in rules.matched),
        dlp_matches=rules.dlp,
        auth=dict(facts.auth),
        scl=scl,
        bcl=bcl,
        phish=phish,
        score=spam_score,
        malware=malware,
        stages=tuple(stages),
        scan_errors=errors,
    )


def _category(
    scl: int, bcl: int, phish: PhishLevel, malware: tuple[str, ...], errors: tuple[str, ...], policy: Policy
) -> Category:
    if malware:
        return Category.MALWARE
    if phish is PhishLevel.HIGH_CONFIDENCE:
        return Category.HIGH_CONFIDENCE_PHISH
    if errors:
        # a stage that failed never lets a message count as clean; the fail-safe decides
        return Category.SCAN_ERROR
    if phish is PhishLevel.PHISH:
        return Category.PHISH
    if scl >= HIGH_CONFIDENCE_SCL:
        return Category.HIGH_CONFIDENCE_SPAM
    if scl >= 5:
        return Category.SPAM
    if scl >= 0 and bcl >= policy.spam.bcl_threshold:
        return Category.BULK
    return Category.CLEAN


def disposition_for(
    category: Category,
    policy: Policy,
    *,
    malware: tuple[str, ...] = (),
    facts: ScanFacts | None = None,
) -> Disposition:
    """The action the policy prescribes for a verdict category (not yet applied)."""
    facts = facts or ScanFacts()
    if category is Category.MALWARE:
        reason = "malware: " + ", ".join(malware)
        infected = facts.infected_attachments
        # replacing works on named attachments only; malware elsewhere (body text, archive limits,
        # nameless parts) leaves nothing safe to deliver, so the message is quarantined instead
        if policy.malware.action is MalwareAction.REPLACE_ATTACHMENTS and infected and not facts.malware_unreplaceable:
            return Disposition(
                Action.REPLACE_ATTACHMENTS,
                reason=reason,
                replace_attachments=infected,
                alert_text=policy.malware.alert_text,
            )
        return Disposition(Action.QUARANTINE, reason=reason)
    if category is Category.SCAN_ERROR:
        fail_safe = {
            ScanErrorAction.QUARANTINE: Action.QUARANTINE,
            ScanErrorAction.DELIVER: Action.DELIVER,
            ScanErrorAction.REJECT: Action.REJECT,
        }[policy.scan_error_action]
        return Disposition(fail_safe, reason="scan error: fail-safe action")
    spam_action = {
        Category.SPAM: policy.spam.actions.spam,
        Category.HIGH_CONFIDENCE_SPAM: policy.spam.actions.high_confidence_spam,
        Category.PHISH: policy.spam.actions.phish,
        Category.HIGH_CONFIDENCE_PHISH: policy.spam.actions.high_confidence_phish,
        Category.BULK: policy.spam.actions.bulk,
    }.get(category)
    if spam_action is None:
        return Disposition(Action.DELIVER)
    return _spam_disposition(spam_action, category, policy)


def dmarc_disposition(facts: ScanFacts, policy: Policy) -> Disposition | None:
    """The policy's action for a DMARC failure whose domain asks for quarantine or reject, when the
    organisation honours DMARC policies; None otherwise (a pass, none, temperror, permerror or p=none)."""
    auth = facts.auth
    if not policy.dmarc.honour_policy or auth.get("dmarc") != "fail":
        return None
    wanted, domain = auth.get("dmarc_policy", ""), auth.get("from_domain", "")
    if wanted == "reject":
        action = policy.dmarc.reject_action.action
    elif wanted == "quarantine":
        action = policy.dmarc.quarantine_action.action
    else:
        return None
    reason = f"DMARC p={wanted} honoured: {domain} failed DMARC"
    published = auth.get("dmarc_published", "")
    if published and published != wanted:
        reason += f" (publishes p={published}, this message sampled out by pct=)"
    return Disposition(action, reason=reason, smtp_reply=dmarc_reject(domain) if action is Action.REJECT else None)


def _spam_disposition(action: SpamVerdictAction, category: Category, policy: Policy) -> Disposition:
    reason = category.value
    if action is SpamVerdictAction.ADD_HEADER:
        return Disposition(Action.ADD_HEADER, reason=reason, header=(policy.spam.header_name, policy.spam.header_value))
    if action is SpamVerdictAction.PREPEND_SUBJECT:
        return Disposition(Action.PREPEND_SUBJECT, reason=reason, subject_prefix=policy.spam.subject_prefix)
    if action is SpamVerdictAction.REDIRECT:
        return Disposition(Action.REDIRECT, reason=reason, redirect_to=policy.spam.redirect_to)
    return Disposition(action.action, reason=reason)


def internal_verdict() -> Verdict:
    """Mail between the organisation's own addresses: recorded, not scanned."""
    return Verdict(direction=Direction.INTERNAL, category=Category.INTERNAL, disposition=Disposition(Action.DELIVER))


__all__ = ["Finding", "decide", "disposition_for", "dmarc_disposition", "internal_verdict", "scl_for"]
