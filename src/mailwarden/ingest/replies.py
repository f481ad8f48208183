"""Every SMTP reply the ingress sends on purpose, as a named constant (RFC 5321 codes, RFC 3463 status).

Replies are built here and only here; the listener code names them. Replies that aiosmtpd's own
command parsers send for plain syntax errors (`501 Syntax: MAIL FROM: <address>` and the like) are
aiosmtpd's; every reply that carries a policy decision is one of these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: code, enhanced status code (none for 220/221/235/334/354) and text."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}" if self.status else f"{self.code} {self.text}"

    def filled(self, **values: str) -> Reply:
        """The same reply with `{name}` fields of its text filled in."""
        return Reply(self.code, self.status, self.text.format(**values))

    def format(self, **values: str) -> str:
        """The reply with `{name}` fields of its text filled in."""
        return str(Reply(self.code, self.status, self.text.format(**values)))

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500


# 2xx / 3xx
GREETING = Reply(220, "", "{hostname} ESMTP mailwarden")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
QUEUED = Reply(250, "2.0.0", "OK: queued as {id}")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")

# 4xx: try again later
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, try again later")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections from your address, try again later")
TIMEOUT = Reply(421, "4.4.2", "Timeout exceeded, closing connection")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
TOO_MANY_AUTH_FAILURES = Reply(421, "4.7.0", "Too many failed authentications, closing connection")
SPOOL_FAILED = Reply(451, "4.3.0", "Local error in processing, try again later")
# the recipient's directory or next hop did not answer (RFC 3463 X.4.3: directory server failure)
RECIPIENT_NOT_VERIFIED = Reply(451, "4.4.3", "<{address}>: Recipient address cannot be verified now, try again later")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
SPOOL_FULL = Reply(452, "4.3.1", "Insufficient system storage: too many messages waiting, try again later")
AUTH_THROTTLED = Reply(454, "4.7.0", "Too many failed authentications, try again in {seconds} seconds")
DATA_MEMORY_FULL = Reply(452, "4.3.1", "Insufficient system resources: too much mail in transit, try again later")

# 5xx: permanent refusals
UNRECOGNISED_COMMAND = Reply(500, "5.5.1", "Command not recognized")
BAD_SYNTAX = Reply(500, "5.5.2", "Syntax error")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long (RFC 5321 4.5.3.1.6)")
BARE_LINE_ENDING_IN_COMMAND = Reply(500, "5.5.2", "Bare <LF> or <CR> in command not allowed, closing connection")
AUTH_MALFORMED = Reply(501, "5.5.2", "Cannot decode the authentication data")
DATA_SYNTAX = Reply(501, "5.5.4", "Syntax: DATA")
SIZE_SYNTAX = Reply(501, "5.5.4", "Invalid SIZE parameter")
AUTH_NOT_AVAILABLE = Reply(502, "5.5.1", "AUTH not available on this service")
NEED_RECIPIENT = Reply(503, "5.5.1", "Need RCPT command")
NEED_HELO = Reply(503, "5.5.1", "Send HELO or EHLO first")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
MUST_STARTTLS = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
AUTH_INVALID = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_NEEDS_TLS = Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
RECIPIENT_UNKNOWN = Reply(550, "5.1.1", "<{address}>: Recipient address rejected: User unknown")
NOT_A_JOURNAL_MAILBOX = Reply(550, "5.1.1", "Recipient is not a journal mailbox of this service")
RELAY_DENIED = Reply(550, "5.7.1", "Relay access denied")
SENDER_RESTRICTED = Reply(
    550, "5.1.8", "Access denied, bad outbound sender: <{address}> is restricted from sending (ask an administrator)"
)
IP_BLOCKED = Reply(550, "5.7.1", "Service unavailable; client host [{ip}] blocked using IP block list")
CLIENT_NOT_ALLOWED = Reply(550, "5.7.1", "Client host not allowed to relay mail through this service")
JOURNAL_CLIENT_NOT_ALLOWED = Reply(550, "5.7.1", "Client host not allowed to send journal reports to this service")
BARE_LINE_ENDING_IN_DATA = Reply(550, "5.5.2", "Bare <LF> or <CR> in message data not allowed")
NUL_IN_DATA = Reply(550, "5.6.0", "NUL character in message data not allowed")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
TOO_MANY_HOPS = Reply(554, "5.4.6", "Too many hops: mail forwarding loop")
