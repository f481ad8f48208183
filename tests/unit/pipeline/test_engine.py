from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest

from mailwarden.dns import DnsResolver
from mailwarden.errors import PipelineConfigError
from mailwarden.model import (
    Action,
    Category,
    Direction,
    Domain,
    Envelope,
    Finding,
    Message,
    Organisation,
    Policy,
    StageOutcome,
)
from mailwarden.model.policy import ScanErrorAction
from mailwarden.pipeline import Inspection, Pipeline, ScanContext
from mailwarden.pipeline.registry import resolve
from mailwarden.pipeline.services import StageServices

ORG = Organisation("acme", (Domain("example.com"),))


class Scores:
    name: ClassVar[str] = "spam"
    spam_filter: ClassVar[bool] = True  # skipped when the spam filter is bypassed

    def __init__(self, *findings: tuple[str, float]) -> None:
        self.findings = findings

    async def inspect(self, ctx: ScanContext) -> list[Finding]:
        return [Finding(self.name, code, score) for code, score in self.findings]


class Broken:
    name: ClassVar[str] = "malware"

    async def inspect(self, ctx: ScanContext) -> list[Finding]:
        raise RuntimeError("engine crashed")


class Slow:
    name: ClassVar[str] = "malware"

    async def inspect(self, ctx: ScanContext) -> list[Finding]:
        await asyncio.sleep(5)
        return []


class Allow:
    name: ClassVar[str] = "connection"

    async def inspect(self, ctx: ScanContext) -> Inspection:
        ctx.bypass_spam = "ip_allow"
        return Inspection(StageOutcome.CLEAN, (Finding(self.name, "IP_ALLOW"),))


class Recorder:
    name: ClassVar[str] = "malware"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def inspect(self, ctx: ScanContext) -> list[Finding]:
        self.seen.append(ctx.message.subject)
        return []


def inbound(message: Message) -> Envelope:
    return Envelope("partner@example.org", ("bob@example.com",))


async def test_a_failing_stage_gives_scan_error_and_the_fail_safe(make_message) -> None:
    msg = make_message()
    pipeline = Pipeline({Direction.INBOUND: [Broken(), Scores(("SOME_RULE", 1.0))]})
    verdict = await pipeline.scan(msg, inbound(msg), Policy(), organisation=ORG)
    assert verdict.category is Category.SCAN_ERROR
    assert verdict.scan_errors == ("malware: RuntimeError: engine crashed",)
    assert verdict.disposition.action is Action.QUARANTINE  # default fail-safe keeps the message
    # later stages still ran: the evidence is complete
    assert [s.stage for s in verdict.stages] == ["malware", "spam"]
    assert verdict.stages[0].outcome is StageOutcome.ERROR


async def test_fail_safe_follows_the_policy(make_message) -> None:
    msg = make_message()
    policy = Policy(scan_error_action=ScanErrorAction.DELIVER)
    verdict = await Pipeline({Direction.INBOUND: [Broken()]}).scan(msg, inbound(msg), policy, organisation=ORG)
    assert verdict.disposition.action is Action.DELIVER
    assert verdict.category is Category.SCAN_ERROR


async def test_a_stage_that_hangs_times_out_as_an_error(make_message) -> None:
    msg = make_message()
    pipeline = Pipeline({Direction.INBOUND: [Slow()]}, stage_timeout=0.05)
    verdict = await pipeline.scan(msg, inbound(msg), Policy(), organisation=ORG)
    assert verdict.category is Category.SCAN_ERROR
    assert "timed out" in verdict.scan_errors[0]


async def test_internal_mail_is_not_scanned(make_message) -> None:
    msg = make_message()
    recorder = Recorder()
    pipeline = Pipeline({Direction.INBOUND: [recorder], Direction.OUTBOUND: [recorder]})
    env = Envelope("alice@example.com", ("bob@example.com",))
    verdict = await pipeline.scan(msg, env, Policy(), organisation=ORG, direction=Direction.INTERNAL)
    assert verdict.category is Category.INTERNAL
    assert verdict.direction is Direction.INTERNAL
    assert recorder.seen == []


async def test_an_own_domain_sender_alone_does_not_make_mail_internal(make_message) -> None:
    msg = make_message(subject="spoof")
    recorder = Recorder()
    pipeline = Pipeline({Direction.INBOUND: [recorder], Direction.OUTBOUND: []})
    env = Envelope("ceo@example.com", ("bob@example.com",))
    verdict = await pipeline.scan(msg, env, Policy(), organisation=ORG)  # no caller's evidence: inbound
    assert verdict.direction is Direction.INBOUND
    assert recorder.seen == ["spoof"]


async def test_each_direction_runs_its_own_list(make_message) -> None:
    msg = make_message(subject="out")
    inbound_stage, outbound_stage = Recorder(), Recorder()
    pipeline = Pipeline({Direction.INBOUND: [inbound_stage], Direction.OUTBOUND: [outbound_stage]})
    env = Envelope("alice@example.com", ("partner@example.org",))
    verdict = await pipeline.scan(msg, env, Policy(), organisation=ORG, direction=Direction.OUTBOUND)
    assert verdict.direction is Direction.OUTBOUND
    assert outbound_stage.seen == ["out"]
    assert inbound_stage.seen == []


async def test_allow_list_skips_the_spam_stage(make_message) -> None:
    msg = make_message()
    pipeline = Pipeline({Direction.INBOUND: [Allow(), Scores(("BAD", 20.0))]})
    verdict = await pipeline.scan(msg, inbound(msg), Policy(), organisation=ORG)
    assert verdict.scl == -1
    assert verdict.category is Category.CLEAN
    assert verdict.stages[1].outcome is StageOutcome.SKIPPED


