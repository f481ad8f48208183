"""What rule conditions look at, computed lazily once per message and shared by every rule."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mailwarden.model import Envelope, Message
from mailwarden.model.envelope import domain_of
from mailwarden.model.rules import normalise
from mailwarden.pipeline.dlp import DlpMatch
from mailwarden.pipeline.extract import message_texts
from mailwarden.pipeline.rules.terms import Terms


@dataclass
class MessageFacts:
    """One message as the rules see it. Texts are normalised (NFKC + casefold) once."""

    message: Message
    envelope: Envelope
    org_domains: Collection[str]
    terms: Terms
    sending_ip: str | None = None
    scl: int = 0
    dlp: Callable[[Message], Sequence[DlpMatch]] | None = None
    _hits: dict[str, frozenset[int]] = field(default_factory=dict)

    # ---- addresses -----------------------------------------------------------------------------
    @cached_property
    def senders(self) -> tuple[str, ...]:
        """The envelope sender and the From address: a condition on the sender matches either."""
        found = [a.lower() for a in (self.envelope.mail_from, self.message.from_address) if a]
        return tuple(dict.fromkeys(found))

    @cached_property
    def sender_domains(self) -> frozenset[str]:
        return frozenset(d for d in (domain_of(a) for a in self.senders) if d)

    @cached_property
    def recipients(self) -> tuple[str, ...]:
        return tuple(r.lower() for r in self.envelope.rcpt_to)

    @cached_property
    def recipient_domains(self) -> frozenset[str]:
        return frozenset(d for d in (domain_of(a) for a in self.recipients) if d)

    @cached_property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if not self.sending_ip:
            return None
        try:
            return ipaddress.ip_address(self.sending_ip)
        except ValueError:
            return None

    # ---- texts ---------------------------------------------------------------------------------
    @cached_property
    def _sources(self) -> list[Any]:
        return message_texts(self.message)

    @cached_property
    def subject(self) -> str:
        return normalise(self.message.subject)

    @cached_property
    def body(self) -> tuple[str, ...]:
        return tuple(normalise(s.text) for s in self._sources if s.where == "body")

    @cached_property
    def attachment_texts(self) -> tuple[str, ...]:
        return tuple(normalise(s.text) for s in self._sources if s.where.startswith("attachment:"))

    @cached_property
    def attachment_names(self) -> tuple[str, ...]:
        return tuple(normalise(a.filename) for a in self.message.attachments if a.filename)

    def header_values(self, name: str) -> tuple[str, ...]:
        return tuple(normalise(v) for v in self.message.headers(name))

    def texts(self, scope: str) -> Sequence[str]:
        """The normalised texts of a scope, as named by the compiled rules."""
        if scope == "subject":
            return (self.subject,)
        if scope == "body":
            return self.body
        if scope == "subject_or_body":
            return (self.subject, *self.body)
        if scope == "attachment":
            return self.attachment_texts
        if scope == "attachment_name":
            return self.attachment_names
        if scope == "sender":
            return self.senders
        if scope == "recipient":
            return self.recipients
        if scope.startswith("header:"):
            return self.header_values(scope.removeprefix("header:"))
        raise KeyError(scope)

    def hits(self, scope: str) -> frozenset[int]:
        """Ids of every rule's words and patterns of this scope found in the message (one scan)."""
        found = self._hits.get(scope)
        if found is None:
            found = self.terms.scopes[scope].match(self.texts(scope))
            self._hits[scope] = found
        return found

    @cached_property
    def sensitive(self) -> tuple[DlpMatch, ...]:
        return tuple(self.dlp(self.message)) if self.dlp is not None else ()
