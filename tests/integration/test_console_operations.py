"""The operations page in a real browser against a real `mailwarden serve`: a message to a next hop that
answers 451 waits in the delivery queue as deferred, with the reply, in the browser's time zone; the
administrator retries it from the page and the next hop (accepting now) gets it at once, not an hour later.

Screenshot `operations.png` as in test_console.py (SCREENSHOTS_DIR, else the test's directory).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailwarden.model.accounts import Role
from mailwarden.service.accounts import Accounts
from mailwarden.store.audit import AuditLog
from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation, wait_for_port
from tests.integration.test_console import PASSWORD, _sync_playwright, chromium
from tests.integration.test_serve import send, simple

pytestmark = pytest.mark.integration

SUBJECT = "Quarterly figures for the board"
WAIT = 60.0


def test_an_admin_retries_a_deferred_job_from_the_operations_page(tmp_path: Path) -> None:
    _sync_playwright()  # skips (or fails under CI) before anything starts when there is no browser
    sink = Sink(temporary_failures=1)  # 451 once, then accepts
    sink.controller.start()
    dns = DnsServer().start()
    api_port = free_port()
    url = f"http://127.0.0.1:{api_port}"
    mw = Mailwarden(tmp_path, dns_port=dns.port)
    mw.listeners = {"inbound": free_port()}
    mw.extra_config = f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n[console]\npublic_url = "{url}"\n'
    mw.write_config()
    # a deferred job waits an hour: only "Retry now" delivers it within the test
    config = mw.config_path.read_text().replace("first_retry = 0.3\nmax_retry = 1\n", "first_retry = 3600\n")
    mw.config_path.write_text(config.replace("[processing]\n", "[processing]\nscan_processes = 0\n"))
    domain = {"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}
    mw.import_organisation(organisation(monitor_only=False, domains=[domain]))
    rt = mw.runtime()
    try:
        Accounts(rt.db).add_user("admin", role=Role.ADMIN, email="admin@example.com", password=PASSWORD, actor="t")
    finally:
        rt.close()
    mw.start()
    try:
        wait_for_port(api_port)
        send(mw.listeners["inbound"], "partner@example.org", ["alice@example.com"], simple(SUBJECT))
        eventually(lambda: sink.attempts >= 1, timeout=WAIT)
        with chromium(tmp_path) as (browser, screenshots):
            context = browser.new_context(
                locale="en-GB", timezone_id="Asia/Tokyo", viewport={"width": 1360, "height": 900}
            )
            page = context.new_page()
            violations: list[str] = []
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(url + "/login")
            page.fill("input[name=name]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit].primary")
            page.wait_for_url(url + "/")

            def deferred_row() -> bool:
                page.goto(url + "/operations")
                return "deferred" in page.locator("#queue").inner_text()

            eventually(deferred_row, timeout=WAIT)
            queue = page.locator("#queue").inner_text()
            assert "alice@example.com" in queue and "451" in queue and "Try again later" in queue
            assert "JST" in queue and "UTC" not in queue  # the browser's zone, taken by console.js at sign-in
            assert "Times: Asia/Tokyo" in page.locator("header").inner_text()
            page.screenshot(path=str(screenshots / "operations.png"), full_page=True)

            page.locator("#queue button.retry").first.click()
            page.wait_for_load_state()
            assert "will be tried again now" in page.locator("p.flash").inner_text()
            eventually(lambda: len(sink.received) == 1, timeout=30)  # at once, not after the hour's back-off
            page.goto(url + "/operations")
            assert "The delivery queue is empty." in page.locator("#queue").inner_text()
            assert violations == []
            context.close()
    finally:
        if mw.process is not None:
            mw.stop()
        sink.controller.stop()
        dns.stop()
    rt = mw.runtime()
    try:
        [entry] = [e for e in AuditLog(rt.db).newest() if e["action"] == "queue.retry"]
        assert entry["actor"] == "admin" and entry["before"]["recipients"] == ["alice@example.com"]
    finally:
        rt.close()
    assert sink.received[0][1] == ["alice@example.com"]
