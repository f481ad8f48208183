"""Robinson–Fisher naive Bayes: learning, unlearning, probabilities and the shipped model file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mailwarden.model.message import Message
from mailwarden.pipeline.spam.classifier import (
    DEFAULT_MODEL,
    Calibration,
    Classifier,
    ensure_default_model,
    fisher_indicator,
    fit_calibration,
    model_header,
    open_classifier,
    read_model,
    train_files,
    write_model,
)
from mailwarden.pipeline.spam.statstore import MemoryTokenStore
from mailwarden.pipeline.spam.tokens import tokenize
from tests.factories import build_message

SPAMMY = ["viagra", "cheap", "winner", "prize", "click"]
HAMMY = ["meeting", "agenda", "patch", "review", "thanks"]


def trained(n: int = 20) -> Classifier:
    clf = Classifier(MemoryTokenStore())
    for i in range(n):
        clf.learn({*SPAMMY, f"s{i}", "common"}, is_spam=True)
        clf.learn({*HAMMY, f"h{i}", "common"}, is_spam=False)
    return clf


def test_untrained_model_says_it_cannot_judge() -> None:
    score = Classifier(MemoryTokenStore()).score({"anything"})
    assert not score.trained and score.probability == 0.5


def test_spammy_and_hammy_messages_land_on_their_sides() -> None:
    clf = trained()
    spam = clf.score({"viagra", "cheap", "prize"})
    ham = clf.score({"meeting", "patch", "thanks"})
    assert spam.probability > 0.9 > 0.1 > ham.probability
    assert spam.top_tokens[0][0] in SPAMMY and spam.top_tokens[0][1] > 0.5


def test_learning_changes_a_borderline_verdict_and_unlearning_reverses_it() -> None:
    clf = trained()
    message = {"cheap", "meeting", "newsletter"}
    before = clf.score(message).probability
    for _ in range(5):
        clf.learn(message, is_spam=True)
    after = clf.score(message).probability
    assert after > before + 0.1
    for _ in range(5):
        clf.unlearn(message, is_spam=True)
    assert clf.score(message).probability == pytest.approx(before)


def test_relearn_moves_a_mistake_to_the_other_class() -> None:
    clf = trained()
    message = {"cheap", "agenda", "offer"}
    clf.learn(message, is_spam=True)
    totals = clf.store.totals()
    clf.relearn(message, is_spam=False)
    assert clf.store.totals() == (totals[0] - 1, totals[1] + 1)
    assert clf.store.counts(["offer"]) == {"offer": (0, 1)}


def test_probabilities_are_in_range_and_monotone_with_evidence() -> None:
    clf = trained()
    probabilities = [clf.score(set(SPAMMY[:k])).probability for k in range(len(SPAMMY) + 1)]
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert probabilities == sorted(probabilities)
    assert probabilities[0] == 0.5  # no evidence
    hammy = [clf.score(set(HAMMY[:k])).probability for k in range(len(HAMMY) + 1)]
    assert hammy == sorted(hammy, reverse=True)


def test_fisher_combining_is_symmetric_and_does_not_underflow() -> None:
    i_spam, z_spam = fisher_indicator([0.99] * 150)
    i_ham, z_ham = fisher_indicator([0.01] * 150)
    assert i_spam == pytest.approx(1.0) and i_ham == pytest.approx(0.0)
    assert z_spam == pytest.approx(-z_ham) and math.isfinite(z_spam) and z_spam > 100
    assert fisher_indicator([]) == (0.5, 0.0)


def test_calibration_fit_orders_and_bounds_probabilities() -> None:
    samples = [(z / 10, z > 0) for z in range(-50, 51) if z] + [(0.5, False), (-0.5, True)]
    cal = fit_calibration(samples)
    assert cal.a > 0
    assert 0.0 < cal.apply(-100) < cal.apply(0) < cal.apply(100) < 1.0 or cal.apply(100) == 1.0
    assert Calibration().apply(0.0) == 0.5


def test_model_file_round_trip_prunes_singletons_and_loads_into_empty_store(tmp_path: Path) -> None:
    clf = trained(3)
    assert isinstance(clf.store, MemoryTokenStore)
    path = tmp_path / "model.tsv.gz"
    write_model(path, clf.store, Calibration(0.5, -1.0), "test-1")
    model = read_model(path)
    assert model.version == "test-1" and model.calibration == Calibration(0.5, -1.0)
    assert (model.spam_messages, model.ham_messages) == (3, 3)
    assert model.counts["viagra"] == (3, 0) and "s0" not in model.counts
    store = MemoryTokenStore()
    assert ensure_default_model(store, path) == model
    assert store.totals() == (3, 3)
    assert ensure_default_model(store, path) is None  # a store with data is left alone


def test_shipped_default_model_is_small_and_judges_obvious_mail() -> None:
    assert DEFAULT_MODEL.stat().st_size < 1_000_000
    store = MemoryTokenStore()
    model = ensure_default_model(store, DEFAULT_MODEL)
    assert model is not None and model.spam_messages > 400 and model.ham_messages > 2500
    clf = Classifier(store, calibration=model.calibration)
    offer = build_message(
        sender="Mortgage Center <offers@lowrates.example>",
        subject="Lowest mortgage rates GUARANTEED!!!",
        text=None,
        html='<html><body bgcolor="#ffffff"><font face="Arial" size="4" color="red"><b>Refinance now and save '
        "$500 a month!</b></font><br>Guaranteed approval, no cost, 100% free quote. Act now, this limited time "
        'offer expires soon. <a href="http://lowrates.example/apply">Click here</a> to apply online.<br>'
        '<a href="http://lowrates.example/remove">Click here to be removed</a> from our mailing list.</body></html>',
    )
    reply = build_message(
        subject="Re: [PATCH] fix the build on ARM",
        text="Thanks, applied.\n\nOn Tue, Bob wrote:\n> the kernel patch fixes the build, please review the diff\n",
    )
    assert clf.score(tokenize(Message(offer))).probability > model.threshold
    assert clf.score(tokenize(Message(reply))).probability < 0.2


def test_open_classifier_fills_an_empty_store_and_takes_the_shipped_calibration() -> None:
    store = MemoryTokenStore()
    clf = open_classifier(store)
    calibration, threshold, version = model_header()
    assert store.totals() != (0, 0) and version
    assert clf.calibration == calibration and clf.threshold == threshold
    assert 0.5 <= threshold < 1.0


def test_a_word_never_seen_with_its_capitals_is_scored_by_its_case_folded_form() -> None:
    clf = trained()
    shouted = clf.score({"VIAGRA", "CHEAP"})
    assert shouted.probability == pytest.approx(clf.score({"viagra", "cheap"}).probability)
    assert {t for t, _ in shouted.top_tokens} == {"viagra", "cheap"}
    clf.learn({"VIAGRA"}, is_spam=False)  # once learnt, the exact form counts instead
    assert clf.score({"VIAGRA"}).top_tokens[0][0] == "VIAGRA"
    assert Classifier(clf.store, degenerate=None).score({"CHEAP"}).top_tokens == ()


def test_train_files_learns_message_files_into_a_store(tmp_path: Path) -> None:
    spam_files, ham_files = [], []
    for i in range(12):
        spam_files.append(tmp_path / f"spam{i}.eml")
        spam_files[-1].write_bytes(
            build_message(subject=f"Cheap pills {i}", text="Buy cheap pills now, best price guaranteed!")
        )
        ham_files.append(tmp_path / f"ham{i}.eml")
        ham_files[-1].write_bytes(build_message(subject=f"Patch review {i}", text="The patch looks fine to me."))
    store = MemoryTokenStore()
    assert train_files(store, spam_files, ham_files) == (12, 12)
    assert store.totals() == (12, 12)
    assert store.counts(["cheap", "patch"]) == {"cheap": (12, 0), "patch": (0, 12)}
    clf = Classifier(store)
    spam = clf.score(tokenize(Message(build_message(subject="cheap pills", text="best price"))))
    ham = clf.score(tokenize(Message(build_message(subject="review", text="the patch is fine"))))
    assert spam.evidence > 0 > ham.evidence
