"""Stages by name, and the declared order they run in per direction.

Built-in stages are named here by import path and loaded when a pipeline is built, so importing this
module has no side effects and an unknown or duplicate name stops start-up with a clear error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence

from mailwarden.errors import PipelineConfigError
from mailwarden.model import Direction
from mailwarden.pipeline.services import StageServices
from mailwarden.pipeline.stage import Stage

StageFactory = Callable[[StageServices], Stage]

# name → "module:Class"; the class has `from_services(services) -> Stage`.
BUILTIN_STAGES: dict[str, str] = {
    "connection": "mailwarden.pipeline.connection:ConnectionFilter",
    "auth": "mailwarden.pipeline.auth:AuthenticationStage",
    "malware": "mailwarden.pipeline.malware.stage:MalwareFilter",
    "rules": "mailwarden.pipeline.rules.stage:TransportRules",
    "spam": "mailwarden.pipeline.spam.stage:SpamFilter",
}

# The product's filter order (docs/architecture.md). A stage is listed once its module exists;
# internal mail runs no stage at all.
# Authentication runs after the connection filter (it needs the sending IP that stage found, and a
# blocked IP ends filtering first) and before rules, so rules can match on its results.
DEFAULT_ORDER: dict[Direction, tuple[str, ...]] = {
    Direction.INBOUND: ("connection", "auth", "malware", "rules", "spam"),
    Direction.OUTBOUND: ("malware", "rules", "spam"),
}


def available() -> list[str]:
    return sorted(BUILTIN_STAGES)


def _builtin(name: str) -> StageFactory | None:
    target = BUILTIN_STAGES.get(name)
    if target is None:
        return None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    factory: StageFactory = cls.from_services
    return factory


def resolve_check(names: Sequence[str]) -> None:
    """Refuse an order list that names a stage twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PipelineConfigError(f"stage {name!r} appears twice in the pipeline order")
        seen.add(name)


def resolve(
    names: Sequence[str],
    services: StageServices | None = None,
    factories: Mapping[str, StageFactory] | None = None,
) -> list[Stage]:
    """Build the stages named, in order; an unknown or repeated name stops start-up."""
    seen: set[str] = set()
    stages = []
    for name in names:
        if name in seen:
            raise PipelineConfigError(f"stage {name!r} appears twice in the pipeline order")
        factory = factories.get(name) if factories is not None else _builtin(name)
        if factory is None:
            known = ", ".join(sorted(factories if factories is not None else BUILTIN_STAGES)) or "none"
            raise PipelineConfigError(f"unknown stage {name!r} in the pipeline order (known: {known})")
        if services is None:
            raise PipelineConfigError(f"stage {name!r} needs services to be built")
        seen.add(name)
        stages.append(factory(services))
    return stages
