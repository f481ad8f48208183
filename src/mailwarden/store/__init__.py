"""The store: database (SQLite or PostgreSQL), migrations, message history, policies, blobs."""

from mailwarden.store.blobs import BlobStore, LocalBlobStore
from mailwarden.store.db import Database
from mailwarden.store.history import (
    EventRecord,
    EventType,
    History,
    HistoryQuery,
    HistoryQueryError,
    MessageDetail,
    MessageRecord,
    MessageSummary,
    Page,
    RecipientRecord,
    RecipientStatus,
)
from mailwarden.store.policies import PolicyStore

__all__ = [
    "BlobStore",
    "Database",
    "EventRecord",
    "EventType",
    "History",
    "HistoryQuery",
    "HistoryQueryError",
    "LocalBlobStore",
    "MessageDetail",
    "MessageRecord",
    "MessageSummary",
    "Page",
    "PolicyStore",
    "RecipientRecord",
    "RecipientStatus",
]