@pytest.mark.parametrize(
    ("score", "scl", "category", "action"),
    [
        (0.0, 0, Category.CLEAN, Action.DELIVER),
        (4.99, 1, Category.CLEAN, Action.DELIVER),
        (5.0, 5, Category.SPAM, Action.JUNK),
        (9.99, 6, Category.SPAM, Action.JUNK),
        (10.0, 8, Category.HIGH_CONFIDENCE_SPAM, Action.JUNK),
        (15.0, 9, Category.HIGH_CONFIDENCE_SPAM, Action.JUNK),
    ],
)
async def test_score_to_scl_and_action(make_message, score: float, scl: int, category: Category, action: Action):
    msg = make_message()
    verdict = await Pipeline({Direction.INBOUND: [Scores(("X", score))]}).scan(
        msg, inbound(msg), Policy(), organisation=ORG
    )
    assert (verdict.scl, verdict.category, verdict.disposition.action) == (scl, category, action)


async def test_malware_outranks_everything_and_is_quarantined(make_message) -> None:
    msg = make_message()
    stage = Scores(("MALWARE_EICAR", 100.0), ("BULK_HEADER", 9.0))
    verdict = await Pipeline({Direction.INBOUND: [stage]}).scan(msg, inbound(msg), Policy(), organisation=ORG)
    assert verdict.category is Category.MALWARE
    assert verdict.malware == ("MALWARE_EICAR",)
    assert verdict.disposition.action is Action.QUARANTINE


async def test_bulk_at_the_policy_threshold(make_message) -> None:
    msg = make_message()
    stage = Scores(("BULK_LIST_UNSUBSCRIBE", 7.0))
    verdict = await Pipeline({Direction.INBOUND: [stage]}).scan(msg, inbound(msg), Policy(), organisation=ORG)
    assert (verdict.bcl, verdict.category) == (7, Category.BULK)
    strict = Policy.model_validate({"spam": {"bcl_threshold": 8}})
    verdict = await Pipeline({Direction.INBOUND: [stage]}).scan(msg, inbound(msg), strict, organisation=ORG)
    assert verdict.category is Category.CLEAN


async def test_policy_actions_shape_the_disposition(make_message) -> None:
    msg = make_message()
    policy = Policy.model_validate(
        {
            "spam": {
                "actions": {"spam": "prepend_subject", "high_confidence_spam": "add_header"},
                "subject_prefix": "[S] ",
            }
        }
    )
    spam = await Pipeline({Direction.INBOUND: [Scores(("X", 5.0))]}).scan(msg, inbound(msg), policy, organisation=ORG)
    assert spam.disposition.action is Action.PREPEND_SUBJECT
    assert spam.disposition.subject_prefix == "[S] "
    hcs = await Pipeline({Direction.INBOUND: [Scores(("X", 12.0))]}).scan(msg, inbound(msg), policy, organisation=ORG)
    assert hcs.disposition.header == ("X-This-Is-Spam", "This message appears to be spam.")
    assert hcs.disposition.applied is False  # the pipeline only decides; enforce/ applies


def test_unknown_or_duplicate_stage_names_stop_start_up(tmp_path: Path) -> None:
    services = StageServices(resolver=DnsResolver(), data_dir=tmp_path)
    factories = {"spam": lambda _services: Scores()}
    with pytest.raises(PipelineConfigError, match="unknown stage 'malwre'"):
        resolve(["malwre"], services, factories)
    with pytest.raises(PipelineConfigError, match="appears twice"):
        resolve(["spam", "spam"], services, factories)
    assert [s.name for s in resolve(["spam"], services, factories)] == ["spam"]


class Block:
    name: ClassVar[str] = "connection"

    async def inspect(self, ctx: ScanContext) -> list[Finding]:
        ctx.reject = "550 5.7.1 Service unavailable; client host [198.51.100.7] blocked using IP block list"
        return [Finding(self.name, "IP_BLOCKLIST", detail="198.51.100.7")]


async def test_a_connection_block_stops_filtering_and_rejects(make_message) -> None:
    msg = make_message()
    recorder = Recorder()
    pipeline = Pipeline({Direction.INBOUND: [Block(), recorder]})
    verdict = await pipeline.scan(msg, inbound(msg), Policy(), organisation=ORG)
    assert verdict.category is Category.BLOCKED
    assert verdict.disposition.action is Action.REJECT
    assert verdict.disposition.smtp_reply and "IP block list" in verdict.disposition.smtp_reply
    assert recorder.seen == []


class Infected:
    name: ClassVar[str] = "malware"

    def __init__(self, *, unreplaceable: bool = False) -> None:
        self.unreplaceable = unreplaceable

    async def inspect(self, ctx: ScanContext) -> list[Finding]:
        ctx.facts.infected_attachments = ("invoice.exe",)
        ctx.facts.malware_unreplaceable = self.unreplaceable
        return [Finding(self.name, "MALWARE_YARA", 100.0, "YARA:EICAR in invoice.exe")]


async def test_replace_attachments_names_the_infected_files(make_message) -> None:
    msg = make_message()
    policy = Policy.model_validate({"malware": {"action": "replace_attachments", "alert_text": "Removed."}})
    verdict = await Pipeline({Direction.INBOUND: [Infected()]}).scan(msg, inbound(msg), policy, organisation=ORG)
    assert verdict.disposition.action is Action.REPLACE_ATTACHMENTS
    assert verdict.disposition.replace_attachments == ("invoice.exe",)
    assert verdict.disposition.alert_text == "Removed."
    # malware that is not a named attachment cannot be cut out: the whole message is quarantined
    verdict = await Pipeline({Direction.INBOUND: [Infected(unreplaceable=True)]}).scan(
        msg, inbound(msg), policy, organisation=ORG
    )
    assert verdict.disposition.action is Action.QUARANTINE
