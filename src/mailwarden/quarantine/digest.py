"""End-user quarantine digests and their one-click links.

Per recipient, the entries held since the last digest (those the policy lets the user see), in the
policy's language (English or Japanese), text and HTML, at the policy's frequency. Each entry gets a
release link (or a request-release link, when the policy allows only that) and a preview link.

A link is `<console>/quarantine/link/<token>`; the token is `payload.signature` where the payload
names a fresh token id, the entry, the action and the expiry, and the signature is HMAC-SHA256 under
a secret kept in the data directory. A redeemed token id is stored, so a link works once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from mailwarden.durable import atomic_write
from mailwarden.errors import MailwardenError
from mailwarden.i18n import words
from mailwarden.ids import new_id
from mailwarden.model.policy import EndUserAccess, NotificationFrequency, Policy
from mailwarden.model.quarantine import Actor, Entry, Operation, Reason, Role, can, user_access
from mailwarden.quarantine.preview import Preview
from mailwarden.quarantine.service import Quarantine, ReleaseDispatcher

log = structlog.get_logger(__name__)
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
LOCAL_SUFFIXES = (".localdomain", ".localhost", ".local", ".internal")

FREQUENCIES = {
    NotificationFrequency.FOUR_HOURS: timedelta(hours=4),
    NotificationFrequency.DAILY: timedelta(days=1),
    NotificationFrequency.WEEKLY: timedelta(days=7),
}
SECRET_BYTES = 32
DIGEST_MESSAGE_PREFIX = "digest-"  # delivery jobs of digests carry no history id
# the catalogue's words (mailwarden.i18n) for each quarantine reason and link
REASON_WORDS = {
    Reason.SPAM: "digest.reason.spam",
    Reason.HIGH_CONFIDENCE_SPAM: "digest.reason.high_confidence_spam",
    Reason.BULK: "digest.reason.bulk",
    Reason.PHISH: "digest.reason.phish",
    Reason.HIGH_CONFIDENCE_PHISH: "digest.reason.high_confidence_phish",
    Reason.MALWARE: "digest.reason.malware",
    Reason.RULE: "digest.reason.rule",
    Reason.DLP: "digest.reason.dlp",
}


class LinkAction(StrEnum):
    RELEASE = "release"
    REQUEST = "request"
    PREVIEW = "preview"


LINK_WORDS = {
    LinkAction.RELEASE: "digest.release",
    LinkAction.REQUEST: "digest.request",
    LinkAction.PREVIEW: "digest.preview",
}


class LinkError(MailwardenError):
    """A digest link that is forged, malformed, expired or already used."""

    exit_code = 77

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason  # invalid | expired | used
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class LinkClaim:
    token_id: str
    entry_id: str
    action: LinkAction
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RedeemResult:
    action: LinkAction
    entry: Entry
    preview: Preview | None = None


def load_secret(path: Path) -> bytes:
    """The link-signing key at `path`, made (random, owner-only) the first time."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, secrets.token_bytes(SECRET_BYTES))
        os.chmod(path, 0o600)
        data = path.read_bytes()
    if len(data) < 16:
        raise MailwardenError(f"{path}: the link secret is too short (at least 16 bytes)")
    return data


