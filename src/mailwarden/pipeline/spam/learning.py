"""Teaching the classifier: `mailwarden learn`, report-as-spam / not-spam and the bench's training runs.

Each learnt message leaves a mark (`" seen:"` + 40 hex digits of its SHA-256 → which label) in the token
store, so learning the same message again changes nothing and reporting a mistake moves it to the other
label exactly once, as SpamAssassin's seen database does.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from mailwarden.model import Message
from mailwarden.pipeline.spam.classifier import Classifier
from mailwarden.pipeline.spam.tokens import tokenize

SEEN_PREFIX = " seen:"


class Learnt(StrEnum):
    LEARNT = "learnt"
    ALREADY = "already learnt"
    RELEARNT = "moved from the other label"


def seen_key(message: Message) -> str:
    """The mark's key; 160 bits of the digest keep it within the store's key length."""
    return SEEN_PREFIX + message.sha256[:40]


def learn_message(classifier: Classifier, message: Message, is_spam: bool) -> Learnt:
    """Learn one message as spam or ham; relearn it if it was learnt with the other label before."""
    key = seen_key(message)
    store = classifier.store
    before = store.counts([key]).get(key)
    tokens = tokenize(message)
    if before is not None and before != (0, 0):
        was_spam = before[0] > 0
        if was_spam == is_spam:
            return Learnt.ALREADY
        classifier.relearn(tokens, is_spam)
        outcome = Learnt.RELEARNT
    else:
        classifier.learn(tokens, is_spam)
        outcome = Learnt.LEARNT
    store.set_mark(key, 1 if is_spam else 0, 0 if is_spam else 1)
    return outcome


def forget_message(classifier: Classifier, message: Message) -> bool:
    """Take back a learnt message (whatever its label); False if it was never learnt."""
    key = seen_key(message)
    before = classifier.store.counts([key]).get(key)
    if before is None or before == (0, 0):
        return False
    classifier.unlearn(tokenize(message), before[0] > 0)
    classifier.store.set_mark(key, 0, 0)
    return True


def learn_all(classifier: Classifier, messages: Iterable[tuple[bytes, bool]]) -> dict[Learnt, int]:
    """Learn many (raw message, is_spam) pairs; counts per outcome."""
    counts = dict.fromkeys(Learnt, 0)
    for raw, is_spam in messages:
        counts[learn_message(classifier, Message(raw), is_spam)] += 1
    return counts
