"""Run the ordered stages over one message and hand the evidence to `decide`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import structlog

from mailwarden.errors import DependencyUnavailable
from mailwarden.model import (
    Direction,
    Envelope,
    Message,
    Organisation,
    Policy,
    StageOutcome,
    StageResult,
    Verdict,
)
from mailwarden.pipeline import registry
from mailwarden.pipeline.decide import decide, internal_verdict
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.services import StageServices
from mailwarden.pipeline.stage import Inspection, ScanContext, Stage, is_spam_filter

log = structlog.get_logger(__name__)


class Pipeline:
    """The stage lists per direction. Build it once at start-up, use it for every message."""

    def __init__(self, stages: Mapping[Direction, Sequence[Stage]], *, stage_timeout: float = 30.0) -> None:
        self.stages = {d: tuple(stages.get(d, ())) for d in (Direction.INBOUND, Direction.OUTBOUND)}
        self.stage_timeout = stage_timeout

    @classmethod
    def from_order(
        cls,
        order: Mapping[Direction, Sequence[str]],
        services: StageServices,
        *,
        stage_timeout: float = 30.0,
    ) -> Pipeline:
        for names in order.values():
            registry.resolve_check(names)
        # a stage named in both directions is built once (the malware filter compiles its rules once)
        distinct = list(dict.fromkeys(name for names in order.values() for name in names))
        built = dict(zip(distinct, registry.resolve(distinct, services), strict=True))
        return cls({d: [built[n] for n in names] for d, names in order.items()}, stage_timeout=stage_timeout)

    async def close(self) -> None:
        """Release what stages hold (engine connections, thread pools); each stage once."""
        seen: set[int] = set()
        for stages in self.stages.values():
            for stage in stages:
                close = getattr(stage, "close", None)
                if close is not None and id(stage) not in seen:
                    seen.add(id(stage))
                    await close()

    def order(self) -> dict[Direction, list[str]]:
        return {d: [s.name for s in stages] for d, stages in self.stages.items()}

    async def scan(
        self,
        message: Message,
        envelope: Envelope,
        policy: Policy,
        *,
        organisation: Organisation | None = None,
        direction: Direction | None = None,
        facts: ScanFacts | None = None,
    ) -> Verdict:
        """Run the direction's stages (inbound unless the caller has evidence for another: a sender in
        the organisation's domains is none). `facts` seeds what stages share (a journal copy, say)."""
        if direction is None:
            # nothing here shows that the organisation sent it (model/direction.py): an offline scan
            direction = Direction.INBOUND
        if direction is Direction.INTERNAL:
            return internal_verdict()
        ctx = ScanContext(message, envelope, direction, policy, organisation, facts=facts or ScanFacts())
        for stage in self.stages[direction]:
            if ctx.reject:
                break  # refused at connection level (IP block list): no further filtering, as EOP does
            if ctx.bypass_spam and is_spam_filter(stage):
                ctx.results.append(StageResult(stage.name, StageOutcome.SKIPPED, error=None))
                continue
            ctx.results.append(await self._run(stage, ctx))
        return decide(
            direction,
            ctx.results,
            policy,
            bypass_spam=ctx.bypass_spam,
            reject=ctx.reject,
            facts=ctx.facts,
        )

    async def _run(self, stage: Stage, ctx: ScanContext) -> StageResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.stage_timeout):  # no task per stage, unlike wait_for
                answer = await stage.inspect(ctx)
        except TimeoutError:
            return self._failed(stage, started, f"timed out after {self.stage_timeout:g} s")
        except DependencyUnavailable:
            raise  # not the message's doing: the whole scan waits and is tried again
        except Exception as exc:  # a stage's bug must never lose the message
            return self._failed(stage, started, f"{type(exc).__name__}: {exc}")
        elapsed = (time.perf_counter() - started) * 1000
        if isinstance(answer, Inspection):
            error = answer.reason if answer.outcome is StageOutcome.ERROR else None
            return StageResult(stage.name, answer.outcome, answer.findings, elapsed, error)
        outcome = StageOutcome.DETECTED if any(f.score > 0 for f in answer) else StageOutcome.CLEAN
        return StageResult(stage.name, outcome, tuple(answer), elapsed)

    @staticmethod
    def _failed(stage: Stage, started: float, error: str) -> StageResult:
        log.warning("stage_failed", stage=stage.name, error=error)
        elapsed = (time.perf_counter() - started) * 1000
        return StageResult(stage.name, StageOutcome.ERROR, (), elapsed, error)
