"""What `mailwarden serve` (enforce mode) writes for people to read, over real SMTP to a real sink:
malware alert texts and notifications in Japanese, and incident reports and records that never carry a
full card number or My Number, wherever in the message it stood."""

from __future__ import annotations

import email
import json
import smtplib
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from mailwarden.model.accounts import Role
from mailwarden.service.accounts import Accounts
from mailwarden.store import MessageDetail
from tests.dnsserver import DnsServer
from tests.factories import build_message
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation
from tests.unit.pipeline.malware.builders import EICAR

pytestmark = pytest.mark.integration

WAIT = 30.0
ALERT_JA = "添付ファイルを削除しました"
SUBJECT_JA = "請求書のご送付（10月分）"
FILENAME_JA = "請求書_10月.com"


@pytest.fixture
def site(tmp_path: Path, dns_server: DnsServer, sink: Sink) -> Iterator[Mailwarden]:
    mw = Mailwarden(tmp_path, dns_port=dns_server.port)
    mw.listeners = {"inbound": free_port()}
    mw.extra_config = f"[api]\nport = {free_port()}\n"  # read back by api_get
    mw.write_config()
    try:
        yield mw
    finally:
        if mw.process is not None:
            mw.kill()


def start(mw: Mailwarden, sink: Sink, policy: dict[str, Any]) -> None:
    document = organisation(
        monitor_only=False,
        domains=[{"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
    )
    document["policy"] = policy
    mw.import_organisation(document)
    mw.start()


def send(mw: Mailwarden, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", mw.listeners["inbound"], timeout=30) as client:
        assert client.sendmail("partner@example.org", ["alice@example.com"], raw) == {}


def to(sink: Sink, rcpt: str) -> list[EmailMessage]:
    return [email.message_from_bytes(raw, policy=default) for _, r, raw in sink.received if r == [rcpt]]  # type: ignore[misc]


def one(mw: Mailwarden) -> MessageDetail:
    def check() -> MessageDetail:
        (detail,) = mw.messages()
        return detail

    detail: MessageDetail = eventually(check, timeout=WAIT)
    return detail


def test_a_japanese_alert_text_replaces_the_infected_file_and_the_admin_is_told_in_japanese(
    site: Mailwarden, sink: Sink
) -> None:
    malware = {
        "action": "replace_attachments",
        "alert_text": ALERT_JA,
        "notify_admins": ["secops@example.com"],
        "notification_subject": "マルウェア検出: {subject}",
        "notification_text": "件名: {subject}\n検出: {malware}\n追跡ID: {message_id}\n",
    }
    start(site, sink, {"malware": malware})
    raw = build_message(
        subject=SUBJECT_JA,
        text="ご確認ください。\n",
        attachments=[(FILENAME_JA, "application/octet-stream", EICAR), ("memo.txt", "text/plain", b"fine")],
    )
    send(site, raw)

    (delivered,) = eventually(lambda: to(sink, "alice@example.com"), timeout=WAIT)
    files = {p.get_filename(): p for p in delivered.iter_attachments()}
    alert = files["Malware Alert Text.txt"]
    assert alert.get_content_charset() == "utf-8"
    assert alert.get_payload(decode=True).decode("utf-8").strip() == ALERT_JA
    assert FILENAME_JA not in files and files["memo.txt"].get_content() == "fine"
    assert EICAR not in sink.received[0][2]
    assert delivered["Subject"] == SUBJECT_JA

    (note,) = eventually(lambda: to(sink, "secops@example.com"), timeout=WAIT)
    assert note["Subject"] == f"マルウェア検出: {SUBJECT_JA}"
    detail = one(site)
    body = note.get_content()
    assert f"件名: {SUBJECT_JA}" in body and f"追跡ID: {detail.summary.id}" in body
    assert FILENAME_JA in body  # the detection names the file it was found in
    assert (detail.summary.action.value, detail.summary.subject) == ("replace_attachments", SUBJECT_JA)


CARD = "4111 1111 1111 1111"
MY_NUMBER = "1234 5678 9018"  # a valid check digit
CARD_SHOWN, MY_NUMBER_SHOWN = "4111 **** **** 1111", "**** **** **18"


def api_token(mw: Mailwarden) -> str:
    rt = mw.runtime()
    try:
        accounts = Accounts(rt.db)
        accounts.add_user("auditor", role=Role.ADMIN, actor="test")
        return accounts.create_token("auditor", name="test")[1]
    finally:
        rt.close()


def api_get(mw: Mailwarden, token: str, path: str) -> Any:
    port = tomllib.loads(mw.extra_config)["api"]["port"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def assert_masked(text: str) -> None:
    assert CARD_SHOWN in text and MY_NUMBER_SHOWN in text, text
    for full in (CARD, CARD.replace(" ", ""), MY_NUMBER, MY_NUMBER.replace(" ", "")):
        assert full not in text, text


def test_a_card_number_and_my_number_in_the_subject_are_stored_shown_and_reported_masked(
    site: Mailwarden, sink: Sink
) -> None:
    rule = {
        "name": "Cards",
        "conditions": {"sensitive_info": [{"type": "credit_card"}]},
        "actions": {"quarantine": True, "incident_report_to": ["secops@example.com"]},
    }
    start(site, sink, {"rules": [rule]})
    subject = f"Card {CARD} / マイナンバー {MY_NUMBER} 確認"
    send(site, build_message(subject=subject, text="Please check the subject.\n"))

    (report,) = eventually(lambda: to(sink, "secops@example.com"), timeout=WAIT)
    detail = one(site)
    assert_masked(detail.summary.subject)
    assert_masked(report["Subject"])
    assert_masked(report.get_content())
    assert to(sink, "alice@example.com") == []  # quarantined

    token = api_token(site)
    shown = api_get(site, token, f"/messages/{detail.summary.id}")
    assert_masked(json.dumps(shown, ensure_ascii=False))
    (entry,) = api_get(site, token, f"/quarantine?message_id={detail.summary.id}")["items"]
    assert entry["reason"] == "dlp"
    assert_masked(entry["subject"])
    trace = subprocess.run(
        [sys.executable, "-m", "mailwarden", "trace", "--id", detail.summary.id, "--config", str(site.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert_masked(trace)
