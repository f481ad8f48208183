"""The store: every table and query — database (SQLite or PostgreSQL), migrations, history, policies,
quarantine, accounts, reports, audit, token statistics, blobs (docs/store.md)."""

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
