"""Counters of `mailwarden serve`, exposed for Prometheus at `/metrics` on the API port.

One registry per process; the server process owns the spool, the history writer and delivery, so what
they count is what an administrator wants to alert on (a message given up on, a database that is away).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

PROCESSED = Counter(
    "mailwarden_messages_processed", "Spool entries processed and recorded in history", registry=REGISTRY
)
PROCESSING_FAILURES = Counter(
    "mailwarden_processing_failures",
    "Attempts to process a spool entry that failed (each is tried again after a pause)",
    registry=REGISTRY,
)
GIVEN_UP = Counter(
    "mailwarden_processing_given_up",
    "Messages given up on after repeated failures: recorded with the error (and held in quarantine in enforce mode)",
    registry=REGISTRY,
)
UNRECORDED = Gauge(
    "mailwarden_spool_unrecorded",
    "Given-up messages that could not even be recorded: they wait in the spool for the next start",
    registry=REGISTRY,
)
DATABASE_UNAVAILABLE = Counter(
    "mailwarden_database_unavailable",
    "Times the history writer found the database unreachable and waited",
    registry=REGISTRY,
)
SPOOL_BACKLOG = Gauge(
    "mailwarden_spool_backlog", "Messages acknowledged with 250 and not yet recorded", registry=REGISTRY
)


def exposition() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(REGISTRY)
