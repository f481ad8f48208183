"""Counters of `mailwarden serve`, exposed for Prometheus at `/metrics` on the API port.

One registry per process; the server process owns the spool, the history writer and delivery, so what
they count is what an administrator wants to alert on (a message given up on, a database that is away).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

MESSAGES = Counter(
    "mailwarden_messages",
    "Messages recorded, by direction, mode, verdict category and action (taken, or that would have been)",
    ["direction", "mode", "verdict", "action"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "mailwarden_stage_seconds",
    "Time a pipeline stage took on one message (observed when the message is recorded)",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
DELIVERY_QUEUE = Gauge("mailwarden_delivery_queue", "Delivery jobs waiting (due or deferred)", registry=REGISTRY)
EXPORT_SENT = Counter("mailwarden_export_events_sent", "Feed events a sink acknowledged", ["sink"], registry=REGISTRY)
EXPORT_FAILURES = Counter(
    "mailwarden_export_failures", "Batches a sink did not acknowledge (sent again later)", ["sink"], registry=REGISTRY
)
EXPORT_LAG = Gauge("mailwarden_export_lag", "Outbox rows a sink has not acknowledged yet", ["sink"], registry=REGISTRY)
OUTBOX_ROWS = Gauge("mailwarden_outbox_rows", "Rows in the event feed's outbox", registry=REGISTRY)
OUTBOX_DROPPED = Counter(
    "mailwarden_outbox_dropped",
    "Outbox rows dropped unsent because the backlog passed export.max_backlog (oldest first)",
    registry=REGISTRY,
)
CLAWBACK_ITEMS = Counter(
    "mailwarden_clawback_recipients", "Clawback recipients finished, by status", ["status"], registry=REGISTRY
)


def exposition() -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(REGISTRY)
