"""Outbound protection: the sending limits' recipient counters (docs/outbound.md, issue 15)."""

from mailwarden.outbound.counters import MemoryCounter, RecipientCounter, RedisCounter, SqlCounter, Usage

__all__ = ["MemoryCounter", "RecipientCounter", "RedisCounter", "SqlCounter", "Usage"]
