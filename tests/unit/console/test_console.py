"""The console over a real SQLite store, through Starlette's test client: sign-in and its limits, CSRF,
role boundaries, security headers, the editors' inline errors, the language switch, digest links."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mailwarden.api.deps import SESSION_COOKIE
from mailwarden.console import mount_console
from mailwarden.console.security import PAGE_CSP
from mailwarden.console.web import Console
from mailwarden.model.accounts import Role
from mailwarden.model.policy import Policy, parse_organisation_document
from mailwarden.model.quarantine import Entry, Reason
from mailwarden.quarantine.digest import LinkAction
from mailwarden.service.accounts import Accounts
from mailwarden.service.config import load_config
from mailwarden.service.quarantine_jobs import digests_for, quarantine_for
from mailwarden.service.runtime import Runtime
from mailwarden.throttle import SignInThrottle
from tests.unit.quarantine.world import Dispatched, World

PASSWORD = "a long test password"


@dataclass
class Setup:
    rt: Runtime
    app: FastAPI
    world: World
    clock: list[float]  # the sign-in throttle's time, moved by the tests

    def client(self, *, language: str = "en", address: str = "testclient") -> TestClient:
        return TestClient(
            self.app, base_url="http://127.0.0.1", headers={"Accept-Language": language}, client=(address, 50000)
        )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    (tmp_path / "mw.toml").write_text('organisation = "corp"\n[paths]\ndata_dir = "var"\n')
    rt = Runtime(load_config(tmp_path / "mw.toml", environ={}))
    rt.db.migrate()
    rt.policies.import_document(parse_organisation_document({"name": "corp", "domains": [{"name": "corp.example"}]}))
    accounts = Accounts(rt.db, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    accounts.add_user("admin", role=Role.ADMIN, password=PASSWORD, actor="test")
    accounts.add_user("analyst", role=Role.ANALYST, password=PASSWORD, actor="test")
    accounts.add_user("bob", role=Role.USER, email="bob@corp.example", password=PASSWORD, actor="test")
    app = FastAPI()
    app.state.accounts = accounts
    clock = [1000.0]
    mount_console(app, rt, console=Console(rt, limiter=SignInThrottle(clock=lambda: clock[0])))
    world = World(rt.db, rt.history, rt.blobs, quarantine_for(rt), Dispatched(), {})
    yield Setup(rt, app, world, clock)
    rt.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def version_of(html: str) -> str:
    """The policy version an editor's page was made from (its save is refused once the policy moved on)."""
    found = re.search(r'name="version"(?: form="[^"]*")? value="(\d+)"', html)
    assert found, "no policy version in the page"
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> TestClient:
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf_token": token, "name": name, "password": password})
    assert response.status_code == 200, response.text  # followed the redirect to the landing page
    return client


# -- sign-in, cookies, headers -----------------------------------------------------------------


def test_pages_need_a_session_and_carry_the_strict_csp(setup: Setup) -> None:
    client = setup.client()
    response = client.get("/trace", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    login = client.get("/login")
    assert login.headers["content-security-policy"] == PAGE_CSP
    assert "frame-ancestors 'none'" in PAGE_CSP and "script-src 'self'" in PAGE_CSP
    # no inline script or handler in what the server renders
    assert not re.search(r"<script(?![^>]*\bsrc=)", login.text)
    assert not re.search(r"\son[a-z]+=", login.text)


def test_sign_in_sets_an_httponly_samesite_strict_session_cookie(setup: Setup) -> None:
    client = setup.client()
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"csrf_token": token, "name": "admin", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # the config's console URL is plain http on loopback
    assert client.get("/").status_code == 200


def test_secure_cookies_when_the_console_is_reached_over_https(tmp_path: Path, setup: Setup) -> None:
    (tmp_path / "https.toml").write_text('[console]\npublic_url = "https://console.corp.example"\n')
    rt = Runtime(load_config(tmp_path / "https.toml", environ={}))
    app = FastAPI()
    app.state.accounts = setup.app.state.accounts
    console = mount_console(app, rt)
    assert console.secure_cookies
    client = TestClient(app, base_url="https://console.corp.example")
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"csrf_token": token, "name": "admin", "password": PASSWORD}, follow_redirects=False
    )
    assert "Secure" in next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))


