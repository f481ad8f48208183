"""What a stage may be given at start-up: its own typed config section and the shared clients.

Stages never open sockets or files on their own initiative; what they need is passed in here, so tests
and offline scans can hand them a loopback DNS server or a temporary directory instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mailwarden.dns import Resolver
from mailwarden.errors import ConfigError
from mailwarden.model.tokens import TokenStore

SectionT = TypeVar("SectionT", bound=BaseModel)


@dataclass
class StageServices:
    resolver: Resolver
    data_dir: Path
    stage_config: dict[str, dict[str, Any]] = field(default_factory=dict)  # `[stages.<name>]` as read
    # opens the classifier's token statistics where `[stages.spam] statistics` says (built by the wiring
    # layer); None offline: the shipped model in memory
    token_store: Callable[[], TokenStore] | None = None

    def config_for(self, name: str, model: type[SectionT]) -> SectionT:
        """The stage's `[stages.<name>]` section validated by its own model; errors name the field."""
        try:
            return model.model_validate(self.stage_config.get(name, {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(["stages", name, *(str(p) for p in first["loc"])])
            raise ConfigError(first["msg"], field=where) from None
