"""Words and patterns of every rule, matched per text scope by one combined RE2 set.

Each word or pattern of every rule gets an id in the set of the text it looks at (subject, body,
attachment content, one header, ...). A message's text is normalised once and scanned once per scope;
a condition then only asks whether one of its ids was hit. The cost per message grows with the text,
hardly with the number of rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import re2

from mailwarden.model.rules import PATTERN_MAX_MEM, compile_pattern, normalise

# Scripts written with spaces between words: a word that starts or ends with one of their letters must
# stand alone there ("secret" is not in "secretary"). Chinese and Japanese are written without spaces,
# so a word there matches anywhere ("機密" is in "機密情報").
_SPACED = r"\p{Latin}\p{Greek}\p{Cyrillic}\p{Hangul}\p{Arabic}\p{Hebrew}0-9_"
_SPACED_CHAR = re2.compile(f"^[{_SPACED}]$")
_BEFORE = f"(?:^|[^{_SPACED}])"
_AFTER = f"(?:[^{_SPACED}]|$)"
# expressions per RE2 set: one set for thousands of words would need more memory than RE2 allows it
_CHUNK = 400
_SET_MAX_MEM = 8 * PATTERN_MAX_MEM


def word_expression(word: str) -> str:
    """The RE2 expression for a word or phrase, on normalised text (NFKC + casefold)."""
    norm = normalise(word).strip()
    body = r"\s+".join(re2.escape(part) for part in norm.split())
    before = _BEFORE if norm and _SPACED_CHAR.match(norm[0]) else ""
    after = _AFTER if norm and _SPACED_CHAR.match(norm[-1]) else ""
    return before + body + after


def pattern_expression(pattern: str) -> str:
    """An administrator's pattern, case-insensitive (it was checked with RE2 when the rule was saved)."""
    compile_pattern(pattern)
    return "(?i)" + pattern


class ScopeSet:
    """The words and patterns of every rule that look at one scope (e.g. `subject`)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._sets: list[Any] = []

    def add(self, expression: str) -> int:
        """The id of an expression; the same expression from two rules shares one id."""
        if expression not in self._ids:
            self._ids[expression] = len(self._ids)
        return self._ids[expression]

    def compile(self) -> None:
        options = re2.Options()
        options.max_mem = _SET_MAX_MEM
        options.log_errors = False
        expressions = list(self._ids)
        self._sets = []
        for start in range(0, len(expressions), _CHUNK):
            chunk = re2.Set.SearchSet(options)
            for expression in expressions[start : start + _CHUNK]:
                chunk.Add(expression)
            chunk.Compile()
            self._sets.append(chunk)

    def __len__(self) -> int:
        return len(self._ids)

    def match(self, texts: Iterable[str]) -> frozenset[int]:
        """Ids of the expressions found in any of the (already normalised) texts."""
        hits: set[int] = set()
        for text in texts:
            if not text:
                continue
            for n, chunk in enumerate(self._sets):
                hits.update(n * _CHUNK + i for i in chunk.Match(text) or ())
        return frozenset(hits)


class Terms:
    """The scopes of one compiled rule set and the ids of the terms a condition uses."""

    def __init__(self) -> None:
        self.scopes: dict[str, ScopeSet] = {}

    def word_id(self, scope: str, word: str) -> int:
        return self.scopes.setdefault(scope, ScopeSet()).add(word_expression(word))

    def pattern_id(self, scope: str, pattern: str) -> int:
        return self.scopes.setdefault(scope, ScopeSet()).add(pattern_expression(pattern))

    def words(self, scope: str, words: Iterable[str]) -> tuple[str, frozenset[int]]:
        return scope, frozenset(self.word_id(scope, w) for w in words)

    def patterns(self, scope: str, patterns: Iterable[str]) -> tuple[str, frozenset[int]]:
        return scope, frozenset(self.pattern_id(scope, p) for p in patterns)

    def compile(self) -> None:
        for scope in self.scopes.values():
            scope.compile()