def test_a_post_without_the_csrf_token_is_refused(setup: Setup) -> None:
    client = setup.client()
    client.get("/login")
    response = client.post("/login", data={"name": "admin", "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.cookies
    signed_in = sign_in(setup.client(), "admin")
    before = setup.rt.policies.policy_version("corp")
    forged = signed_in.post("/lists", data={"csrf_token": "0" * 64, "blocked_senders": "x@evil.example"})
    assert forged.status_code == 403
    assert setup.rt.policies.policy_version("corp") == before


def test_the_csrf_token_of_one_browser_does_not_work_in_another(setup: Setup) -> None:
    first, second = setup.client(), setup.client()
    token = csrf_of(first.get("/login").text)
    second.get("/login")
    response = second.post("/login", data={"csrf_token": token, "name": "admin", "password": PASSWORD})
    assert response.status_code == 403


def attempt(client: TestClient, name: str, password: str) -> int:
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"csrf_token": token, "name": name, "password": password}, follow_redirects=False
    )
    return response.status_code


def test_wrong_passwords_from_another_address_never_lock_out_the_right_one(setup: Setup) -> None:
    attacker = setup.client(address="203.0.113.9")
    codes = [attempt(attacker, "admin", "wrong password!") for _ in range(10)]
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429] * 7
    assert attempt(setup.client(address="198.51.100.20"), "admin", PASSWORD) == 303


def test_an_address_that_keeps_failing_waits_longer_each_time_even_with_the_right_password(setup: Setup) -> None:
    client = setup.client(address="203.0.113.9")
    waits = []
    for failures in range(3, 7):
        assert [attempt(client, "admin", "wrong password!") for _ in range(3 if failures == 3 else 1)][-1] == 401
        token = csrf_of(client.get("/login").text)
        limited = client.post("/login", data={"csrf_token": token, "name": "admin", "password": PASSWORD})
        assert limited.status_code == 429 and "Too many failed sign-ins" in limited.text
        assert SESSION_COOKIE not in limited.cookies
        waits.append(int(limited.headers["Retry-After"]))
        setup.clock[0] += waits[-1]
    assert waits == [1, 2, 4, 8]
    assert attempt(client, "admin", PASSWORD) == 303  # once the wait is over, the right password works


def test_guesses_spread_over_many_addresses_get_one_try_each_and_the_owner_still_signs_in(setup: Setup) -> None:
    for host in range(1, 13):
        bot = setup.client(address=f"203.0.113.{host}")
        first, second = attempt(bot, "admin", f"guess {host}a"), attempt(bot, "admin", f"guess {host}b")
        assert first == 401
        # the first address's two guesses and the second's first use up the account's free failures
        assert second == (401 if host == 1 else 429), host
    setup.clock[0] += 60
    assert attempt(setup.client(address="203.0.113.5"), "admin", PASSWORD) == 429  # a guessing address waits
    assert attempt(setup.client(address="198.51.100.20"), "admin", PASSWORD) == 303  # the owner does not


def test_an_address_the_owner_signed_in_from_is_not_held_back_by_an_attack_on_the_account(setup: Setup) -> None:
    owner = setup.client(address="198.51.100.20")
    assert attempt(owner, "admin", PASSWORD) == 303
    for host in range(1, 8):
        attempt(setup.client(address=f"203.0.113.{host}"), "admin", "wrong password!")
    assert attempt(owner, "admin", "a typo in it") == 401
    assert attempt(owner, "admin", PASSWORD) == 303


# -- role boundaries ---------------------------------------------------------------------------


