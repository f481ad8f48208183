"""Scheduled report e-mails: due once per ended day or week, in the organisation's language, with the
tables attached as CSV, and never repeated or skipped across a restart."""

from __future__ import annotations

import csv
import email
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from mailwarden.model import Category
from mailwarden.model.policy import ReportFrequency, parse_organisation_document
from mailwarden.service.config import Config
from mailwarden.service.report_mail import CATCH_UP, ReportMailer, due_periods
from mailwarden.service.runtime import Runtime
from mailwarden.store.connections import BlockReason, ConnectionStats
from tests.unit.quarantine.world import Dispatched
from tests.unit.store.records import build_record

MONDAY = date(2026, 12, 7)
DAILY, WEEKLY = ReportFrequency.DAILY, ReportFrequency.WEEKLY


def test_a_period_is_due_once_it_has_ended_and_only_once() -> None:
    assert due_periods(DAILY, None, MONDAY) == [(date(2026, 12, 6), date(2026, 12, 6))]
    assert due_periods(DAILY, date(2026, 12, 6), MONDAY) == []  # already mailed
    assert due_periods(DAILY, date(2026, 12, 4), MONDAY) == [
        (date(2026, 12, 5), date(2026, 12, 5)),
        (date(2026, 12, 6), date(2026, 12, 6)),
    ]  # the server was down two days: both are sent, oldest first
    assert due_periods(WEEKLY, None, MONDAY) == [(date(2026, 11, 30), date(2026, 12, 6))]
    assert due_periods(WEEKLY, date(2026, 12, 6), MONDAY + timedelta(days=6)) == []  # Sunday: the week runs on
    assert due_periods(WEEKLY, date(2026, 12, 6), MONDAY + timedelta(days=7)) == [(MONDAY, date(2026, 12, 13))]
    assert len(due_periods(DAILY, date(2025, 1, 1), MONDAY)) == CATCH_UP


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(Config.model_validate({"paths": {"data_dir": str(tmp_path)}}))
    runtime.db.migrate()
    for name, language, every in (("corp", "ja", "daily"), ("other", "en", "weekly"), ("quiet", "en", "daily")):
        recipients = [] if name == "quiet" else [f"soc@{name}.example"]
        runtime.policies.import_document(
            parse_organisation_document(
                {
                    "name": name,
                    "domains": [{"name": f"{name}.example"}],
                    "policy": {"reports": {"recipients": recipients, "every": every, "language": language}},
                }
            ),
            actor="test",
        )
    yield runtime
    runtime.close()


def attachments(mail: EmailMessage) -> dict[str, list[list[str]]]:
    out = {}
    for part in mail.iter_attachments():
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes) and data.startswith(b"\xef\xbb\xbf")
        out[str(part.get_filename())] = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    return out


def test_each_organisation_gets_its_report_in_its_language_once_across_a_restart(rt: Runtime) -> None:
    yesterday = datetime(2026, 12, 6, 10, tzinfo=UTC)
    rt.history.record(build_record(at=yesterday, category=Category.MALWARE, sender="x@bad.example"))
    rt.history.record(build_record(at=yesterday, minutes=1, category=Category.CLEAN))
    ConnectionStats(rt.db).count_blocked("corp", "198.51.100.7", BlockReason.IP_BLOCK_LIST, yesterday, count=4)
    dispatched = Dispatched()
    now = datetime(2026, 12, 7, 0, 5, tzinfo=UTC)

    assert ReportMailer(rt, dispatched).send_due(now) == 2  # corp's day, other's week; quiet has no recipients

    by_recipient = {rcpts: (message_id, mail_from, raw) for message_id, mail_from, rcpts, raw in dispatched.calls}
    message_id, mail_from, raw = by_recipient[("soc@corp.example",)]
    assert message_id.startswith("alert-") and mail_from == ""
    mail = email.message_from_bytes(raw, policy=default)
    assert isinstance(mail, EmailMessage)
    assert mail["Subject"] == "mailwarden レポート (corp): 2026-12-06 – 2026-12-06"
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "メッセージ数: 2" in text and "接続フィルターが拒否した接続: 4" in text
    assert "マルウェア: 1" in text and "x@bad.example: 1" in text
    tables = attachments(mail)
    assert ["2026-12-06", "2", "1", "1"] in tables["report-corp-2026-12-06-2026-12-06-categories.csv"]
    assert tables["report-corp-2026-12-06-2026-12-06-refused_ips.csv"][1] == ["198.51.100.7", "IP ブロック リスト", "4"]

    other = email.message_from_bytes(by_recipient[("soc@other.example",)][2], policy=default)
    assert other["Subject"] == "mailwarden report for other: 2026-11-30 – 2026-12-06"

    assert ReportMailer(rt, dispatched).send_due(now + timedelta(hours=5)) == 0  # a restart repeats nothing
    assert ReportMailer(rt, dispatched).send_due(now + timedelta(days=2)) == 2  # corp: 7 and 8 December
    assert [c[2] for c in dispatched.calls[2:]] == [("soc@corp.example",)] * 2
