"""The connector kinds and how to build one from stored settings and an opened secret.

Each kind's module exports `KIND`, `Settings`, `Secret` and `connect(settings, secret)`; they are imported
when first asked for, so a deployment without Microsoft 365 never loads msal.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from mailwarden.clawback.connector import MailboxConnector
from mailwarden.errors import ConfigError

KINDS = ("graph", "gmail", "imap")


def _module(kind: str) -> ModuleType:
    if kind not in KINDS:
        raise ConfigError(f"unknown connector kind {kind!r} (one of {', '.join(KINDS)})", field="kind")
    return importlib.import_module(f"mailwarden.clawback.{kind}")


def _validated(model: type[BaseModel], data: dict[str, Any], what: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or what
        # the input value is never echoed: it may be a secret
        raise ConfigError(f"{what}.{where}: {first['msg']}", field=f"{what}.{where}") from None


def settings_of(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Validated, normalised settings as stored (JSON values)."""
    return _validated(_module(kind).Settings, data, "settings").model_dump(mode="json", exclude_none=True)


def secret_of(kind: str, data: dict[str, Any]) -> BaseModel:
    return _validated(_module(kind).Secret, data, "secret")


def build(kind: str, settings: dict[str, Any], secret: dict[str, Any]) -> MailboxConnector:
    module = _module(kind)
    connector = module.connect(
        _validated(module.Settings, settings, "settings"), _validated(module.Secret, secret, "secret")
    )
    return cast(MailboxConnector, connector)
