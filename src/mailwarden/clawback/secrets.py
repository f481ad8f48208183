"""Connector secrets sealed at rest: Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key
from the config or the environment (`[clawback] key` / MAILWARDEN_CLAWBACK__KEY) or, by default, a key file
in the data directory made on first use with mode 0600.

Old keys can stay listed so a key change needs no flag day: sealing uses the first key, opening tries all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import BaseModel, SecretStr

from mailwarden.errors import ConfigError


class SecretBox:
    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ConfigError("no clawback key", field="clawback.key")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError):
            raise ConfigError(
                "a clawback key is not a Fernet key (32 url-safe base64 bytes; make one with "
                "`mailwarden connector new-key`)",
                field="clawback.key",
            ) from None

    def seal(self, secret: Mapping[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(dict(secret), sort_keys=True).encode()).decode("ascii")

    def open(self, sealed: str) -> dict[str, Any]:
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode("ascii")))
        except (InvalidToken, ValueError):
            raise ConfigError(
                "a stored connector secret cannot be opened with the configured clawback key (was the key "
                "changed? list the old key after the new one in clawback.key)",
                field="clawback.key",
            ) from None
        if not isinstance(data, dict):
            raise ConfigError("a stored connector secret is not an object", field="clawback.key")
        return data


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


def load_keys(configured: str | None, key_file: Path) -> list[str]:
    """The keys: `configured` (comma-separated, newest first) when given, else the key file, made now
    (0600, written whole before it is visible) when it does not exist."""
    if configured:
        return [k.strip() for k in configured.split(",") if k.strip()]
    try:
        return [key_file.read_text(encoding="ascii").strip()]
    except FileNotFoundError:
        pass
    key_file.parent.mkdir(parents=True, exist_ok=True)
    partial = key_file.with_name(key_file.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(new_key() + "\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(partial, key_file)  # another process that made one first wins; both then read the same
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)
    return [key_file.read_text(encoding="ascii").strip()]


def reveal(model: BaseModel) -> dict[str, Any]:
    """A secret model as plain JSON values (SecretStr opened), for sealing."""

    def plain(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return {name: plain(getattr(model, name)) for name in type(model).model_fields if getattr(model, name) is not None}
