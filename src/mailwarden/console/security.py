"""The console's browser-facing defences: CSRF tokens and response headers.

Sign-in attempts are throttled by `mailwarden.throttle.SignInThrottle` (shared with SMTP AUTH).

CSRF is a signed double submit: a random `mw_csrf` cookie (HttpOnly, SameSite=Strict) and, in every
form and htmx request, an HMAC of that cookie and the session id under a key only this process holds.
A page from another site can neither read the cookie nor compute the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

CSRF_COOKIE = "mw_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

# Pages: own scripts only, nothing inline, never framed.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
# A quarantined message's preview document: no script, no remote content, framed only by the console.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; object-src 'none'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
PREVIEW_HEADERS = {
    "Content-Security-Policy": PREVIEW_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "no-store",
}


class CsrfSigner:
    """Makes and checks the token that binds a form to its browser's CSRF cookie and session."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(32)

    def token(self, cookie: str, session_id: str | None) -> str:
        message = f"{cookie}|{session_id or ''}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def check(self, cookie: str | None, session_id: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        return hmac.compare_digest(self.token(cookie, session_id), token)
