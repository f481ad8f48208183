"""Regular expressions for long lists of literal phrases, shaped as a trie.

An alternation `a|b|c` of a hundred phrases makes the regex engine try every phrase at every position;
the same phrases as a trie (`ver(?:ify your (?:account|email)|...)`) try one character per branch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_END = ""  # the key that marks a phrase ending at a trie node


def _trie(phrases: Iterable[str]) -> dict[str, dict]:  # type: ignore[type-arg]  # recursive
    root: dict[str, dict] = {}  # type: ignore[type-arg]
    for phrase in phrases:
        node = root
        for ch in phrase:
            node = node.setdefault(ch, {})
        node[_END] = {}
    return root


def _regex(node: dict[str, dict]) -> str:  # type: ignore[type-arg]
    branches = [re.escape(ch) + _regex(child) for ch, child in sorted(node.items()) if ch != _END]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if _END in node:
        # a phrase ends here: the longer phrases are tried first, then this one
        return body + "?" if len(branches) == 1 and len(body) == 1 else "(?:" + body + ")?"
    return body


def literal_alternation(phrases: Iterable[str]) -> str:
    """A regex matching any of `phrases` that, where several match at one position, prefers the
    longest, as `|`.join(sorted by length, longest first) would."""
    phrases = [p for p in phrases if p]
    if not phrases:
        return "(?!)"
    return "(?:" + _regex(_trie(phrases)) + ")"


_RUN = re.compile(r"\w+")


def word_runs(text: str) -> frozenset[str]:
    """The distinct runs of word characters in `text`, for `PhraseList`."""
    return frozenset(_RUN.findall(text))


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"  # what \w is for the re module


class PhraseList:
    """A phrase list matched on word boundaries (CJK phrases anywhere), as `pattern` matches it:
    leftmost first, and of the phrases at one place the longest.

    A phrase on word boundaries can only occur where each of its runs of word characters is a whole
    run of the text. Most texts hold every run of no phrase at all; for the others, the few phrases
    that can occur are looked for with str.find, not with the regex of the whole list."""

    def __init__(self, phrases: Iterable[str]) -> None:
        phrases = [p for p in phrases if p]
        words = [p for p in phrases if p[0] < "\u3000"]
        self.cjk = tuple(p for p in phrases if p[0] >= "\u3000")
        parts = [r"(?<!\w)" + literal_alternation(words) + r"(?!\w)"] if words else []
        if self.cjk:
            parts.append("|".join(re.escape(p) for p in self.cjk))
        self.pattern = re.compile("|".join(parts))
        # each phrase under its longest run, the one least likely to be in a text
        self.by_run: dict[str, list[tuple[frozenset[str], str]]] = {}
        self.always: list[str] = []  # phrases without a run to pre-test on
        for phrase in words:
            runs = frozenset(_RUN.findall(phrase))
            if runs:
                self.by_run.setdefault(max(sorted(runs), key=len), []).append((runs, phrase))
            else:
                self.always.append(phrase)

    def candidates(self, text: str, runs: frozenset[str]) -> tuple[list[str], list[str]]:
        """The phrases that can occur in `text`, whose word runs are `runs`: (bounded, CJK)."""
        found = list(self.always)
        by_run = self.by_run
        for run in runs if len(runs) < len(by_run) else by_run:
            if run in runs and run in by_run:
                found += [phrase for needed, phrase in by_run[run] if needed <= runs]
        return found, [p for p in self.cjk if p in text]

    def _occurrences(self, text: str, phrase: str, bounded: bool, start: int) -> Iterable[int]:
        """Where `phrase` occurs from `start` on, on word boundaries if `bounded`."""
        size = len(phrase)
        at = text.find(phrase, start)
        while at >= 0:
            if not bounded or (
                (at == 0 or not _word_char(text[at - 1]))
                and (at + size == len(text) or not _word_char(text[at + size]))
            ):
                yield at
            at = text.find(phrase, at + 1)

    def _first(self, text: str, start: int, bounded: list[str], cjk: list[str]) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for group, is_bounded in ((bounded, True), (cjk, False)):
            for phrase in group:
                at = next(iter(self._occurrences(text, phrase, is_bounded, start)), -1)
                if at >= 0 and (best is None or at < best[0] or (at == best[0] and len(phrase) > len(best[1]))):
                    best = (at, phrase)
        return best

    def search(self, text: str, runs: frozenset[str]) -> str | None:
        """The phrase `pattern.search` finds, or None."""
        bounded, cjk = self.candidates(text, runs)
        if not bounded and not cjk:
            return None
        first = self._first(text, 0, bounded, cjk)
        return first[1] if first else None

    def findall(self, text: str, runs: frozenset[str]) -> list[str]:
        """The phrases `pattern.findall` finds, in order."""
        bounded, cjk = self.candidates(text, runs)
        out: list[str] = []
        start = 0
        while bounded or cjk:
            first = self._first(text, start, bounded, cjk)
            if first is None:
                break
            out.append(first[1])
            start = first[0] + len(first[1])
        return out
