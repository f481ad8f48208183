"""The SMTP ingress: aiosmtpd listeners that commit each message to the spool before saying 250.

One `SmtpServer` runs every configured listener. A listener has a role (`model.ListenerRole`):

* journal  — accepts the journal mailboxes only (plus-addressing too), from the clients its rule admits;
* inbound  — accepts recipients the `recipient_check` accepts (the organisation's domains);
* outbound — accepts the clients its rule admits, never anybody else.

The rule of a journal or outbound listener (`ingest/access.py`): `allowed_networks`, AUTH PLAIN or
LOGIN over TLS against `auth_users`, and/or a TLS client certificate verified against `tls_client_ca`.
Failed AUTH is throttled by client address and by account (`mailwarden.throttle`), and a session is
cut after three failures.

What this package adds to aiosmtpd 1.4.6 (see docs/ingress.md):

* its own command loop and DATA reader, which refuse a bare LF or bare CR anywhere (commands:
  500 and disconnect; DATA: the message is read to its real `<CR><LF>.<CR><LF>` end and refused
  with 550 5.5.2), so no SMTP smuggling (end-of-data variants, a second message hidden in DATA);
* SIZE announced and enforced with 552 5.3.4, recipient and per-address connection limits, a
  timeout inside DATA, STARTTLS-required with 530 5.7.0, a 421 on idle timeout and on shutdown;
* the envelope (HELO name, TLS version and cipher, authenticated user) recorded with each message.

Modules: `server` (the listeners, admission, the in-flight DATA budget, spooling), `session` (one
connection: command loop, AUTH, DATA), `listener` (a configured listener and its aiosmtpd hooks),
`commands` (reading and splitting a command line).
"""

from mailwarden.ingest.smtp.listener import RecipientCheck, SessionInfo
from mailwarden.ingest.smtp.server import SmtpServer

__all__ = ["RecipientCheck", "SessionInfo", "SmtpServer"]
