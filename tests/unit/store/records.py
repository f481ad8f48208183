"""Message records built in code, so each test says what it is about."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mailwarden.ids import new_id
from mailwarden.model import Action, Category, Direction, Disposition, Mode, Verdict
from mailwarden.model.trace import MessageRecord, RecipientRecord

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

MakeRecord = Callable[..., MessageRecord]


def build_record(
    *,
    at: datetime = T0,
    minutes: float = 0,
    sender: str = "alice@sender.example",
    recipients: tuple[str, ...] = ("bob@corp.example",),
    subject: str = "Quarterly report",
    category: Category = Category.CLEAN,
    action: Action = Action.DELIVER,
    direction: Direction = Direction.INBOUND,
    organisation: str | None = "corp",
    internet_message_id: str | None = None,
    mode: Mode = Mode.ENFORCE,
    scl: int = 1,
    **extra: Any,
) -> MessageRecord:
    received = at + timedelta(minutes=minutes)
    verdict = Verdict(direction=direction, category=category, disposition=Disposition(action), scl=scl)
    return MessageRecord(
        id=new_id(received),
        organisation=organisation,
        received_at=received,
        direction=direction,
        mode=mode,
        source=extra.pop("source", "smtp"),
        sender=sender,
        from_address=extra.pop("from_address", sender or None),
        subject=subject,
        internet_message_id=internet_message_id,
        size=extra.pop("size", 2048),
        sha256=extra.pop("sha256", "ab" * 32),
        client_ip=extra.pop("client_ip", "192.0.2.10"),
        verdict=verdict,
        applied=mode is Mode.ENFORCE,
        recipients=[RecipientRecord(r, field="to") for r in recipients],
        **extra,
    )
