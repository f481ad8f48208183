"""The store: database (SQLite or PostgreSQL), migrations, message history, policies, blobs."""

from mailwarden.store.blobs import BlobStore, LocalBlobStore
from mailwarden.store.db import Database
from mailwarden.store.history import History
from mailwarden.store.history_search import (
    HistoryQuery,
    HistoryQueryError,
    MessageDetail,
    MessageSummary,
    Page,
)
from mailwarden.store.policies import PolicyStore

__all__ = [
    "BlobStore",
    "Database",
    "History",
    "HistoryQuery",
    "HistoryQueryError",
    "LocalBlobStore",
    "MessageDetail",
    "MessageSummary",
    "Page",
    "PolicyStore",
]
