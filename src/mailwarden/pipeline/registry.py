"""Stages by name, and the declared order they run in per direction."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mailwarden.errors import PipelineConfigError
from mailwarden.model import Direction
from mailwarden.pipeline.stage import Stage

StageFactory = Callable[[], Stage]

# The product's filter order (docs/architecture.md). A stage is listed here once its module exists;
# internal mail runs no stage at all.
DEFAULT_ORDER: dict[Direction, tuple[str, ...]] = {
    Direction.INBOUND: (),
    Direction.OUTBOUND: (),
}

_FACTORIES: dict[str, StageFactory] = {}


def register(name: str, factory: StageFactory) -> None:
    """Make a stage available by name (called by the stage's package, not at import time of others)."""
    if name in _FACTORIES and _FACTORIES[name] is not factory:
        raise PipelineConfigError(f"stage {name!r} is registered twice")
    _FACTORIES[name] = factory


def available() -> list[str]:
    return sorted(_FACTORIES)


def resolve(names: Sequence[str], factories: dict[str, StageFactory] | None = None) -> list[Stage]:
    """Build the stages named, in order; an unknown or repeated name stops start-up."""
    table = _FACTORIES if factories is None else factories
    seen: set[str] = set()
    stages = []
    for name in names:
        if name in seen:
            raise PipelineConfigError(f"stage {name!r} appears twice in the pipeline order")
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            raise PipelineConfigError(f"unknown stage {name!r} in the pipeline order (known: {known})")
        seen.add(name)
        stages.append(table[name]())
    return stages
