"""Anti-spam actions end to end: `mailwarden serve` acting on a verdict, seen where a user would see it.

The verdict is picked with the organisation's blocked senders (SENDER_BLOCKED: high-confidence spam)
and `policy.spam.actions.high_confidence_spam`. Two set-ups, each started once for the module:

- a mail store: mailwarden (gateway, enforce) → a private Postfix → LMTP → a private Dovecot whose
  global Sieve script is the one docs/spam-filter.md gives administrators; junk lands in `.Junk/new`.
- an SMTP sink (aiosmtpd) as next hop for one organisation per action, in enforce mode and in monitor
  mode (gateway relaying unchanged, and journal copies). The sink is also the smart host, so an NDR to
  the external sender would arrive there too.

Without Postfix or Dovecot (or root) the mail store tests skip, or fail when CI=true.
"""

from __future__ import annotations

import email
import smtplib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.policy import SMTP, compat32
from email.utils import formatdate, make_msgid
from typing import Any

import pytest

from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.trace import EventType, RecipientStatus
from mailwarden.store import MessageDetail
from tests.dnsserver import DnsServer
from tests.integration.dovecot import PrivateDovecot, dovecot_binaries, private_dovecot
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, relayed_as_sent
from tests.integration.postfix import PrivatePostfix, postfix_binary, private_postfix

pytestmark = pytest.mark.integration

BLOCKED = "offers@spam.example"
ALLOWED = "ceo@partner.example"
TAGGED = "news@promo.example"  # a transport rule sets SCL 6 (spam): the mail store's policy tags spam
HEADER_NAME = "X-Acme-Suspected-Spam"
PREFIX = "[Suspected spam] "
DROP_REPLY = "550 4.3.2 QUEUE.TransportAgent; message deleted by transport agent"
WAIT = 60.0

# The mail server behind the gateway: relays example.com to Dovecot over LMTP.
MAILSTORE_CF = """\
myhostname = mailstore.test
mynetworks = 127.0.0.0/8
relay_domains = example.com
relay_transport = lmtp:inet:127.0.0.1:{lmtp_port}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_tls_security_level = may
"""


def spam_message(subject: str, *, sender: str, to: str, text: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])  # journal copies dedupe on it
    msg.set_content(text)
    return msg.as_bytes(policy=SMTP)


SPAM_TEXT = "Exclusive offer for you.\nReply today to claim your discount.\n"
CLEAN_TEXT = "Hi,\nthe minutes of Tuesday's meeting are below; comments welcome by Friday.\nThanks\n"


def send(port: int, sender: str, rcpts: list[str], raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, rcpts, raw)


def import_org(mw: Mailwarden, document: dict[str, Any]) -> None:
    """`policy import` in-process: several organisations without a CLI process each."""
    rt = mw.runtime()
    try:
        rt.db.migrate()
        rt.policies.import_document(parse_organisation_document(document), actor="test")
    finally:
        rt.close()


def policy(action: str, domain: str) -> dict[str, Any]:
    return {
        "spam": {
            "actions": {"high_confidence_spam": action},
            "header_name": HEADER_NAME,
            "subject_prefix": PREFIX,
            "redirect_to": [f"review@{domain}"],
        },
        "lists": {"blocked_senders": [BLOCKED], "allowed_senders": [ALLOWED]},
    }


def recorded(mw: Mailwarden, subject: str) -> MessageDetail:
    def one() -> MessageDetail:
        found = [d for d in mw.messages(subject=subject) if d.summary.subject == subject]
        assert len(found) == 1, f"{len(found)} records for {subject!r}"
        return found[0]

    detail: MessageDetail = eventually(one, timeout=WAIT)
    return detail


def parsed(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=compat32)


def events(detail: MessageDetail, kind: EventType) -> list[str]:
    return [e.detail for e in detail.events if e.type is kind]


# ---- junk folder delivery through Postfix and Dovecot -------------------------------------------


@dataclass
class Mailstore:
    mw: Mailwarden
    mailserver: PrivatePostfix
    dovecot: PrivateDovecot

    def arrived(self, check: Callable[[], list[Message]]) -> list[Message]:
        """Wait for mail in a mailbox; on a time-out, say where it stopped (each hop's log)."""
        try:
            found: list[Message] = eventually(check, timeout=WAIT)
        except AssertionError:
            logs = {"mailwarden": self.mw.log(), "postfix": self.mailserver.log(), "dovecot": self.dovecot.log()}
            raise AssertionError("\n".join(f"--- {name}\n{text[-3000:]}" for name, text in logs.items())) from None
        return found


