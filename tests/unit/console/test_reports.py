"""The dashboard's aggregates over a SQLite history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailwarden.console.reports import build_dashboard
from mailwarden.ids import new_id
from mailwarden.model import Action, Category, Direction, Disposition, Mode, Verdict
from mailwarden.model.trace import MessageRecord, RecipientRecord
from mailwarden.store import Database, History

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'mw.sqlite3'}")
    database.migrate()
    yield database
    database.close()


def record(
    history: History,
    at: datetime,
    category: Category,
    *,
    sender: str = "a@x.example",
    to: str = "bob@corp.example",
    applied: bool = True,
    organisation: str = "corp",
    dlp: tuple[dict[str, Any], ...] = (),
) -> None:
    verdict = Verdict(
        direction=Direction.INBOUND, category=category, disposition=Disposition(Action.DELIVER), dlp_matches=dlp
    )
    history.record(
        MessageRecord(
            id=new_id(at),
            organisation=organisation,
            received_at=at,
            direction=Direction.INBOUND,
            mode=Mode.ENFORCE if applied else Mode.MONITOR,
            source="smtp",
            sender=sender,
            from_address=None,
            subject="s",
            internet_message_id=None,
            size=10,
            sha256="ab" * 32,
            client_ip=None,
            verdict=verdict,
            applied=applied,
            recipients=[RecipientRecord(to)],
        )
    )


def test_counts_by_utc_day_verdict_sender_recipient_mode_and_dlp_type(db: Database) -> None:
    history = History(db)
    yesterday_late = NOW.replace(hour=23, minute=59) - timedelta(days=1)
    record(history, yesterday_late, Category.CLEAN)
    record(history, NOW, Category.CLEAN, to="carol@corp.example")
    record(history, NOW, Category.SPAM, sender="s@spam.example")
    record(history, NOW, Category.SPAM, sender="s@spam.example", applied=False)
    record(history, NOW, Category.MALWARE, sender="m@bad.example")
    card = {"type": "credit_card", "count": 2, "confidence": "high"}
    record(history, NOW, Category.RULE, dlp=(card, {"type": "iban", "count": 1, "confidence": "medium"}))
    record(history, NOW, Category.CLEAN, dlp=(card,))
    record(history, NOW - timedelta(days=30), Category.MALWARE)  # outside the window
    record(history, NOW, Category.MALWARE, organisation="other")

    board = build_dashboard(db, days=7, organisation="corp", now=NOW)
    assert board.days[-1] == "2026-11-20" and board.days[0] == "2026-11-14"
    assert board.by_verdict["clean"][-2:] == [1, 2]
    assert board.by_verdict["spam"][-1] == 2 and board.by_verdict["malware"][-1] == 1
    assert board.total == 7
    assert board.top_spam_senders == [("s@spam.example", 2)]
    assert board.top_malware_senders == [("m@bad.example", 1)]
    assert board.top_recipients[0] == ("bob@corp.example", 6)
    assert board.dlp_hits == [("credit_card", 2), ("iban", 1)]
    assert board.modes == {"monitor": 1, "enforce": 6}
    assert build_dashboard(db, days=7, now=NOW).total == 8  # no organisation: everyone's
