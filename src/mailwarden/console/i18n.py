"""The console's language, chosen per request; the words are the catalogues of `mailwarden.i18n`.

The language is the `mw_lang` cookie when the user switched, else the best match of the browser's
Accept-Language, else English. A key missing from a catalogue falls back to English, then to the key.
"""

from __future__ import annotations

from mailwarden.i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator

LANGUAGE_COOKIE = "mw_lang"


def negotiate(accept_language: str | None, cookie: str | None) -> str:
    """The language for a request: the cookie's when valid, else the browser's best supported one."""
    if cookie in LANGUAGES:
        return cookie
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        q -= position * 1e-6  # equal weights: the earlier tag wins
        if q > best_q:
            best, best_q = primary, q
    return best


__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "LANGUAGE_COOKIE", "Translator", "negotiate"]