@pytest.fixture(scope="module")
def mailstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailstore]:
    postfix = postfix_binary()
    dovecot_binaries()
    dns = DnsServer().start()
    try:
        with private_dovecot() as dovecot:
            main_cf = MAILSTORE_CF.replace("{lmtp_port}", str(dovecot.port))
            with private_postfix(postfix, main_cf, master_cf_extra="lmtp unix - - n - - lmtp\n") as mailserver:
                mw = Mailwarden(tmp_path_factory.mktemp("mailstore"), dns_port=dns.port)
                mw.listeners = {"inbound": free_port()}
                mw.write_config()
                domain = {"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{mailserver.port}"}
                document = policy("junk", "example.com")
                document["spam"]["actions"]["spam"] = "add_header"
                document["rules"] = [
                    {"name": "Promotions", "conditions": {"sender_address": [TAGGED]}, "actions": {"set_scl": 6}}
                ]
                import_org(mw, {"name": "acme", "monitor_only": False, "domains": [domain], "policy": document})
                mw.start()
                try:
                    yield Mailstore(mw, mailserver, dovecot)
                finally:
                    mw.kill()
    finally:
        dns.stop()


def with_subject(messages: list[bytes], subject: str) -> list[Message]:
    return [m for m in map(parsed, messages) if subject in str(m["Subject"])]


def test_blocked_sender_lands_in_junk_and_clean_mail_in_the_inbox(mailstore: Mailstore) -> None:
    mw, dovecot = mailstore.mw, mailstore.dovecot
    port = mw.listeners["inbound"]
    send(
        port,
        BLOCKED,
        ["alice@example.com"],
        spam_message("Exclusive offer", sender=BLOCKED, to="alice@example.com", text=SPAM_TEXT),
    )
    clean = spam_message("Tuesday minutes", sender="carol@example.org", to="alice@example.com", text=CLEAN_TEXT)
    send(port, "carol@example.org", ["alice@example.com"], clean)

    junk = mailstore.arrived(lambda: with_subject(dovecot.junk("alice"), "Exclusive offer"))
    inbox = mailstore.arrived(lambda: with_subject(dovecot.inbox("alice"), "Tuesday minutes"))
    assert len(junk) == 1 and len(inbox) == 1
    assert with_subject(dovecot.inbox("alice"), "Exclusive offer") == []
    assert with_subject(dovecot.junk("alice"), "Tuesday minutes") == []

    spam = junk[0]
    assert spam["X-Spam-Flag"] == "YES"
    assert str(spam["X-Spam-Status"]).startswith("Yes, score=15.0 required=5.0 tests=SENDER_BLOCKED")
    assert "SENDER_BLOCKED(15.00)" in str(spam["X-Mailwarden-Report"])
    assert "SCL:9;" in str(spam["X-Mailwarden-Antispam"])
    assert inbox[0]["X-Spam-Flag"] == "NO"
    assert str(inbox[0]["X-Spam-Status"]).startswith("No, ")

    detail = recorded(mw, "Exclusive offer")
    assert (detail.summary.category.value, detail.summary.action.value) == ("high_confidence_spam", "junk")
    assert detail.summary.applied is True
    assert events(detail, EventType.JUNK) == ["high_confidence_spam: marked for the Junk folder (X-Spam-Flag: YES)"]
    assert "stored mail into mailbox 'Junk'" in dovecot.log()


def test_tagged_spam_reaches_the_inbox_with_its_tag_not_the_junk_folder(mailstore: Mailstore) -> None:
    mw, dovecot = mailstore.mw, mailstore.dovecot
    raw = spam_message("Spring promotion", sender=TAGGED, to="carol@example.com", text=SPAM_TEXT)
    send(mw.listeners["inbound"], TAGGED, ["carol@example.com"], raw)

    (tagged,) = mailstore.arrived(lambda: with_subject(dovecot.inbox("carol"), "Spring promotion"))
    assert with_subject(dovecot.junk("carol"), "Spring promotion") == []
    assert tagged[HEADER_NAME] == "This message appears to be spam."
    assert tagged["X-Spam-Flag"] == "NO"  # the junk signal belongs to the junk action alone
    assert str(tagged["X-Spam-Status"]).startswith("No, ")
    assert "SCL:6;BCL:0;CAT:SPM;" in str(tagged["X-Mailwarden-Antispam"])
    detail = recorded(mw, "Spring promotion")
    assert (detail.summary.category.value, detail.summary.action.value) == ("spam", "add_header")


