"""The console's browser-facing defences: CSRF tokens, login rate limits and response headers.

CSRF is a signed double submit: a random `mw_csrf` cookie (HttpOnly, SameSite=Strict) and, in every
form and htmx request, an HMAC of that cookie and the session id under a key only this process holds.
A page from another site can neither read the cookie nor compute the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass
class LoginLimiter:
    """Failed sign-ins allowed per user name and per client IP within a sliding window.

    Only failures count; a success clears the user's record (not the IP's, so one good account
    cannot be used to reset guessing at others from the same address).
    """

    per_user: int = 5
    per_ip: int = 20
    window: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, user: str, ip: str) -> int:
        """Seconds until a sign-in may be tried again; 0 when it may be tried now."""
        now = self.clock()
        wait = 0.0
        for key, limit in ((f"user:{user.lower()}", self.per_user), (f"ip:{ip}", self.per_ip)):
            times = self._recent(key, now)
            if len(times) >= limit:
                wait = max(wait, times[0] + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, user: str, ip: str) -> None:
        now = self.clock()
        for key in (f"user:{user.lower()}", f"ip:{ip}"):
            self._recent(key, now).append(now)

    def succeeded(self, user: str) -> None:
        self._failures.pop(f"user:{user.lower()}", None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times
