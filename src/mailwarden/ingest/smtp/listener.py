"""One configured listener, resolved once at start: its client rule, its journal mailboxes, its hooks.

The hooks are aiosmtpd's handler hooks for the listener's policy: the EHLO keywords, who may send
(MAIL FROM) and which recipients are taken (RCPT TO), by the listener's role.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from mailwarden.ingest import replies as r
from mailwarden.ingest.access import ClientAccess
from mailwarden.ingest.config import SmtpListenerConfig
from mailwarden.ingest.replies import Reply
from mailwarden.model import ListenerRole, TlsInfo
from mailwarden.model.envelope import normalise_address

if TYPE_CHECKING:
    from mailwarden.ingest.smtp.server import SmtpServer
    from mailwarden.ingest.smtp.session import SmtpSession

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What is known about the client when a recipient is checked."""

    listener: str
    role: ListenerRole
    client_ip: str | None
    helo: str | None
    tls: TlsInfo | None
    authenticated_as: str | None
    mail_from: str


RecipientCheck = Callable[[str, str, SessionInfo], Awaitable[Reply | None]]
"""(listener name, recipient address, session) → None to accept, or the Reply that refuses it."""
SenderCheck = Callable[[str, str, SessionInfo], Awaitable[Reply | None]]
"""(listener name, MAIL FROM address, session) → None to accept, or the Reply that refuses it (outbound)."""


class Listener:
    """A configured listener, resolved once at start: its policy and the hooks aiosmtpd calls."""

    def __init__(self, config: SmtpListenerConfig, server: SmtpServer, tls_context: ssl.SSLContext) -> None:
        self.config = config
        self.name = config.name
        self.role = config.role
        self.server = server
        self.tls_context = tls_context
        self.access = ClientAccess(config)
        self.offers_auth = self.access.offers_auth
        self.users = dict(config.auth_users)
        self.journal = frozenset(config.journal_addresses)
        self.hooks = ListenerHooks(self)

    def is_journal_mailbox(self, address: str) -> bool:
        if address in self.journal:
            return True
        local, _, domain = address.rpartition("@")
        base = local.split("+", 1)[0]
        return base != local and f"{base}@{domain}" in self.journal


class ListenerHooks:
    """aiosmtpd handler hooks of one listener: EHLO keywords, sender and recipient policy."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    async def handle_EHLO(
        self, server: SmtpSession, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves this to a hook that replaces the reply
        keywords = [f"250-SIZE {self.listener.server.config.max_message_size}", "250-PIPELINING"]
        for line in responses[1:]:
            if line.startswith("250-AUTH") and not self.listener.offers_auth:
                continue
            keywords.append(line)
        return [responses[0], *keywords]

    async def handle_MAIL(
        self, server: SmtpSession, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        for option in options:
            if option.startswith("SIZE="):
                value = option[5:]
                if not value.isdigit():
                    return str(r.SIZE_SYNTAX)
                if int(value) > self.listener.server.config.max_message_size:
                    return str(r.MESSAGE_TOO_BIG)
        client = server.client()
        refusal = self.listener.access.refusal(client)
        if refusal is not None:
            log.info(
                "smtp.client_refused",
                listener=self.listener.name,
                role=self.listener.role,
                client=client.ip,
                certificate=sorted(client.certificate),
                reply=str(refusal),
            )
            return str(refusal)
        smtp = self.listener.server
        if smtp.spool.backlog >= smtp.config.max_backlog:
            # scanning is that far behind: the sender keeps the message and retries (nothing is lost)
            log.warning("smtp.spool_full", listener=self.listener.name, backlog=smtp.spool.backlog)
            return str(r.SPOOL_FULL)
        if self.listener.role is ListenerRole.OUTBOUND and smtp.sender_check is not None:
            refused = await smtp.sender_check(self.listener.name, normalise_address(address), server.info())
            if refused is not None:
                log.info("smtp.sender_refused", listener=self.listener.name, client=client.ip, reply=str(refused))
                return str(refused)
        envelope.mail_from = address  # "<>" for the null sender: aiosmtpd needs a true value here
        envelope.mail_options.extend(options)
        return str(r.SENDER_OK)

    async def handle_RCPT(
        self, server: SmtpSession, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        listener = self.listener
        if len(envelope.rcpt_tos) >= listener.server.config.max_recipients:
            return str(r.TOO_MANY_RECIPIENTS)
        rcpt = normalise_address(address)
        refusal: Reply | None = None
        if listener.role is ListenerRole.JOURNAL:
            refusal = None if listener.is_journal_mailbox(rcpt) else r.NOT_A_JOURNAL_MAILBOX
        elif listener.role is ListenerRole.INBOUND:
            refusal = await listener.server.recipient_check(listener.name, rcpt, server.info())
        if refusal is not None:
            log.info("smtp.recipient_refused", listener=listener.name, client=server.client_ip, rcpt=rcpt)
            return str(refusal)
        envelope.rcpt_tos.append(rcpt)
        envelope.rcpt_options.extend(options)
        return str(r.RECIPIENT_OK)
