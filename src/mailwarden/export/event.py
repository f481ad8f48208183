"""One event of the feed as every sink sees it: the rendered OCSF body plus what filters and cursors need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ExportEvent:
    """`seq` orders the feed (the outbox row's id; several events of one row share it); `uid` is the
    event's `metadata.uid`, unique and the same every time the event is sent, so consumers de-duplicate."""

    seq: int
    uid: str
    class_uid: int  # OCSF class: 4009 Email Activity, 4011 Email File Activity, 4012 Email URL Activity, ...
    severity_id: int  # OCSF severity_id: 0 unknown, 1 informational, 2 low, 3 medium, 4 high, 5 critical, 6 fatal
    time: datetime
    body: dict[str, Any]  # the OCSF event, JSON-ready
