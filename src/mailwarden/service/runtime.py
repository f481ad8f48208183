"""One wiring module: config → database, stores, pipeline. Commands and the server start here."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from mailwarden.dns import DnsResolver
from mailwarden.errors import ConfigError, NotFoundError
from mailwarden.model import Direction, Envelope, Message, Organisation, Policy
from mailwarden.model.envelope import normalise_address
from mailwarden.model.tokens import TokenStore
from mailwarden.pipeline import Pipeline
from mailwarden.pipeline.registry import DEFAULT_ORDER
from mailwarden.pipeline.services import StageServices
from mailwarden.service.config import Config
from mailwarden.store import Database, History, LocalBlobStore, PolicyStore
from mailwarden.store.audit import AuditLog
from mailwarden.store.tokens import RedisTokenStore, SqlTokenStore, has_token_table

log = structlog.get_logger(__name__)


class Runtime:
    """Everything a command needs, built lazily from one validated config."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @classmethod
    def started(cls, config: Config) -> Runtime:
        """A runtime for a command or the server, once what the config points at has been checked.

        The data directory (created when missing) and the database must be usable; each failure is a
        ConfigError naming the field, so a command ends with one line instead of a traceback.
        """
        prepare_data_dir(config.paths.data_dir)
        rt = cls(config)
        try:
            rt._check_store()
        except BaseException:
            rt.close()
            raise
        return rt

    def _check_store(self) -> None:
        field = "store.url" if self.config.store.url else "paths.data_dir"
        shown = _shown(self.config.database_url)
        try:
            with self.db.engine.connect():
                pass
        except ArgumentError as exc:  # not a URL, or no driver for it
            raise ConfigError(f"{shown} is not a usable database URL: {exc}", field=field) from None
        except DBAPIError as exc:
            raise ConfigError(f"cannot connect to {shown}: {_first_line(exc.orig or exc)}", field=field) from None
        except OSError as exc:  # SQLite's directory
            raise ConfigError(f"cannot create the database {shown}: {exc.strerror or exc}", field=field) from None

    @cached_property
    def db(self) -> Database:
        return Database(self.config.database_url, echo=self.config.store.echo)

    @cached_property
    def history(self) -> History:
        return History(self.db)

    @cached_property
    def policies(self) -> PolicyStore:
        return PolicyStore(self.db)

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.db)

    @cached_property
    def blobs(self) -> LocalBlobStore:
        return LocalBlobStore(self.config.paths.blob_dir)

    @cached_property
    def pipeline(self) -> Pipeline:
        cfg = self.config.pipeline
        order = {
            Direction.INBOUND: cfg.inbound if cfg.inbound is not None else DEFAULT_ORDER[Direction.INBOUND],
            Direction.OUTBOUND: cfg.outbound if cfg.outbound is not None else DEFAULT_ORDER[Direction.OUTBOUND],
        }
        return Pipeline.from_order(order, self.stage_services, stage_timeout=cfg.stage_timeout_seconds)

    @cached_property
    def resolver(self) -> DnsResolver:
        return DnsResolver(self.config.dns)

    @cached_property
    def stage_services(self) -> StageServices:
        return StageServices(
            resolver=self.resolver,
            data_dir=self.config.paths.data_dir,
            stage_config=self.config.stages,
            token_store=self.open_token_store,
        )

    def open_token_store(self) -> TokenStore:
        """The classifier's token statistics where `[stages.spam] statistics` says: Redis, or the product
        database once it holds them. A database never initialised gives the shipped model in memory, so
        `scan` works before `mailwarden init` (commands that learn migrate first)."""
        # the stage's module is loaded here, as the pipeline loads it: only when it is used
        from mailwarden.pipeline.spam.stage import STAGE, SpamConfig
        from mailwarden.pipeline.spam.statstore import MemoryTokenStore

        spam = self.stage_services.config_for(STAGE, SpamConfig)
        if spam.statistics == "redis":
            return RedisTokenStore.from_url(spam.redis_url, prefix=spam.redis_prefix)
        if not has_token_table(self.db):
            log.info("token_statistics_in_memory", reason="the database is not initialised")
            return MemoryTokenStore()
        return SqlTokenStore(self.db)

    def is_initialised(self) -> bool:
        return self.db.current_revision() is not None

    def organisation_and_policy(self, name: str | None = None) -> tuple[Organisation | None, Policy]:
        """The named (or configured) organisation and its policy; defaults when the store is empty."""
        name = name or self.config.organisation
        if not self.is_initialised():
            return None, Policy()
        try:
            return self.policies.get_organisation(name), self.policies.get_policy(name)
        except NotFoundError:
            if name != self.config.organisation:
                raise
            return None, Policy()

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()


def prepare_data_dir(path: Path) -> None:
    """Create the data directory when it is missing; a ConfigError when it is not, or cannot be, one."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} exists and is not a directory", field="paths.data_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror or exc}", field="paths.data_dir") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{path} is not writable", field="paths.data_dir")


def _shown(url: str) -> str:
    """The URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def offline_envelope(message: Message, *, at: datetime | None = None) -> Envelope:
    """An envelope for a message read from a file: Return-Path or From as sender, To and Cc as recipients."""
    sender = message.return_path or message.from_address or ""
    rcpts = [normalise_address(a) for a in (*message.to_addresses, *message.cc_addresses)]
    return Envelope(
        mail_from=normalise_address(sender),
        rcpt_to=tuple(dict.fromkeys(rcpts)),
        received_at=at or datetime.now(UTC),
    )
