"""The DMARC policy honoured as an action: `decide()` over auth findings and facts (no DNS)."""

from __future__ import annotations

import pytest

from mailwarden.model import Action, Category, Direction, Finding, Policy, StageOutcome, StageResult
from mailwarden.pipeline.decide import decide
from mailwarden.pipeline.facts import ScanFacts


def auth_stage(code: str, score: float) -> StageResult:
    return StageResult("auth", StageOutcome.DETECTED, (Finding("auth", code, score),))


def facts(dmarc: str = "fail", policy: str = "reject", published: str | None = None) -> ScanFacts:
    auth = {
        "dmarc": dmarc,
        "dmarc_policy": policy,
        "dmarc_published": published or policy,
        "from_domain": "bank.example",
    }
    return ScanFacts(auth=auth)


def policy(**dmarc: object) -> Policy:
    return Policy.model_validate({"dmarc": dmarc})


def test_p_reject_is_rejected_with_its_own_reply() -> None:
    verdict = decide(Direction.INBOUND, [auth_stage("DMARC_POLICY_REJECT", 8.0)], Policy(), facts=facts())
    d = verdict.disposition
    assert (d.action, d.reason) == (Action.REJECT, "DMARC p=reject honoured: bank.example failed DMARC")
    assert d.smtp_reply is not None and d.smtp_reply.startswith("550 5.7.26 ") and "bank.example" in d.smtp_reply
    assert (verdict.category, verdict.scl) == (Category.SPAM, 6)  # the score still says what it says


def test_p_quarantine_is_quarantined_by_default_or_junked_when_chosen() -> None:
    stages = [auth_stage("DMARC_POLICY_QUARANTINE", 6.0)]
    quarantined = decide(Direction.INBOUND, stages, Policy(), facts=facts(policy="quarantine"))
    assert quarantined.disposition.action is Action.QUARANTINE and quarantined.category is Category.SPAM
    junked = decide(Direction.INBOUND, stages, policy(quarantine_action="junk"), facts=facts(policy="quarantine"))
    assert junked.disposition.action is Action.JUNK
    assert junked.disposition.reason == "DMARC p=quarantine honoured: bank.example failed DMARC"


def test_reject_may_be_quarantined_instead() -> None:
    verdict = decide(
        Direction.INBOUND, [auth_stage("DMARC_POLICY_REJECT", 8.0)], policy(reject_action="quarantine"), facts=facts()
    )
    assert verdict.disposition.action is Action.QUARANTINE and verdict.disposition.smtp_reply is None


def test_honour_off_leaves_the_spam_score_to_decide() -> None:
    verdict = decide(
        Direction.INBOUND, [auth_stage("DMARC_POLICY_REJECT", 8.0)], policy(honour_policy=False), facts=facts()
    )
    assert (verdict.category, verdict.disposition.action) == (Category.SPAM, Action.JUNK)
    assert "DMARC" not in verdict.disposition.reason


@pytest.mark.parametrize(
    ("dmarc", "wanted"), [("temperror", "none"), ("permerror", "none"), ("none", "none"), ("fail", "none")]
)
def test_nothing_to_honour(dmarc: str, wanted: str) -> None:
    verdict = decide(Direction.INBOUND, [auth_stage("DMARC_NONE", 0.0)], Policy(), facts=facts(dmarc, wanted))
    assert (verdict.category, verdict.disposition.action) == (Category.CLEAN, Action.DELIVER)


def test_sampled_out_reject_applies_the_milder_policy_and_says_why() -> None:
    verdict = decide(
        Direction.INBOUND,
        [auth_stage("DMARC_POLICY_QUARANTINE", 6.0)],
        Policy(),
        facts=facts(policy="quarantine", published="reject"),
    )
    assert verdict.disposition.action is Action.QUARANTINE
    assert "publishes p=reject, this message sampled out by pct=" in verdict.disposition.reason


def test_low_weights_still_honour_and_make_it_spam() -> None:
    # an administrator who set the DMARC weights to 0 still has the action; the verdict is at least spam
    verdict = decide(
        Direction.INBOUND, [auth_stage("DMARC_POLICY_QUARANTINE", 0.0)], Policy(), facts=facts("fail", "quarantine")
    )
    assert (verdict.category, verdict.scl, verdict.disposition.action) == (Category.SPAM, 5, Action.QUARANTINE)


def test_what_it_does_not_override() -> None:
    # malware keeps its own handling; an allow list or SCL -1 rule bypass wins; outbound mail is not judged
    malware = StageResult("malware", StageOutcome.DETECTED, (Finding("malware", "MALWARE_EICAR", 100.0),))
    verdict = decide(Direction.INBOUND, [auth_stage("DMARC_POLICY_REJECT", 8.0), malware], Policy(), facts=facts())
    assert (verdict.category, verdict.disposition.action) == (Category.MALWARE, Action.QUARANTINE)
    allowed = decide(
        Direction.INBOUND, [auth_stage("DMARC_POLICY_REJECT", 8.0)], Policy(), facts=facts(), bypass_spam="ip_allow"
    )
    assert allowed.disposition.action is Action.DELIVER
    outbound = decide(Direction.OUTBOUND, [auth_stage("DMARC_POLICY_REJECT", 8.0)], Policy(), facts=facts())
    assert outbound.disposition.action is Action.DELIVER


def test_a_stronger_verdict_action_is_kept() -> None:
    # the policy drops high-confidence spam; junking it for DMARC would be weaker
    strict = Policy.model_validate(
        {"spam": {"actions": {"high_confidence_spam": "drop"}}, "dmarc": {"quarantine_action": "junk"}}
    )
    verdict = decide(
        Direction.INBOUND, [auth_stage("DMARC_POLICY_QUARANTINE", 11.0)], strict, facts=facts("fail", "quarantine")
    )
    assert verdict.disposition.action is Action.DROP