def test_an_analyst_reads_but_cannot_change_policy_or_users(setup: Setup) -> None:
    client = sign_in(setup.client(), "analyst")
    assert client.get("/policy").status_code == 200
    assert client.get("/users").status_code == 403
    page = client.get("/lists")
    assert "readonly" in page.text
    response = client.post("/lists", data={"csrf_token": csrf_of(page.text), "blocked_senders": "x@evil.example"})
    assert response.status_code == 403
    assert setup.rt.policies.get_policy("corp").lists.blocked_senders == ()


def test_a_user_sees_only_their_own_quarantine_and_no_trace(setup: Setup) -> None:
    (own,) = setup.world.quarantined(recipients=("bob@corp.example",), subject="For Bob")
    (other,) = setup.world.quarantined(recipients=("carol@corp.example",), subject="For Carol")
    client = sign_in(setup.client(), "bob")
    listing = client.get("/quarantine").text
    assert "For Bob" in listing and "For Carol" not in listing
    assert client.get("/trace").status_code == 403
    assert client.get(f"/quarantine/{other.id}").status_code == 404
    token = csrf_of(listing)
    response = client.post("/quarantine/bulk", data={"csrf_token": token, "single": f"release:{other.id}"})
    assert "refused" in response.text
    assert setup.world.quarantine.get(other.id).status.value == "held"
    assert setup.world.quarantine.get(own.id).status.value == "held"


def release_buttons(html: str, entry: Entry) -> int:
    return html.count(f'value="release:{entry.id}"')


def test_only_an_admin_gets_a_release_button_for_malware(setup: Setup) -> None:
    (malware,) = setup.world.quarantined(reason=Reason.MALWARE, subject="Invoice")
    (spam,) = setup.world.quarantined(reason=Reason.SPAM, subject="Cheap watches")
    analyst = sign_in(setup.client(), "analyst").get("/quarantine").text
    assert release_buttons(analyst, malware) == 0 and release_buttons(analyst, spam) == 1
    admin = sign_in(setup.client(), "admin").get("/quarantine").text
    assert release_buttons(admin, malware) == 1


def test_bulk_release_reports_what_it_did_and_what_it_refused(setup: Setup) -> None:
    (malware,) = setup.world.quarantined(reason=Reason.MALWARE, subject="Invoice")
    (spam,) = setup.world.quarantined(reason=Reason.SPAM, subject="Cheap watches")
    client = sign_in(setup.client(), "analyst")
    token = csrf_of(client.get("/quarantine").text)
    response = client.post(
        "/quarantine/bulk",
        data={"csrf_token": token, "action": "release", "ids": [spam.id, malware.id]},
        headers={"HX-Request": "true"},
    )
    assert "Release: 1 done." in response.text and f"{malware.id}: Your role may not do this." in response.text
    assert "<html" not in response.text  # htmx gets the table alone
    assert setup.world.quarantine.get(spam.id).status.value == "released"
    assert setup.world.quarantine.get(malware.id).status.value == "held"


def test_the_preview_document_is_sandboxed_and_scriptless(setup: Setup) -> None:
    raw = (
        b"From: a@bad.example\r\nTo: bob@corp.example\r\nSubject: Hi\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html\r\n\r\n<p>Hello</p><script>alert(1)</script><img src='https://t.example/p.gif'>\r\n"
    )
    (entry,) = setup.world.quarantined(raw=raw, subject="Hi")
    client = sign_in(setup.client(), "admin")
    page = client.get(f"/quarantine/{entry.id}").text
    assert (
        f'<iframe class="preview" sandbox="" referrerpolicy="no-referrer" src="/quarantine/{entry.id}/preview"' in page
    )
    preview = client.get(f"/quarantine/{entry.id}/preview")
    csp = preview.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "frame-ancestors 'self'" in csp
    assert "Hello" in preview.text and "<script" not in preview.text and "t.example" not in preview.text


# -- editors -----------------------------------------------------------------------------------


