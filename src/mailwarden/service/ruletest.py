"""Which transport rules match a message, and what would happen to it.

One use case behind `mailwarden rules test` and the API's `POST /organisations/{name}/rules/test`:
only the rules stage runs (no connection, malware or spam filter), over the rules of the policy it is
given (the saved ones, or candidates put into a policy by the caller), and the outcome is planned as
enforce mode would carry it out. Nothing is recorded, delivered or changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

from mailwarden.enforce.apply import plan_delivery
from mailwarden.model import Direction, Envelope, Message, Organisation, Policy, Verdict
from mailwarden.model.direction import assumed_direction
from mailwarden.pipeline.engine import Pipeline
from mailwarden.pipeline.rules.stage import STAGE, TransportRules
from mailwarden.service.runtime import offline_envelope

INTERNAL_NOTE: Final = "internal mail (every address in the organisation's domains): not scanned, no rule runs"

# the rules stage's finding text: "<rule> (<mode>): <reason>; <reason>..."
_FINDING = re.compile(r"(?P<rule>.*?) \((?P<mode>enforce|audit: would have)\): (?P<why>.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule that matched, and why."""

    rule: str
    mode: str  # "enforce", or "audit: would have" for a rule in audit mode
    reasons: tuple[str, ...]  # each condition's reason, in the rule's order
    detail: str  # the finding as message trace shows it


@dataclass(frozen=True, slots=True)
class RuleTestResult:
    """What the rules made of one message. `verdict` is None for internal mail: no rule runs on it."""

    direction: Direction
    envelope: Envelope
    verdict: Verdict | None
    matches: tuple[RuleMatch, ...]
    notes: tuple[str, ...]  # what enforce mode would do to the message, in words


def rule_test_envelope(
    message: Message,
    *,
    sender: str | None = None,
    recipients: tuple[str, ...] = (),
    client_ip: str | None = None,
) -> Envelope:
    """The message's own envelope (Return-Path or From, To and Cc), with what the caller gives instead."""
    envelope = offline_envelope(message)
    if sender is not None:
        envelope = replace(envelope, mail_from=sender.strip().lower())
    if recipients:
        envelope = replace(envelope, rcpt_to=tuple(r.strip().lower() for r in recipients))
    if client_ip and client_ip.strip():
        envelope = replace(envelope, client_ip=client_ip.strip())
    return envelope


async def run_rule_test(
    message: Message,
    envelope: Envelope,
    policy: Policy,
    organisation: Organisation,
    *,
    direction: Direction | None = None,
) -> RuleTestResult:
    """Run `policy`'s transport rules over `message`; the direction follows from the organisation's
    domains unless it is given."""
    if direction is None:
        direction = assumed_direction(envelope.mail_from, envelope.rcpt_to, organisation.domain_names)
    if direction is Direction.INTERNAL:
        return RuleTestResult(direction, envelope, None, (), (INTERNAL_NOTE,))
    rules_only = Pipeline({Direction.INBOUND: [TransportRules()], Direction.OUTBOUND: [TransportRules()]})
    verdict = await rules_only.scan(message, envelope, policy, organisation=organisation, direction=direction)
    matches = tuple(_match(f.detail) for f in verdict.findings if f.stage == STAGE)
    plan = plan_delivery(message.raw, verdict, envelope.rcpt_to, applied=True)
    return RuleTestResult(direction, envelope, verdict, matches, plan.notes)


def _match(detail: str) -> RuleMatch:
    found = _FINDING.fullmatch(detail)
    if found is None:
        return RuleMatch(detail, "", (), detail)
    return RuleMatch(found["rule"], found["mode"], tuple(found["why"].split("; ")), detail)
