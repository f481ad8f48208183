"""Who may use a listener: the client rule (networks, AUTH, client certificates) and failed-AUTH limits.

The AUTH tests run a real listener on 127.0.0.1 and drive it with smtplib; the throttle's clock is the
test's, so no test waits for a delay to pass.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import smtplib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mailwarden.errors import ConfigError
from mailwarden.ingest import replies
from mailwarden.ingest.access import (
    Client,
    ClientAccess,
    certificate_names,
    hash_password,
    name_matches,
    verify_password,
)
from mailwarden.ingest.config import SmtpConfig, SmtpListenerConfig
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp import SessionInfo, SmtpServer
from mailwarden.ingest.spool import Spool
from mailwarden.throttle import SignInThrottle

PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD)
SUBMISSION = {
    "name": "submission",
    "role": "outbound",
    "port": 0,
    "auth_required": True,
    "auth_users": {"relay": PASSWORD_HASH},
}
JOURNAL = {"name": "journal", "role": "journal", "port": 0, "journal_addresses": ["journal@example.com"]}
INBOUND = {"name": "mx", "role": "inbound", "port": 0}
UNVERIFIED = ssl._create_unverified_context()
CLEAN = "127.0.0.2"  # another loopback address: a client that has not been failing


async def accept_all(listener: str, rcpt: str, session: SessionInfo) -> Reply | None:
    return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def submission(tmp_path: Path, clock: Clock) -> AsyncIterator[int]:
    """The port of a running outbound listener that requires AUTH, its throttle on the test's clock."""
    config = SmtpConfig.model_validate({"hostname": "mx.test", "listeners": [SUBMISSION]})
    with Spool(tmp_path / "spool") as spool:
        server = SmtpServer(config, spool, accept_all, auth_throttle=SignInThrottle(clock=clock))
        await server.start()
        try:
            yield server.bound_ports()["submission"]
        finally:
            await server.stop(drain_timeout=1)


def _plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def auth_attempts(port: int, passwords: list[str], *, source: str = "127.0.0.1") -> list[tuple[int, bytes]]:
    """Replies to AUTH PLAIN with each password in one session, then to NOOP (-1: the server hung up)."""
    replies_seen: list[tuple[int, bytes]] = []
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0)) as client:
        client.starttls(context=UNVERIFIED)
        client.ehlo("client.example.org")
        for password in passwords:
            replies_seen.append(client.docmd("AUTH", "PLAIN " + _plain("relay", password)))
        try:
            replies_seen.append(client.docmd("NOOP"))
            replies_seen.append(client.docmd("NOOP"))
        except smtplib.SMTPServerDisconnected:
            replies_seen.append((-1, b""))
    return replies_seen


def codes(seen: list[tuple[int, bytes]]) -> list[int]:
    return [code for code, _ in seen]


Run = Callable[..., Awaitable[list[tuple[int, bytes]]]]


@pytest.fixture
def attempt(submission: int) -> Run:
    async def run(passwords: list[str], *, source: str = "127.0.0.1") -> list[tuple[int, bytes]]:
        return await asyncio.to_thread(auth_attempts, submission, passwords, source=source)

    return run


# ---- failed AUTH -------------------------------------------------------------------------------
async def test_a_session_is_cut_after_three_failed_auths(attempt: Run) -> None:
    seen = await attempt(["guess 1", "guess 2", "guess 3", "guess 4"])
    assert codes(seen[:3]) == [535, 535, 535]
    assert seen[3] == (421, b"4.7.0 Too many failed authentications, closing connection")
    assert codes(seen[4:]) == [-1]


async def test_a_failing_address_waits_but_the_right_password_from_a_clean_address_gets_in(
    attempt: Run, clock: Clock
) -> None:
    await attempt(["guess 1", "guess 2", "guess 3"])
    throttled = await attempt([PASSWORD])
    assert throttled[0] == (454, b"4.7.0 Too many failed authentications, try again in 1 seconds")
    assert codes(await attempt([PASSWORD], source=CLEAN))[0] == 235
    clock.now += 1
    assert codes(await attempt(["guess 4"]))[0] == 535
    assert codes(await attempt([PASSWORD]))[0] == 454  # the wait doubled: 2 s from the 4th failure
    clock.now += 2
    assert codes(await attempt([PASSWORD]))[0] == 235


async def test_throttled_attempts_count_towards_the_session_cut(attempt: Run) -> None:
    await attempt(["guess 1", "guess 2", "guess 3"])
    seen = await attempt([PASSWORD, PASSWORD, PASSWORD])
    assert codes(seen) == [454, 454, 454, 421, -1]


async def test_guesses_from_one_address_over_many_sessions_come_ever_more_slowly(attempt: Run, clock: Clock) -> None:
    checked = []
    for second in range(40):  # a new session of three guesses every second
        seen = await attempt(["guess"] * 3)
        checked.extend([second] * codes(seen).count(535))
        clock.now += 1
    assert checked == [0, 0, 0, 1, 3, 7, 15, 31]  # 8 guesses checked of 120 tried


# ---- the client rule ---------------------------------------------------------------------------
def rule(**listener: Any) -> ClientAccess:
    return ClientAccess(SmtpListenerConfig.model_validate({**JOURNAL, **listener}))


def client(ip: str | None = "203.0.113.9", *, authenticated: bool = False, certificate: tuple[str, ...] = ()) -> Client:
    return Client(ip=ip, authenticated=authenticated, certificate=frozenset(certificate))


