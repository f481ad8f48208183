"""Scheduled report e-mails: each organisation's `policy.reports` mails its period report to its recipients.

A daily report covers the previous UTC day, a weekly one the previous Monday–Sunday (UTC); each is sent
once its period has ended. The end of the last period mailed is remembered per organisation in
`<data_dir>/report-mail.json` (replaced atomically after each mail is queued), so a restart neither
repeats a report nor skips one: periods missed while the server was down are sent when it is back (at
most `CATCH_UP` of them; older ones are left out with a logged line). The first round of a new schedule
mails the last period that has ended.

The mail goes through the delivery queue like the administrators' alerts: from the postmaster, the
summary as text in the schedule's language, every table of the report attached as CSV.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

import structlog

from mailwarden.enforce.notify import ALERT_MESSAGE_PREFIX
from mailwarden.errors import NotFoundError
from mailwarden.i18n import words
from mailwarden.ids import new_id
from mailwarden.model.policy import ReportFrequency, ReportSchedule
from mailwarden.quarantine.service import ReleaseDispatcher
from mailwarden.service.period_report import (
    PeriodReport,
    Table,
    build_report,
    cells,
    labels_for,
    to_csv,
)
from mailwarden.service.runtime import Runtime
from mailwarden.store.db import unavailable

log = structlog.get_logger(__name__)

ROUND_SECONDS = 300.0
CATCH_UP = 14
SUMMARY_TOP = 5


def due_periods(every: ReportFrequency, last_end: date | None, today: date) -> list[tuple[date, date]]:
    """The periods to mail now, oldest first: those that have ended (before `today`) after `last_end`;
    only the newest when nothing was mailed yet; at most CATCH_UP."""
    if every is ReportFrequency.DAILY:
        newest_end = today - timedelta(days=1)
        length = 1
    else:
        newest_end = today - timedelta(days=today.weekday() + 1)  # the Sunday before this week
        length = 7
    periods = []
    end = newest_end
    while last_end is None or end > last_end:
        periods.append((end - timedelta(days=length - 1), end))
        if last_end is None or len(periods) >= CATCH_UP:
            break
        end -= timedelta(days=length)
    return periods[::-1]


def summary_text(report: PeriodReport, language: str) -> str:
    """The report's summary as the mail's text."""
    labels = labels_for(language)

    span = {"org": report.organisation or words("report_mail.all", language), "start": report.start, "end": report.end}
    lines = [words("report_mail.intro", language, **span), ""]
    lines.append(words("report_mail.messages", language, count=report.messages))
    lines.append(words("report_mail.refused", language, count=report.refused))
    totals = report.tables["totals"]
    groups = (
        ("category", words("report_mail.categories", language)),
        ("action", words("report_mail.actions", language)),
        ("direction", words("report_mail.directions", language)),
    )
    for group, heading in groups:
        rows = [row for row in totals.rows if row[0] == group]
        if rows:
            lines += ["", heading]
            lines += [f"  {_row_text(totals, row, labels, skip=1)}" for row in rows]
    tops = (
        ("top_senders", words("report_mail.top_senders", language)),
        ("top_sender_domains", words("report_mail.top_sender_domains", language)),
        ("refused_ips", words("report_mail.refused_ips", language)),
    )
    for name, heading in tops:
        table = report.tables[name]
        if table.rows:
            lines += ["", heading]
            lines += [f"  {_row_text(table, row, labels)}" for row in table.rows[:SUMMARY_TOP]]
    lines += ["", words("report_mail.attached", language)]
    return "\n".join(lines) + "\n"


def _row_text(table: Table, row: list[str | int], labels: Callable[[str], str], skip: int = 0) -> str:
    *names, count = cells(table, row, labels)[skip:]
    return f"{' / '.join(map(str, names))}: {count}"


def report_mail(report: PeriodReport, schedule: ReportSchedule, hostname: str, at: datetime) -> bytes:
    """The report e-mail: summary text, each table a CSV attachment named after the organisation and days."""
    language = schedule.language
    labels = labels_for(language)
    mail = EmailMessage(policy=SMTP)
    mail["From"] = f"mailwarden <postmaster@{hostname}>"
    mail["To"] = ", ".join(schedule.recipients)
    org = report.organisation or words("report_mail.all", language)
    mail["Subject"] = words("report_mail.subject", language, org=org, start=report.start, end=report.end)
    mail["Date"] = format_datetime(at)
    mail["Message-ID"] = make_msgid(domain=hostname)
    mail["Auto-Submitted"] = "auto-generated"
    text = summary_text(report, language)
    mail.set_content(text, cte=None if text.isascii() else "base64")
    stem = f"report-{report.organisation or 'all'}-{report.start}-{report.end}"
    for name, table in report.tables.items():
        mail.add_attachment(to_csv(table, labels), maintype="text", subtype="csv", filename=f"{stem}-{name}.csv")
    return mail.as_bytes()


class ReportMailer:
    """The server's round of scheduled report e-mails."""

    def __init__(self, rt: Runtime, dispatcher: ReleaseDispatcher, *, state: Path | None = None) -> None:
        self.rt = rt
        self.dispatcher = dispatcher
        self.state = state or rt.config.paths.data_dir / "report-mail.json"
        self._task: asyncio.Task[None] | None = None

    def send_due(self, now: datetime | None = None) -> int:
        """Mail every report that is due; how many mails were queued."""
        now = now or datetime.now(UTC)
        sent_until = self._load()
        queued = 0
        for org in self.rt.policies.list_organisations():
            try:
                schedule = self.rt.policies.get_policy(org.name).reports
            except NotFoundError:
                continue
            if not schedule.recipients:
                continue
            last = sent_until.get(org.name)
            periods = due_periods(schedule.every, date.fromisoformat(last) if last else None, now.date())
            if last and len(periods) == CATCH_UP:
                log.warning("report_mail_catching_up", organisation=org.name, periods=CATCH_UP)
            for start, end in periods:
                report = build_report(self.rt.db, start, end, organisation=org.name)
                raw = report_mail(report, schedule, self.rt.config.delivery.ehlo_hostname(), now)
                self.dispatcher(ALERT_MESSAGE_PREFIX + new_id(now), "", list(schedule.recipients), raw)
                sent_until[org.name] = end.isoformat()
                self._save(sent_until)
                queued += 1
                log.info("report_mail_queued", organisation=org.name, start=str(start), end=str(end))
        return queued

    async def start(self) -> None:
        self._task = asyncio.create_task(self._rounds(), name="report-mail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _rounds(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.send_due)
            except Exception as exc:  # retried at the next round; the server keeps running
                reason = unavailable(exc)
                if reason is not None:
                    log.error("report_mail_waiting", error=reason)
                else:
                    log.exception("report_mail_failed")
            await asyncio.sleep(ROUND_SECONDS)

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.state.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save(self, sent_until: dict[str, str]) -> None:
        temp = self.state.with_suffix(".tmp")
        temp.write_text(json.dumps(sent_until, sort_keys=True))
        temp.replace(self.state)


__all__ = ["ReportMailer", "due_periods", "report_mail", "summary_text"]
