"""Outbound protection end to end, with a real Postfix as the organisation's server relaying everything out
through mailwarden's outbound listener: a burst of spam from one account leaves through the high-risk pool
(a second sink), the account is restricted at its hourly limit, Postfix's next attempt for it is refused at
MAIL FROM with 550 5.1.8, an administrator releases it in the console (a real browser), and it sends again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mailwarden.model.accounts import Role
from mailwarden.service.accounts import Accounts
from mailwarden.service.restricted import REFRESH_SECONDS
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, wait_for_port
from tests.integration.postfix import private_postfix
from tests.integration.test_console import CHROMIUM, PASSWORD, _sync_playwright
from tests.integration.test_postfix_journal import OUTBOUND_MAIN_CF, mw, swaks, tools  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration
BOB, PARTNER, SPAM_WORD = "bob@example.com", "partner@example.org", "JACKPOT"


@pytest.fixture
def sinks() -> Iterator[tuple[Sink, Sink]]:
    internet, risky = Sink(), Sink()
    internet.controller.start()
    risky.controller.start()
    yield internet, risky
    internet.controller.stop()
    risky.controller.stop()


def release_in_the_console(url: str) -> None:
    from playwright.sync_api import expect

    playwright = _sync_playwright()().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_context(locale="en-GB").new_page()
        page.goto(url + "/login")
        page.fill("input[name=name]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit].primary")
        page.wait_for_url(url + "/")
        page.goto(url + "/senders")
        row = page.locator(f"tr[data-sender='{BOB}']")
        expect(row).to_contain_text("external recipients in an hour (limit 3)")
        row.locator("button[type=submit]").click()
        expect(page.locator(f"tr[data-sender='{BOB}']")).to_have_count(0)
        browser.close()
    finally:
        playwright.stop()


def test_spam_burst_high_risk_pool_restriction_refusal_release(
    tools: tuple[str, str],  # noqa: F811
    mw: Mailwarden,  # noqa: F811
    sinks: tuple[Sink, Sink],
) -> None:
    postfix_bin, swaks_bin = tools
    internet, risky = sinks
    postfix_port, api_port = free_port(), free_port()
    url = f"http://127.0.0.1:{api_port}"
    mw.listeners = {"outbound": free_port()}
    mw.extra_config = f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n[console]\npublic_url = "{url}"\n'
    mw.write_config(outbound_networks=("127.0.0.0/8",), smart_host=f"127.0.0.1:{internet.port}")
    config = mw.config_path.read_text().replace(
        f'pools = {{ default = "127.0.0.1:{internet.port}" }}',
        f'pools = {{ default = "127.0.0.1:{internet.port}", high_risk = "127.0.0.1:{risky.port}" }}',
    )
    mw.config_path.write_text(config)
    spammy = {"name": "Spammy", "conditions": {"subject_contains": [SPAM_WORD]}, "actions": {"set_scl": 6}}
    mw.import_organisation({
        "name": "acme", "monitor_only": False,
        "domains": [{"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{postfix_port}"}],
        "policy": {"rules": [spammy], "outbound_spam": {"external_per_hour": 3, "action_at_limit": "block_user"}},
    })  # fmt: skip
    rt = mw.runtime()
    try:
        Accounts(rt.db).add_user("admin", role=Role.ADMIN, email="admin@example.com", password=PASSWORD, actor="test")
    finally:
        rt.close()
    mw.start()
    wait_for_port(api_port)
    main_cf = OUTBOUND_MAIN_CF.replace("{outbound_port}", str(mw.listeners["outbound"]))
    with private_postfix(postfix_bin, main_cf, port=postfix_port) as postfix:

        def send(subject: str) -> None:
            swaks(swaks_bin, postfix.port, "--from", BOB, "--to", PARTNER, "--header", f"Subject: {subject}")

        for i in range(4):  # the fourth is one over the limit of three external recipients an hour
            send(f"{SPAM_WORD} number {i}")
        eventually(lambda: len(risky.received) == 4, timeout=60)
        assert internet.received == []  # all of it left through the high-risk pool
        assert all(b";DI:SO" in content for _, _, content in risky.received)

        # the restriction follows the fourth record; every outbound listener applies it within REFRESH_SECONDS
        eventually(lambda: BOB in mw.cli("sender", "list").stdout, timeout=30)
        time.sleep(REFRESH_SECONDS + 0.5)
        send("Quarterly figures")  # Postfix hands it over; mailwarden refuses the restricted sender
        eventually(lambda: "5.1.8" in postfix.log(), timeout=60)
        assert internet.received == []

        release_in_the_console(url)
        send("Quarterly figures, again")
        eventually(lambda: any(b"Quarterly figures, again" in c for _, _, c in internet.received), timeout=60)
    audit = [(e["action"], e["actor"]) for e in mw.runtime().audit.newest(limit=20)]
    assert ("sender.restrict", "policy") in audit and ("sender.release", "admin") in audit