def test_a_bad_rule_is_named_inline_and_nothing_is_saved(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    page = client.get("/rules").text
    token = csrf_of(page)
    before = setup.rt.policies.policy_version("corp")
    bad = "- name: tag\n  conditions: {no_such_condition: 1}\n  actions: {}\n"
    response = client.post(
        "/rules",
        data={"csrf_token": token, "version": version_of(page), "document": bad, "intent": "save"},
        headers={"HX-Request": "true"},
    )
    assert 'role="alert"' in response.text and "rules.0" in response.text
    assert setup.rt.policies.policy_version("corp") == before
    broken = client.post("/rules", data={"csrf_token": token, "document": "- [", "intent": "check"})
    assert "not valid YAML" in broken.text


def test_an_admin_saves_the_block_list_and_it_is_audited(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    page = client.get("/lists").text
    token = csrf_of(page)
    response = client.post(
        "/lists", data={"csrf_token": token, "version": version_of(page), "blocked_senders": "Spam@Bad.Example\n\n"}
    )
    assert 'role="status"' in response.text
    assert setup.rt.policies.get_policy("corp").lists.blocked_senders == ("spam@bad.example",)
    audit = client.get("/audit").text
    assert "organisation.import" in audit and "admin" in audit
    invalid = client.post("/lists", data={"csrf_token": token, "version": version_of(response.text), "ip_block": "x"})
    assert "not an IP address or CIDR range" in invalid.text


@pytest.mark.parametrize("editor", ["/lists", "/rules", "/policy/yaml"])
def test_an_editor_opened_before_someone_elses_change_does_not_undo_it(setup: Setup, editor: str) -> None:
    """Two admins: the second saves a block list while the first still has an editor open; the first
    one's save would write back the whole policy without it, so it is refused and the text kept."""
    first, second = sign_in(setup.client(), "admin"), sign_in(setup.client(), "admin")
    stale_page = first.get(editor).text
    lists_page = second.get("/lists").text
    data = {"csrf_token": csrf_of(lists_page), "version": version_of(lists_page), "blocked_senders": "a@bad.example"}
    assert 'role="status"' in second.post("/lists", data=data).text
    form = {"csrf_token": csrf_of(stale_page), "version": version_of(stale_page), "intent": "save"}
    form |= {"blocked_senders": "b@bad.example"} if editor == "/lists" else {"document": _document_in(stale_page)}
    refused = first.post(editor, data=form)
    assert "changed by someone else" in refused.text and 'role="status"' not in refused.text
    assert setup.rt.policies.get_policy("corp").lists.blocked_senders == ("a@bad.example",)
    again = first.get(editor).text  # reopened: made from the current version, it saves
    form = {"csrf_token": csrf_of(again), "version": version_of(again), "intent": "save"}
    form |= (
        {"blocked_senders": "a@bad.example\nb@bad.example"} if editor == "/lists" else {"document": _document_in(again)}
    )
    assert 'role="status"' in first.post(editor, data=form).text


def _document_in(html: str) -> str:
    found = re.search(r'<textarea name="document"[^>]*>(.*?)</textarea>', html, re.S)
    assert found, "no document editor in the page"
    return unescape(found.group(1))


def test_the_mode_switch_moves_an_organisation_to_enforce(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    page = client.get("/domains").text
    assert "monitor mode" in page
    client.post("/domains/mode", data={"csrf_token": csrf_of(page), "org": "corp", "monitor_only": "false"})
    assert setup.rt.policies.get_organisation("corp").monitor_only is False
    assert "enforce mode" in client.get("/domains").text


# -- language ----------------------------------------------------------------------------------


def test_the_browser_language_is_followed_and_the_switch_is_remembered(setup: Setup) -> None:
    japanese = setup.client(language="ja-JP,ja;q=0.9,en;q=0.8")
    assert "<h1>サインイン</h1>" in japanese.get("/login").text
    client = sign_in(setup.client(language="en-GB"), "admin")
    page = client.get("/trace").text
    assert "Message trace" in page
    client.post("/language", data={"csrf_token": csrf_of(page), "language": "ja", "next": "/trace"})
    assert "<h1>メッセージ追跡</h1>" in client.get("/trace").text


# -- digest links ------------------------------------------------------------------------------


def test_a_digest_link_acts_on_the_button_not_on_the_fetch_and_only_once(setup: Setup) -> None:
    (entry,) = setup.world.quarantined(recipients=("bob@corp.example",))
    digests = digests_for(setup.rt)
    token = digests.signer.make(entry.id, LinkAction.RELEASE, datetime.now(UTC) + timedelta(hours=1))
    client = setup.client()
    page = client.get(f"/quarantine/link/{token}")
    assert page.status_code == 200 and "Release this message" in page.text
    assert setup.world.quarantine.get(entry.id).status.value == "held"  # a link scanner's GET changes nothing
    done = client.post(f"/quarantine/link/{token}", data={"csrf_token": csrf_of(page.text)})
    assert "was released" in done.text
    assert setup.world.quarantine.get(entry.id).status.value == "released"
    again = client.post(f"/quarantine/link/{token}", data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 410 and "used already" in again.text
    expired = digests.signer.make(entry.id, LinkAction.RELEASE, datetime.now(UTC) - timedelta(seconds=1))
    assert client.get(f"/quarantine/link/{expired}").status_code == 410


def test_policy_defaults_render_for_an_organisation_without_a_saved_policy(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    page = client.get("/policy/yaml").text
    assert "bcl_threshold: " + str(Policy().spam.bcl_threshold) in page


def test_a_quarantine_entry_says_what_was_detected(setup: Setup) -> None:
    from mailwarden.model import Finding

    found = (Finding("spam", "PHISH_CREDENTIAL_WORDING", 3.0, "asks to verify the account password"),
             Finding("spam", "BAYES_HAM", -1.0, "P(spam)=0.05"))  # fmt: skip
    (entry,) = setup.world.quarantined(recipients=("bob@corp.example",), findings=found, malware=("YARA:Doc_Dropper",))
    analyst = sign_in(setup.client(), "analyst").get(f"/quarantine/{entry.id}").text
    assert "Detected" in analyst and "YARA:Doc_Dropper" in analyst
    assert "PHISH_CREDENTIAL_WORDING" in analyst and "asks to verify the account password" in analyst
    assert "BAYES_HAM" not in analyst  # what spoke for the message did not put it here
    own = sign_in(setup.client(), "bob").get(f"/quarantine/{entry.id}").text
    assert "PHISH_CREDENTIAL_WORDING" in own and "asks to verify" not in own  # the names, not the explanations


def test_releasing_malware_asks_again_and_says_what_it_carries(setup: Setup) -> None:
    from mailwarden.model import Finding

    found = (Finding("malware", "MALWARE_YARA", 10.0, "YARA:Doc_Dropper in invoice.docm"),)
    (malware,) = setup.world.quarantined(reason=Reason.MALWARE, subject="Invoice", findings=found,
                                         malware=("YARA:Doc_Dropper",))  # fmt: skip
    (spam,) = setup.world.quarantined(reason=Reason.SPAM, subject="Cheap watches")
    admin = sign_in(setup.client(), "admin")
    token = csrf_of(admin.get("/quarantine").text)
    both = {"action": "release", "ids": [malware.id, spam.id]}
    asked = admin.post("/quarantine/bulk", data={"csrf_token": token, **both})
    assert "Release malware?" in asked.text and "YARA:Doc_Dropper" in asked.text
    assert setup.world.quarantine.get(malware.id).status.value == "held"
    assert setup.world.quarantine.get(spam.id).status.value == "held"  # nothing happened yet
    again = {"csrf_token": csrf_of(asked.text), **both, "confirm_malware": "yes"}
    confirmed = admin.post("/quarantine/bulk", data=again)
    assert confirmed.status_code == 200
    assert setup.world.quarantine.get(malware.id).status.value == "released"
    assert setup.world.quarantine.get(spam.id).status.value == "released"
