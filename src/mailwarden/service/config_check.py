"""`mailwarden config check`: everything a configuration points at, checked at once and reported in
plain words, before `serve` is started with it (docs/operations.md).

Each check is ok, a warning (works, but probably not as meant) or a failure (`serve` would not start or
would not work); every check runs, so one run lists every problem.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from enum import StrEnum

from mailwarden.deliver.config import HIGH_RISK_POOL
from mailwarden.errors import ConfigError
from mailwarden.model.listener import ListenerRole
from mailwarden.service.config import SEARCH_PATH, Config
from mailwarden.service.runtime import Runtime, prepare_data_dir
from mailwarden.store.db import head_revision

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8025"


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def check(config: Config) -> list[Check]:
    out = [_file(config), _data_dir(config)]
    if out[-1].status is not Status.FAILED:
        out.append(_database(config))
    out += _tls(config)
    out += _listeners(config)
    out.append(_public_url(config))
    return out


def _file(config: Config) -> Check:
    if config.source is not None:
        return Check("config file", Status.OK, str(config.source.resolve()))
    looked = ", ".join(str(p) for p in SEARCH_PATH)
    return Check("config file", Status.WARNING, f"none found (looked in {looked}); the built-in defaults apply")


def _data_dir(config: Config) -> Check:
    """Checked without creating anything: a missing directory is fine when it can be created."""
    path = config.paths.data_dir
    if not path.exists():
        parent = next(p for p in path.parents if p.exists())
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            return Check("data directory", Status.OK, f"{path} (created by `mailwarden init` or `serve`)")
        return Check(
            "data directory", Status.FAILED, f"paths.data_dir: cannot create {path} ({parent} is not writable)"
        )
    try:
        prepare_data_dir(path)
    except ConfigError as exc:
        return Check("data directory", Status.FAILED, str(exc))
    return Check("data directory", Status.OK, str(path))


def _database(config: Config) -> Check:
    embedded = config.paths.data_dir / "mailwarden.sqlite3"
    if not config.store.url and not embedded.exists():
        return Check("database", Status.WARNING, f"{embedded} not created yet: `mailwarden init` makes it")
    try:
        rt = Runtime.started(config)
    except ConfigError as exc:
        return Check("database", Status.FAILED, str(exc))
    try:
        current, head = rt.db.current_revision(), head_revision()
    finally:
        rt.close()
    if current == head:
        return Check("database", Status.OK, f"schema at revision {head}")
    have = "empty" if current is None else f"at revision {current}"
    return Check("database", Status.WARNING, f"{have}, the code needs {head}: `mailwarden init` or `serve` migrates it")


def _tls(config: Config) -> list[Check]:
    smtp = config.smtp
    if smtp.tls_cert is None and smtp.tls_key is None:
        return [Check("TLS certificate", Status.WARNING, "none: listeners offer no STARTTLS")]
    for field, path in (("smtp.tls_cert", smtp.tls_cert), ("smtp.tls_key", smtp.tls_key)):
        if path is not None and not path.is_file():
            return [Check("TLS certificate", Status.FAILED, f"{field}: {path}: no such file")]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(smtp.tls_cert), str(smtp.tls_key) if smtp.tls_key else None)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return [Check("TLS certificate", Status.FAILED, f"smtp.tls_cert / smtp.tls_key: {reason}")]
    return [Check("TLS certificate", Status.OK, str(smtp.tls_cert))]


def _listeners(config: Config) -> list[Check]:
    listeners = config.smtp.listeners
    if not listeners:
        return [Check("listeners", Status.WARNING, "none: `serve` takes no mail ([[smtp.listeners]])")]
    out = []
    for listener in listeners:
        where = f"{listener.host}:{listener.port} ({listener.role.value})"
        out.append(Check(f"listener {listener.name}", Status.OK, where))
    roles = {listener.role for listener in listeners}
    if ListenerRole.OUTBOUND in roles and HIGH_RISK_POOL not in config.delivery.pools:
        detail = "outbound spam leaves through the default pool: add high_risk to [delivery] pools (docs/outbound.md)"
        out.append(Check("high-risk pool", Status.WARNING, detail))
    return out


def _public_url(config: Config) -> Check:
    url = config.console.public_url
    if url == DEFAULT_PUBLIC_URL:
        detail = f"{url} (the default): quarantine digests wait until it is the address users reach"
        return Check("console public_url", Status.WARNING, detail)
    return Check("console public_url", Status.OK, url)
