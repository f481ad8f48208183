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


class PhraseList:
    """A phrase list matched on word boundaries (CJK phrases anywhere), with a cheap exact pre-test.

    A phrase on word boundaries can only occur where each of its runs of word characters is a whole
    run of the text; most texts hold every word of no phrase, and then the regex is not run at all."""

    def __init__(self, phrases: Iterable[str]) -> None:
        phrases = [p for p in phrases if p]
        words = [p for p in phrases if p[0] < "\u3000"]
        self.cjk = tuple(p for p in phrases if p[0] >= "\u3000")
        parts = [r"(?<!\w)" + literal_alternation(words) + r"(?!\w)"] if words else []
        if self.cjk:
            parts.append("|".join(re.escape(p) for p in self.cjk))
        self.pattern = re.compile("|".join(parts))
        # each phrase under its longest run, the one least likely to be in a text
        self.by_run: dict[str, list[frozenset[str]]] = {}
        for phrase in words:
            runs = frozenset(_RUN.findall(phrase))
            if not runs:  # nothing to pre-test on: always run the regex
                self.by_run.setdefault("", []).append(runs)
                continue
            self.by_run.setdefault(max(sorted(runs), key=len), []).append(runs)

    def possible(self, text: str, runs: frozenset[str]) -> bool:
        """False when no phrase can match `text`, whose word runs are `runs`."""
        if "" in self.by_run or any(p in text for p in self.cjk):
            return True
        by_run = self.by_run
        for run in runs if len(runs) < len(by_run) else by_run:
            if run in runs and run in by_run and any(needed <= runs for needed in by_run[run]):
                return True
        return False

    def search(self, text: str, runs: frozenset[str]) -> re.Match[str] | None:
        return self.pattern.search(text) if self.possible(text, runs) else None

    def findall(self, text: str, runs: frozenset[str]) -> list[str]:
        return self.pattern.findall(text) if self.possible(text, runs) else []
