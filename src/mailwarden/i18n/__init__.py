"""The product's words in every language: gettext catalogues read with Babel, one translator per language.

The catalogues are `locale/<language>/LC_MESSAGES/messages.po` beside this module. A msgid is a symbolic
key (`nav.dashboard`, `digest.reason.spam`, `reports.category.phish`), the msgstr the words, with `{name}`
placeholders filled by `str.format`. English (`en.po`) holds the source words; a key a language lacks
falls back to English, then to the key itself. docs/console.md ("Translating") says how to add words.

Every floor may use this module (the console, the period reports and their mails, the quarantine digests,
the administrators' notices), so it imports nothing of mailwarden.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LANGUAGES = ("en", "ja")
DEFAULT_LANGUAGE = "en"
DOMAIN = "messages"
LOCALE_DIR = Path(__file__).parent / "locale"


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def catalogue(language: str) -> Mapping[str, str]:
    """Key → words of `language`, read once; entries without words (and fuzzy ones) are left out."""
    with catalogue_path(language).open("rb") as po:
        parsed = read_po(po, locale=language)
    return {
        str(m.id): str(m.string)
        for m in parsed
        if m.id and isinstance(m.id, str) and isinstance(m.string, str) and m.string and not m.fuzzy
    }


def words(key: str, language: str = DEFAULT_LANGUAGE, **values: object) -> str:
    """The words of `key` in `language` with its placeholders filled (English, then the key, when missing)."""
    text = catalogue(language if language in LANGUAGES else DEFAULT_LANGUAGE).get(key)
    text = text or catalogue(DEFAULT_LANGUAGE).get(key) or key
    return text.format(**values) if values else text


class Translator:
    """`t("key", name=value)`: the words in this language with their placeholders filled."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE

    def __call__(self, key: str, **values: object) -> str:
        return words(key, self.language, **values)

    def enum(self, kind: str, value: object) -> str:
        """The words of a closed set's value, `enum.<kind>.<value>` (an enum member or its value); a value
        the catalogues lack is shown as it is."""
        raw = str(getattr(value, "value", value))
        key = f"enum.{kind}.{raw}"
        return self(key) if key in self else raw

    def __contains__(self, key: str) -> bool:
        """Whether the catalogues have `key` (in English, the source language)."""
        return key in catalogue(DEFAULT_LANGUAGE)


__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "Translator", "catalogue", "catalogue_path", "words"]
