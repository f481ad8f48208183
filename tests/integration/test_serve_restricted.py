"""Restricted senders through `mailwarden serve`: refused at MAIL FROM on the outbound listener with
550 5.1.8 within seconds of `mailwarden sender restrict`, and sending again once released; a restriction in
a monitor-mode organisation is only recorded and never refuses."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from tests.integration.harness import Mailwarden, Sink, eventually, free_port

pytestmark = pytest.mark.integration


def mail_from(mw: Mailwarden, sender: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", mw.listeners["outbound"], timeout=30) as client:
        client.ehlo("mail.acme.example")
        return client.mail(sender)


def test_a_restricted_sender_is_refused_at_mail_from_until_released(mw: Mailwarden, sink: Sink, tmp_path: Path) -> None:
    mw.listeners = {"outbound": free_port()}
    mw.write_config(smart_host=f"127.0.0.1:{sink.port}")
    mw.import_organisation(
        {
            "name": "acme",
            "monitor_only": False,
            "domains": [{"name": "acme.example", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
        }
    )
    mw.import_organisation(  # a second organisation, monitor only
        {
            "name": "watch",
            "monitor_only": True,
            "domains": [{"name": "watch.example", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
        }
    )
    mw.start()
    assert mail_from(mw, "bob@acme.example")[0] == 250
    mw.cli(
        "sender",
        "restrict",
        "acme",
        "bob@acme.example",
        "--reason",
        "sent 600 external recipients in an hour",
        "--by",
        "root",
    )
    _, text = eventually(lambda: (r := mail_from(mw, "bob@acme.example"))[0] == 550 and r, timeout=10)
    assert b"5.1.8" in text and b"bob@acme.example" in text
    assert mail_from(mw, "carol@acme.example")[0] == 250  # only that sender
    listed = mw.cli("sender", "list").stdout
    assert "bob@acme.example" in listed and "600 external recipients" in listed
    mw.cli("sender", "release", "acme", "bob@acme.example", "--by", "root")
    eventually(lambda: mail_from(mw, "bob@acme.example")[0] == 250, timeout=10)
    mw.cli("sender", "restrict", "watch", "eve@watch.example", "--by", "root")
    # monitor mode: the restriction is seen (the log says so) and never refuses
    eventually(
        lambda: mail_from(mw, "eve@watch.example")[0] == 250 and "outbound_sender_would_be_restricted" in mw.log(),
        timeout=10,
    )
    audit = [(e["action"], e["actor"]) for e in mw.runtime().audit.newest(limit=20)]
    assert ("sender.restrict", "root") in audit and ("sender.release", "root") in audit


def send_out(mw: Mailwarden, sender: str, rcpt: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", mw.listeners["outbound"], timeout=30) as client:
        client.sendmail(sender, [rcpt], f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nhello\r\n".encode())


def test_a_sender_over_the_hourly_limit_is_restricted_for_today(mw: Mailwarden, sink: Sink) -> None:
    mw.listeners = {"outbound": free_port()}
    mw.write_config(smart_host=f"127.0.0.1:{sink.port}")
    mw.import_organisation(
        {
            "name": "acme",
            "monitor_only": False,
            "domains": [{"name": "acme.example", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
            "policy": {
                "outbound_spam": {
                    "external_per_hour": 3,
                    "action_at_limit": "block_user_for_today",
                    "notify_admins": ["secops@acme.example"],
                }
            },
        }
    )
    mw.start()
    for i in range(3):  # exactly at the limit: still sending
        send_out(mw, "bob@acme.example", f"partner{i}@else.example", f"order {i}")
    eventually(lambda: len(mw.messages()) == 3, timeout=30)
    assert mail_from(mw, "bob@acme.example")[0] == 250
    send_out(mw, "bob@acme.example", "partner3@else.example", "order 3")  # one over
    _, text = eventually(lambda: (r := mail_from(mw, "bob@acme.example"))[0] == 550 and r, timeout=20)
    assert b"5.1.8" in text
    listed = mw.cli("sender", "list").stdout
    assert "4 external recipients in an hour (limit 3)" in listed
    alert = eventually(
        lambda: [c for _, r, c in sink.received if r == ["secops@acme.example"]], timeout=20
    )  # the administrators are told by mail
    assert b"Subject: Sender restricted from sending: bob@acme.example" in alert[0]
    mw.cli("sender", "release", "acme", "bob@acme.example", "--by", "root")
    eventually(lambda: mail_from(mw, "bob@acme.example")[0] == 250, timeout=10)


def test_an_admin_releases_a_restricted_sender_from_the_console(mw: Mailwarden, sink: Sink) -> None:
    from playwright.sync_api import expect

    from mailwarden.model.accounts import Role
    from mailwarden.service.accounts import Accounts
    from tests.integration.harness import wait_for_port
    from tests.integration.test_console import CHROMIUM, PASSWORD, _sync_playwright

    sync_playwright = _sync_playwright()
    api_port = free_port()
    mw.listeners = {"outbound": free_port()}
    mw.extra_config = (
        f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n[console]\npublic_url = "http://127.0.0.1:{api_port}"\n'
    )
    mw.write_config(smart_host=f"127.0.0.1:{sink.port}")
    mw.import_organisation(
        {
            "name": "acme",
            "monitor_only": False,
            "domains": [{"name": "acme.example", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
        }
    )
    rt = mw.runtime()
    try:
        Accounts(rt.db).add_user("admin", role=Role.ADMIN, email="admin@acme.example", password=PASSWORD, actor="test")
    finally:
        rt.close()
    mw.cli("sender", "restrict", "acme", "bob@acme.example", "--reason", "sent spam", "--by", "policy")
    mw.start()
    wait_for_port(api_port)
    eventually(lambda: mail_from(mw, "bob@acme.example")[0] == 550, timeout=10)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_context(locale="en-GB").new_page()
        page.goto(f"http://127.0.0.1:{api_port}/login")
        page.fill("input[name=name]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit].primary")
        page.wait_for_url(f"http://127.0.0.1:{api_port}/")
        page.click("nav >> text=Restricted senders")
        row = page.locator("tr[data-sender='bob@acme.example']")
        expect(row).to_contain_text("sent spam")
        row.locator("button[type=submit]").click()
        expect(page.locator("#senders [role=status]")).to_contain_text("bob@acme.example may send again")
        expect(page.locator("tr[data-sender='bob@acme.example']")).to_have_count(0)
        browser.close()
    finally:
        playwright.stop()
    eventually(lambda: mail_from(mw, "bob@acme.example")[0] == 250, timeout=10)
    assert ("sender.release", "admin") in [(e["action"], e["actor"]) for e in mw.runtime().audit.newest(limit=10)]
