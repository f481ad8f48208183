"""The delivery agent's events in message history: a trace row each, and the recipient's new status.

A job can finish before the batch that made it reaches history (a job released at start-up, say); its
events wait here until the writer says the message is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib

from mailwarden.deliver import DeliveryEventType
from mailwarden.errors import NotFoundError
from mailwarden.model.trace import EventRecord, EventType, RecipientStatus
from mailwarden.store import History

_DELIVERY_EVENTS = {
    DeliveryEventType.DELIVER: (EventType.DELIVER, RecipientStatus.DELIVERED),
    DeliveryEventType.DEFER: (EventType.DEFER, RecipientStatus.DEFERRED),
    DeliveryEventType.FAIL: (EventType.FAIL, RecipientStatus.FAILED),
    DeliveryEventType.DSN: (EventType.DSN, None),
}


class DeliveryTrace:
    """Writes delivery events into history, keeping early ones until their message is recorded."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._early: dict[str, list[tuple[EventRecord, str | None, RecipientStatus | None]]] = {}

    async def on_event(self, message_id: str, kind: DeliveryEventType, recipient: str, detail: str, reply: str) -> None:
        """The delivery agent's report: a trace event and the recipient's new status."""
        event_type, status = _DELIVERY_EVENTS[kind]
        event = EventRecord(event_type, detail, recipient=recipient or None, smtp_reply=reply or None)
        try:
            await asyncio.to_thread(self._store_event, message_id, event, recipient or None, status)
        except NotFoundError:
            # the job ran before its batch reached history: keep the event for `recorded`, and look
            # again in case the batch landed while this event was on its way
            self._early.setdefault(message_id, []).append((event, recipient or None, status))
            if await asyncio.to_thread(self.history.exists, message_id):
                await self.recorded(message_id)

    def _store_event(
        self, message_id: str, event: EventRecord, recipient: str | None, status: RecipientStatus | None
    ) -> None:
        self.history.add_event(message_id, event)
        if recipient and status is not None:
            with contextlib.suppress(NotFoundError):  # a DSN recipient is not one of the message's
                self.history.set_recipient_status(message_id, recipient, status)

    async def recorded(self, message_id: str) -> None:
        for event, recipient, status in self._early.pop(message_id, []):
            await asyncio.to_thread(self._store_event, message_id, event, recipient, status)