def test_allowed_sender_skips_spam_filtering_and_reaches_the_inbox(mailstore: Mailstore) -> None:
    mw, dovecot = mailstore.mw, mailstore.dovecot
    raw = spam_message("Board pack", sender=ALLOWED, to="bob@example.com", text=SPAM_TEXT)
    send(mw.listeners["inbound"], ALLOWED, ["bob@example.com"], raw)

    inbox = mailstore.arrived(lambda: with_subject(dovecot.inbox("bob"), "Board pack"))
    assert with_subject(dovecot.junk("bob"), "Board pack") == []
    antispam = str(inbox[0]["X-Mailwarden-Antispam"])
    assert "SFV:SKA;SCL:-1;" in antispam  # allowed in the anti-spam policy
    assert inbox[0]["X-Spam-Flag"] == "NO"
    detail = recorded(mw, "Board pack")
    assert detail.summary.scl == -1
    assert detail.summary.category.value == "clean"


# ---- every other action, with an SMTP sink as next hop ------------------------------------------

ENFORCED = ("add_header", "prepend_subject", "redirect", "drop", "quarantine")
MONITORED = ("junk", *ENFORCED)


def domain_for(mode: str, action: str) -> str:
    return f"{mode}-{action.replace('_', '-')}.test"


@dataclass
class Gateway:
    mw: Mailwarden
    sink: Sink

    def to_sink(self, subject: str) -> list[tuple[str, list[str], Message]]:
        """What the next hop received whose subject ends with `subject`: (MAIL FROM, RCPT TOs, message)."""
        return [(f, r, m) for f, r, raw in self.sink.received if str((m := parsed(raw))["Subject"]).endswith(subject)]

    def settle(self, domain: str, subject: str) -> None:
        """Send a clean message behind the one under test and wait for it at the next hop: anything the
        first one would have caused to be delivered was queued before it, so it is there by now too."""
        marker = f"{subject} sentinel"
        raw = spam_message(marker, sender="carol@example.org", to=f"dave@{domain}", text=CLEAN_TEXT)
        send(self.mw.listeners["inbound"], "carol@example.org", [f"dave@{domain}"], raw)
        eventually(lambda: self.to_sink(marker), timeout=WAIT)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    dns = DnsServer().start()
    sink = Sink()
    sink.controller.start()
    mw = Mailwarden(tmp_path_factory.mktemp("gateway"), dns_port=dns.port)
    try:
        mw.listeners = {"inbound": free_port(), "journal": free_port()}
        mw.write_config(smart_host=f"127.0.0.1:{sink.port}")  # an NDR to the sender would come here
        for mode, actions in (("enforce", ENFORCED), ("monitor", MONITORED)):
            for action in actions:
                domain = domain_for(mode, action)
                document = {
                    "name": f"{mode}-{action}",
                    "monitor_only": mode == "monitor",
                    "domains": [{"name": domain, "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
                    "policy": policy(action, domain),
                }
                import_org(mw, document)
        mw.start()
        yield Gateway(mw, sink)
    finally:
        if mw.process is not None:
            mw.kill()
        sink.controller.stop()
        dns.stop()


def send_spam(gw: Gateway, subject: str, domain: str) -> bytes:
    raw = spam_message(subject, sender=BLOCKED, to=f"alice@{domain}", text=SPAM_TEXT)
    send(gw.mw.listeners["inbound"], BLOCKED, [f"alice@{domain}"], raw)
    return raw


def assert_stamped(msg: Message) -> None:
    """The verdict is stamped, but not as junk: only the junk action files mail into the Junk folder."""
    assert msg["X-Spam-Flag"] == "NO"
    assert str(msg["X-Spam-Status"]).startswith("No, score=15.0 required=5.0 tests=SENDER_BLOCKED")
    assert "SCL:9;" in str(msg["X-Mailwarden-Antispam"])
    assert "SENDER_BLOCKED(15.00)" in str(msg["X-Mailwarden-Report"])


def test_add_header_delivers_with_the_configured_header(gateway: Gateway) -> None:
    domain = domain_for("enforce", "add_header")
    send_spam(gateway, "Offer add-header", domain)
    (mail_from, rcpts, msg), *more = eventually(lambda: gateway.to_sink("Offer add-header"), timeout=WAIT)
    assert not more
    assert (mail_from, rcpts) == (BLOCKED, [f"alice@{domain}"])
    assert msg[HEADER_NAME] == "This message appears to be spam."
    assert msg["Subject"] == "Offer add-header"
    assert_stamped(msg)
    detail = recorded(gateway.mw, "Offer add-header")
    assert detail.summary.action.value == "add_header" and detail.summary.applied is True


def test_prepend_subject_delivers_with_the_prefix(gateway: Gateway) -> None:
    domain = domain_for("enforce", "prepend_subject")
    send_spam(gateway, "Offer prepend", domain)
    (_, rcpts, msg), *more = eventually(lambda: gateway.to_sink("Offer prepend"), timeout=WAIT)
    assert not more
    assert rcpts == [f"alice@{domain}"]
    assert msg["Subject"] == f"{PREFIX}Offer prepend"
    assert_stamped(msg)


def test_redirect_delivers_only_to_the_redirect_addresses(gateway: Gateway) -> None:
    domain = domain_for("enforce", "redirect")
    send_spam(gateway, "Offer redirect", domain)
    eventually(lambda: gateway.to_sink("Offer redirect"), timeout=WAIT)
    gateway.settle(domain, "Offer redirect")
    delivered = gateway.to_sink("Offer redirect")
    assert [(f, r) for f, r, _ in delivered] == [(BLOCKED, [f"review@{domain}"])]
    assert_stamped(delivered[0][2])
    detail = recorded(gateway.mw, "Offer redirect")
    by_address = {r.address: r for r in detail.recipients}
    assert by_address[f"alice@{domain}"].status is RecipientStatus.REDIRECTED
    assert events(detail, EventType.REDIRECT) == [f"high_confidence_spam: redirected to review@{domain}"]


def test_delete_drops_silently_without_an_ndr(gateway: Gateway) -> None:
    domain = domain_for("enforce", "drop")
    send_spam(gateway, "Offer delete", domain)
    detail = recorded(gateway.mw, "Offer delete")
    gateway.settle(domain, "Offer delete")
    assert gateway.to_sink("Offer delete") == []
    # no NDR: nothing went back to the sender, with or without a null MAIL FROM
    assert [r for f, r, _ in gateway.sink.received if BLOCKED in r or f in ("", "<>")] == []
    assert (detail.summary.action.value, detail.summary.applied) == ("drop", True)
    assert [r.status for r in detail.recipients] == [RecipientStatus.DROPPED]
    drops = [e for e in detail.events if e.type is EventType.DROP]
    assert [e.smtp_reply for e in drops] == [DROP_REPLY]
    assert events(detail, EventType.DSN) == []
    assert not [e for e in recorded(gateway.mw, "Offer delete").events if e.type is EventType.DELIVER]


def test_quarantine_keeps_the_message_and_delivers_nothing(gateway: Gateway) -> None:
    domain = domain_for("enforce", "quarantine")
    raw = send_spam(gateway, "Offer quarantine", domain)
    detail = recorded(gateway.mw, "Offer quarantine")
    gateway.settle(domain, "Offer quarantine")
    assert gateway.to_sink("Offer quarantine") == []
    assert (detail.summary.action.value, detail.summary.applied) == ("quarantine", True)
    assert [r.status for r in detail.recipients] == [RecipientStatus.QUARANTINED]
    assert events(detail, EventType.QUARANTINE) == ["high_confidence_spam"]
    kept = list((gateway.mw.root / "var" / "blobs").rglob(f"quarantine-{detail.summary.id}*"))
    assert len(kept) == 1 and relayed_as_sent(kept[0].read_bytes(), raw)


@pytest.mark.parametrize("action", MONITORED)
def test_monitor_mode_records_the_action_as_would_have(gateway: Gateway, action: str) -> None:
    domain = domain_for("monitor", action)
    subject, journaled = f"Monitored {action} inline", f"Monitored {action} journal"
    # a journal copy first: recorded, never relayed
    copy = spam_message(journaled, sender=BLOCKED, to=f"erin@{domain}", text=SPAM_TEXT)
    send(gateway.mw.listeners["journal"], BLOCKED, [gateway.mw.journal_address], copy)
    raw = send_spam(gateway, subject, domain)

    # the gateway relays the message exactly as it came, to the original recipient only
    (mail_from, rcpts, _), *more = eventually(lambda: gateway.to_sink(subject), timeout=WAIT)
    assert not more and (mail_from, rcpts) == (BLOCKED, [f"alice@{domain}"])
    assert relayed_as_sent(next(raw_ for _, _, raw_ in gateway.sink.received if subject.encode() in raw_), raw)
    would_have = f"would have: {action} (high_confidence_spam)"
    for detail in (recorded(gateway.mw, subject), recorded(gateway.mw, journaled)):
        assert detail.summary.applied is False
        assert detail.summary.category.value == "high_confidence_spam"
        assert detail.summary.action.value == action
        assert events(detail, EventType.RECORD) == [would_have]
        acted = {EventType.JUNK, EventType.REDIRECT, EventType.DROP, EventType.QUARANTINE, EventType.DSN}
        assert not [e for e in detail.events if e.type in acted]
    assert gateway.to_sink(journaled) == []
    inline = recorded(gateway.mw, subject)
    assert {r.address for r in inline.recipients} == {f"alice@{domain}"}
    assert not list((gateway.mw.root / "var" / "blobs").rglob(f"quarantine-{inline.summary.id}*"))
