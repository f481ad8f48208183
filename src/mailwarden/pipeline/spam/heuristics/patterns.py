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
