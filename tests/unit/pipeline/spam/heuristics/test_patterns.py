from __future__ import annotations

import random
import re

from mailwarden.pipeline.spam.heuristics.patterns import PhraseList, literal_alternation, word_runs

PHRASES = ("verify your account", "verify", "your password", "12-word", "sum of $", "本人確認")


def test_trie_prefers_the_longest_phrase_as_the_sorted_alternation_does() -> None:
    trie = re.compile(r"(?<!\w)" + literal_alternation(PHRASES[:3]) + r"(?!\w)")
    text = "please verify your accountant, then verify your account and your password"
    assert trie.findall(text) == ["verify", "verify your account", "your password"]
    assert re.compile(literal_alternation([])).search("anything") is None


def test_phrase_list_matches_what_its_regex_matches() -> None:
    phrases = PhraseList(PHRASES)
    for text, found in (
        ("to verify your account click", "verify your account"),
        ("write down your 12-word phrase", "12-word"),
        ("a sum of $ 4 million", "sum of $"),
        ("ご本人確認のお願い", "本人確認"),  # CJK phrases match inside words
        ("unverified accounts", None),
        ("your passwords", None),
    ):
        assert phrases.search(text, word_runs(text)) == found
        m = phrases.pattern.search(text)
        assert (m.group(0) if m else None) == found


def test_phrase_list_findall_sees_every_phrase() -> None:
    fee = PhraseList(("next of kin", "beneficiary", "atm card"))
    text = "dear beneficiary, as next of kin you get an atm card"
    assert fee.findall(text, word_runs(text)) == ["beneficiary", "next of kin", "atm card"]
    assert fee.findall("nothing here", word_runs("nothing here")) == []


def test_phrase_list_agrees_with_its_regex_on_random_text() -> None:
    phrases = PhraseList(("ab", "ab cd", "cd", "b", "ab-x", "データ"))
    rnd = random.Random(5)
    for _ in range(3000):
        text = "".join(
            rnd.choice(["ab", "cd", " ", "-", "x", "b", "_", "データ", "é"]) for _ in range(rnd.randint(0, 12))
        )
        runs = word_runs(text)
        m = phrases.pattern.search(text)
        assert phrases.search(text, runs) == (m.group(0) if m else None), text
        assert phrases.findall(text, runs) == phrases.pattern.findall(text), text
