"""What a sink is: something that takes a batch of events and returns only once the other side has them.

A sink keeps no cursor and no retry clock of its own: the exporter (service layer) hands it batches in feed
order, advances the sink's cursor when `send` returns, and on `SinkError` tries the same batch again later.
So a sink is a small file of its own (Kafka would be one more).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from mailwarden.export.event import ExportEvent


class SinkError(Exception):
    """The batch was not acknowledged; nothing of it counts as delivered. The reason names the sink's
    peer and what went wrong, never a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class Sink(Protocol):
    name: str

    async def send(self, events: Sequence[ExportEvent]) -> None:
        """Deliver the batch, in order; return once the peer acknowledged all of it (JetStream ack, syslog
        TCP write + drain, webhook 2xx, file write + flush). Raise SinkError otherwise."""
        ...

    async def close(self) -> None: ...