NOT_ALLOWED = replies.JOURNAL_CLIENT_NOT_ALLOWED
HASHES = {"exchange": hash_password("x" * 12)}
CA = {"tls_client_ca": "/ca.pem"}


@pytest.mark.parametrize(
    ("listener", "who", "refusal"),
    [
        ({"allowed_networks": ["40.92.0.0/15"]}, client("40.93.1.2"), None),
        ({"allowed_networks": ["40.92.0.0/15"]}, client("::ffff:40.93.1.2"), None),
        ({"allowed_networks": ["40.92.0.0/15"]}, client("203.0.113.9"), NOT_ALLOWED),
        ({"allowed_networks": ["40.92.0.0/15"]}, client(None), NOT_ALLOWED),
        ({"auth_users": HASHES}, client(authenticated=True), None),
        ({"auth_users": HASHES}, client(), replies.AUTH_REQUIRED),
        ({"auth_users": HASHES, "auth_required": True, "allowed_networks": ["10.0.0.0/8"]}, client(), NOT_ALLOWED),
        (CA, client(certificate=("journal.provider.test",)), None),
        (CA, client(), NOT_ALLOWED),
        ({**CA, "tls_client_subjects": ["*.provider.test"]}, client(certificate=("a.provider.test",)), None),
        ({**CA, "tls_client_subjects": ["a.provider.test"]}, client(certificate=("b.provider.test",)), NOT_ALLOWED),
        ({"allow_any_source": True}, client(), None),
    ],
)  # fmt: skip
def test_the_journal_rule(listener: dict[str, Any], who: Client, refusal: Reply | None) -> None:
    assert rule(**listener).refusal(who) == refusal


def test_the_outbound_rule_names_relaying() -> None:
    outbound = ClientAccess(
        SmtpListenerConfig.model_validate(
            {"name": "o", "role": "outbound", "port": 0, "allowed_networks": ["10.0.0.0/8"]}
        )
    )
    assert outbound.refusal(client()) == replies.CLIENT_NOT_ALLOWED
    assert outbound.refusal(client("10.1.2.3")) is None


def test_certificate_names_are_the_subject_cn_and_dns_alt_names() -> None:
    peer = {
        "subject": ((("countryName", "US"),), (("commonName", "Mail.Protection.Outlook.com"),)),
        "subjectAltName": (("DNS", "*.mail.protection.outlook.com"), ("IP Address", "192.0.2.1")),
    }
    assert certificate_names(peer) == {"mail.protection.outlook.com", "*.mail.protection.outlook.com"}
    assert certificate_names({}) == frozenset() and certificate_names(None) == frozenset()


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("mail.protection.outlook.com", "mail.protection.outlook.com", True),
        ("*.provider.test", "a.provider.test", True),
        ("*.provider.test", "a.b.provider.test", False),
        ("*.provider.test", "provider.test", False),
        ("*.provider.test", "*.provider.test", False),  # a wildcard certificate is not every name
        ("a.provider.test", "b.provider.test", False),
    ],
)
def test_subject_name_patterns(pattern: str, name: str, matches: bool) -> None:
    assert name_matches(pattern, name) is matches


# ---- passwords ------------------------------------------------------------------------------
def test_password_hashes_verify() -> None:
    assert verify_password(PASSWORD.encode(), PASSWORD_HASH)
    assert not verify_password(b"nope", PASSWORD_HASH)
    pbkdf2 = "pbkdf2_sha256$1000$c2FsdHNhbHRzYWx0$" + "Vh1FHT7xvHBb1HB1nSXTHN1XyQgOOu9KhhOFp8ZoyaQ="
    assert not verify_password(b"x", pbkdf2)
    assert not verify_password(b"x", "plaintext")


def test_pbkdf2_hashes_are_accepted() -> None:
    salt = b"saltsaltsalt"
    key = hashlib.pbkdf2_hmac("sha256", b"secret", salt, 1000)
    hashed = f"pbkdf2_sha256$1000${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    assert verify_password(b"secret", hashed)
    assert not verify_password(b"Secret", hashed)


# ---- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("listener", "message"),
    [
        (JOURNAL, "a journal listener needs allowed_networks, auth_users or tls_client_ca"),
        ({**JOURNAL, "allow_any_source": True, "allowed_networks": ["10.0.0.0/8"]}, "contradicts"),
        ({**JOURNAL, "tls_client_subjects": ["a.example"]}, "tls_client_subjects needs tls_client_ca"),
        ({**JOURNAL, "tls_client_ca": "/ca.pem", "tls_client_subjects": [" "]}, "an empty name"),
        ({**JOURNAL, "auth_required": True, "allowed_networks": ["10.0.0.0/8"]}, "auth_required needs"),
        ({**INBOUND, "tls_client_ca": "/ca.pem"}, "outbound and journal"),
        ({**SUBMISSION, "allow_any_source": True}, "journal listeners only"),
    ],
)
def test_bad_access_config_is_refused(listener: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SmtpConfig.model_validate({"listeners": [listener]})


async def test_an_unreadable_client_ca_stops_start_with_the_field_named(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate")
    listener = {**JOURNAL, "tls_client_ca": str(tmp_path / "ca.pem")}
    config = SmtpConfig.model_validate({"hostname": "mx.test", "listeners": [INBOUND, listener]})
    with Spool(tmp_path / "spool") as spool:
        server = SmtpServer(config, spool, accept_all)
        with pytest.raises(ConfigError, match="cannot load client CA certificates") as raised:
            await server.start()
        assert server.bound_ports() == {}  # nothing was left listening
    assert raised.value.field == "smtp.listeners.1.tls_client_ca"
