"""Delivery in enforce mode: the persistent queue, the SMTP relay to the next hop, retries and DSNs."""

from mailwarden.deliver.agent import DeliveryAgent, DeliveryEventType, JobInFlightError, OnEvent
from mailwarden.deliver.config import DeliveryConfig
from mailwarden.deliver.dsn import RecipientFailure, build_dsn
from mailwarden.deliver.queue import (
    DeliveryJob,
    DeliveryQueue,
    JobKind,
    QueuedJob,
    Route,
    list_queued,
    parse_next_hop,
    read_queued,
)
from mailwarden.deliver.relay import DeliveryResult, MxLookupError, Outcome, RecipientResult, Relay, resolve_mx

__all__ = [
    "DeliveryAgent",
    "DeliveryConfig",
    "DeliveryEventType",
    "DeliveryJob",
    "DeliveryQueue",
    "DeliveryResult",
    "JobInFlightError",
    "JobKind",
    "MxLookupError",
    "OnEvent",
    "Outcome",
    "QueuedJob",
    "RecipientFailure",
    "RecipientResult",
    "Relay",
    "Route",
    "build_dsn",
    "list_queued",
    "parse_next_hop",
    "read_queued",
    "resolve_mx",
]