class LinkSigner:
    """Makes and checks signed, expiring digest link tokens."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def make(self, entry_id: str, action: LinkAction, expires_at: datetime) -> str:
        payload = {"i": secrets.token_hex(16), "e": entry_id, "a": action.value, "x": int(expires_at.timestamp())}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{_b64(self._sign(body))}"

    def check(self, token: str, now: datetime) -> LinkClaim:
        body, _, signature = token.strip().partition(".")
        try:
            given = _unb64(signature)
            payload = json.loads(_unb64(body))
            claim = LinkClaim(
                str(payload["i"]),
                str(payload["e"]),
                LinkAction(payload["a"]),
                datetime.fromtimestamp(int(payload["x"]), tz=UTC),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise LinkError("this link is not valid", reason="invalid") from None
        if not hmac.compare_digest(given, self._sign(body)):
            raise LinkError("this link is not valid", reason="invalid")
        if now >= claim.expires_at:
            raise LinkError("this link has expired", reason="expired")
        return claim

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).digest()


class Digests:
    """Composes and sends digests, and redeems their links."""

    def __init__(
        self,
        quarantine: Quarantine,
        signer: LinkSigner,
        *,
        public_url: str,
        hostname: str,
        link_lifetime: timedelta = timedelta(hours=72),
        sender: ReleaseDispatcher | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.quarantine = quarantine
        self.signer = signer
        self.public_url = public_url.rstrip("/")
        self.hostname = hostname
        self._told: set[str] = set()
        self.link_lifetime = link_lifetime
        self.sender = sender
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- which entries --------------------------------------------------------------------------

    def sender_of(self, policy: Policy) -> str:
        return policy.notifications.sender or f"quarantine@{self.hostname}"

    def waiting_for(self, policy: Policy) -> str | None:
        """Why digests of an organisation with `policy` wait (None: they go). A digest whose links point at
        this machine's loopback address, or whose sender is no address a mail server would accept (a host
        name without a real domain), would reach users broken or not at all: set-up finishes first."""
        if urlsplit(self.public_url).hostname in LOCAL_HOSTS:
            return "[console] public_url is a local address: links in digests would not reach users"
        domain = self.sender_of(policy).rpartition("@")[2].lower()
        if "." not in domain or domain.endswith(LOCAL_SUFFIXES):
            return f"the digest sender {self.sender_of(policy)} has no real domain: set policy.notifications.sender"
        return None

    def due(self, now: datetime | None = None, *, force: bool = False) -> dict[str, list[Entry]]:
        """Per recipient whose digest is due (its frequency passed since the last one; `force`: all),
        the entries held since then that the recipient may see."""
        now = now or self._clock()
        held = self.quarantine.store.held_unnotified()
        last = self.quarantine.store.last_digests({e.recipient for e in held})
        out: dict[str, list[Entry]] = {}
        for entry in held:
            policy = self.quarantine.policy_for(entry.organisation)
            if not policy.notifications.enabled:
                continue
            why = self.waiting_for(policy)
            if why is not None:
                if why not in self._told:  # once per reason, not every round
                    self._told.add(why)
                    log.warning("quarantine_digests_waiting", organisation=entry.organisation, reason=why)
                continue
            if not can(Role.USER, Operation.VIEW, entry, policy, address=entry.recipient):
                continue
            sent = last.get(entry.recipient)
            if not force and sent is not None and now < sent + FREQUENCIES[policy.notifications.frequency]:
                continue
            out.setdefault(entry.recipient, []).append(entry)
        return out

    # -- composing and sending ------------------------------------------------------------------

    def compose(self, recipient: str, entries: Sequence[Entry], now: datetime | None = None) -> bytes:
        """The digest e-mail for one recipient: text and HTML in the policy's language, with links."""
        now = now or self._clock()
        policy = self.quarantine.policy_for(entries[0].organisation)
        language = policy.notifications.language
        title = words("digest.subject_line", language)
        intro = words("digest.intro", language, count=len(entries))
        headings = [
            words(key, language)
            for key in ("digest.subject", "digest.from", "digest.received", "digest.reason", "digest.actions")
        ]
        preview = words(LINK_WORDS[LinkAction.PREVIEW], language)
        expires = now + self.link_lifetime
        rows = []
        for entry in entries:
            access = user_access(policy, entry.reason)
            action = LinkAction.RELEASE if access is EndUserAccess.RELEASE else LinkAction.REQUEST
            rows.append(
                (
                    entry,
                    words(LINK_WORDS[action], language),
                    self._url(self.signer.make(entry.id, action, expires)),
                    self._url(self.signer.make(entry.id, LinkAction.PREVIEW, expires)),
                )
            )
        text = [intro, ""]
        items = []
        for entry, act, act_url, preview_url in rows:
            reason = words(REASON_WORDS[entry.reason], language)
            text += [
                f"- {entry.subject}",
                f"  {headings[1]}: {entry.sender or '<>'}",
                f"  {headings[2]}: {entry.received_at:%Y-%m-%d %H:%M} UTC",
                f"  {headings[3]}: {reason}",
                f"  {act}: {act_url}",
                f"  {preview}: {preview_url}",
                "",
            ]
            items.append(
                "<tr>"
                f"<td>{html.escape(entry.subject)}</td><td>{html.escape(entry.sender or '<>')}</td>"
                f"<td>{entry.received_at:%Y-%m-%d %H:%M} UTC</td><td>{html.escape(reason)}</td>"
                f'<td><a href="{html.escape(act_url)}">{html.escape(act)}</a> · '
                f'<a href="{html.escape(preview_url)}">{html.escape(preview)}</a></td>'
                "</tr>"
            )
        footer = words("digest.footer", language, hours=int(self.link_lifetime.total_seconds() // 3600))
        text.append(footer)
        head = "".join(f"<th>{html.escape(heading)}</th>" for heading in headings)
        body_html = (
            f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head><body>"
            f"<p>{html.escape(intro)}</p>"
            f'<table border="1" cellpadding="4"><tr>{head}</tr>{"".join(items)}</table>'
            f"<p>{html.escape(footer)}</p></body></html>"
        )
        msg = EmailMessage()
        msg["From"] = self.sender_of(policy)
        msg["To"] = recipient
        msg["Subject"] = f"{title} ({len(entries)})"
        msg["Date"] = format_datetime(now)
        msg["Message-ID"] = make_msgid(domain=self.hostname)
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content("\n".join(text))
        msg.add_alternative(body_html, subtype="html")
        return msg.as_bytes(policy=SMTP)

    def send_due(self, now: datetime | None = None, *, force: bool = False) -> int:
        """Queue a digest for every recipient that is due; returns how many digests were queued."""
        if self.sender is None:
            raise MailwardenError("no delivery queue to send digests through")
        now = now or self._clock()
        sent = 0
        for recipient, entries in self.due(now, force=force).items():
            raw = self.compose(recipient, entries, now)
            self.sender(DIGEST_MESSAGE_PREFIX + new_id(now), "", [recipient], raw)
            self.quarantine.store.digest_sent(recipient, entries, now)
            sent += 1
            log.info("quarantine_digest_sent", recipient=recipient, entries=len(entries))
        return sent

    # -- links ----------------------------------------------------------------------------------

    def redeem(self, token: str, now: datetime | None = None) -> RedeemResult:
        """Carry out what a digest link says, once: release, request release, or preview.

        The link acts as the entry's recipient, so the policy's user permissions still apply.
        """
        now = now or self._clock()
        claim = self.signer.check(token, now)
        if not self.quarantine.store.use_token(claim.token_id, at=now, expires_at=claim.expires_at):
            raise LinkError("this link has been used already", reason="used")
        entry = self.quarantine.get(claim.entry_id)
        actor = Actor(f"{entry.recipient} (digest link)", Role.USER, entry.recipient)
        match claim.action:
            case LinkAction.RELEASE:
                (released,) = self.quarantine.release(entry.id, actor, [entry.recipient])
                return RedeemResult(claim.action, released)
            case LinkAction.REQUEST:
                return RedeemResult(claim.action, self.quarantine.request_release(entry.id, actor))
            case LinkAction.PREVIEW:
                return RedeemResult(claim.action, entry, self.quarantine.preview(entry.id, actor))
        raise LinkError("this link is not valid", reason="invalid")

    def forget_used_tokens(self, now: datetime | None = None) -> None:
        """Used token ids are needed only until their links would have expired anyway."""
        self.quarantine.store.forget_tokens(now or self._clock())

    def _url(self, token: str) -> str:
        return f"{self.public_url}/quarantine/link/{token}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
