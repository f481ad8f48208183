"""One wiring module: config → database, stores, pipeline. Commands and the server start here."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property

from mailwarden.config import Config
from mailwarden.dns import DnsResolver
from mailwarden.errors import NotFoundError
from mailwarden.model import Direction, Envelope, Message, Organisation, Policy
from mailwarden.model.envelope import normalise_address
from mailwarden.pipeline import Pipeline
from mailwarden.pipeline.registry import DEFAULT_ORDER
from mailwarden.pipeline.services import StageServices
from mailwarden.store import Database, History, LocalBlobStore, PolicyStore


class Runtime:
    """Everything a command needs, built lazily from one validated config."""

    def __init__(self, config: Config) -> None:
        self.config = config

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
            database=self.db,
        )

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


def offline_envelope(message: Message, *, at: datetime | None = None) -> Envelope:
    """An envelope for a message read from a file: Return-Path or From as sender, To and Cc as recipients."""
    sender = message.return_path or message.from_address or ""
    rcpts = [normalise_address(a) for a in (*message.to_addresses, *message.cc_addresses)]
    return Envelope(
        mail_from=normalise_address(sender),
        rcpt_to=tuple(dict.fromkeys(rcpts)),
        received_at=at or datetime.now(UTC),
    )
