"""Training what ships: the split by source and time, collection tokens, learned weights, `mailwarden train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailwarden.cli import app
from mailwarden.model import Message
from mailwarden.pipeline.services import StageServices
from mailwarden.pipeline.spam.classifier import Score, model_header
from mailwarden.pipeline.spam.stage import SpamFilter
from mailwarden.pipeline.spam.training import (
    Sample,
    collection_tokens,
    read_scoring,
    source_of,
    time_folds,
    time_split,
)
from mailwarden.pipeline.spam.weights import Design, fit_weights
from tests.factories import build_message


def sample(i: int, source: str, *, spam: bool = False, sent: float = 0.0, tokens: set[str] | None = None) -> Sample:
    kind = "spam" if spam else "ham"
    return Sample(f"{i}", kind, spam, source, sent, frozenset(tokens or {"hello"}), frozenset())


def test_list_mail_belongs_to_its_list_and_other_mail_to_the_senders_domain() -> None:
    listed = Message(build_message(headers={"List-Id": "Tools users <tools.lists.example.org>"}))
    assert source_of(listed) == "list:tools.lists.example.org"
    assert source_of(Message(build_message(sender="a@mail.shop.example.net"))) == "from:example.net"


def test_the_split_keeps_each_source_on_one_side_and_tests_the_later_ones() -> None:
    samples = [sample(i, f"list:{i % 4}", sent=1000.0 * (i % 4) + i) for i in range(40)]
    train, test = time_split(samples)
    train_sources = {samples[i].source for i in train}
    test_sources = {samples[i].source for i in test}
    assert not train_sources & test_sources
    assert max(samples[i].sent for i in train) < min(samples[i].sent for i in test)
    folds = time_folds(samples, 4)
    assert all(len({folds[i] for i in range(40) if samples[i].source == s}) == 1 for s in train_sources | test_sources)


def test_tokens_only_one_source_uses_and_corpus_placeholders_are_not_learnt() -> None:
    samples = [sample(i, "list:tools", tokens={"[tools]", "kernel"}) for i in range(3)]
    samples += [sample(9, "from:other.example", tokens={"kernel", "addr:zzzz.example.com"})]
    pruned = collection_tokens(samples)
    assert "[tools]" in pruned and "addr:zzzz.example.com" in pruned
    assert "kernel" not in pruned


def test_learned_weights_stay_monotonic_and_keep_the_hand_weight_without_support() -> None:
    hand = {"UNSEEN": 2.0, "HAMMY": 1.0, "SPAMMY": 1.0, "PHISH_LINK": 3.0}
    design = Design(("UNSEEN", "HAMMY", "SPAMMY", "PHISH_LINK"), hand)
    rows, labels = [], []
    for i in range(200):
        is_spam = i % 2 == 0
        symbols = frozenset({"SPAMMY"} if is_spam else {"HAMMY", "PHISH_LINK"})
        rows.append(design.row(symbols, "BAYES_NEUTRAL"))
        labels.append(is_spam)
    _, weights = fit_weights(rows, labels, design, strength=10.0, temperature=1.0)
    learned = dict(zip(design.names, weights, strict=True))
    assert learned["UNSEEN"] == pytest.approx(2.0, abs=1e-3)
    assert learned["HAMMY"] >= 0.0  # evidence of spam never counts for ham, however the data reads
    assert learned["SPAMMY"] > 1.0
    # phishing symbols keep their hand weight: old ham with links says nothing about modern phish
    assert learned["PHISH_LINK"] == pytest.approx(3.0)


def test_a_scoring_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scoring.json"
    path.write_text(json.dumps({"weights": {"X": 1}}))
    with pytest.raises(ValueError):
        read_scoring(path)


def test_the_stage_scores_with_the_configured_learned_weights(tmp_path: Path) -> None:
    path = tmp_path / "scoring.json"
    weights = {"BAYES_NEUTRAL": -1.25, "BAYES_SPAM_HIGH": 9.0, "HTML_ONLY": 0.25}
    path.write_text(json.dumps({"format": "mailwarden-scoring 1", "weights": weights}))
    services = StageServices(resolver=None, data_dir=tmp_path, stage_config={"spam": {"scoring": str(path)}})
    spam = SpamFilter.from_services(services)
    assert spam.bayes_finding(Score(0.3, 0.5, 0.0, (), trained=True)).score == -1.25
    assert spam.bayes_finding(Score(0.99999, 1.0, 9.0, (), trained=True)).score == 9.0
    findings = spam.heuristics.evaluate(Message(build_message(text=None, html="<p>Only <b>HTML</b> here</p>")))
    assert {f.code: f.score for f in findings}["HTML_ONLY"] == 0.25
    config = {"scoring": str(path), "learned_scoring": False}
    hand = SpamFilter.from_services(StageServices(resolver=None, data_dir=tmp_path, stage_config={"spam": config}))
    assert hand.bayes_finding(Score(0.3, 0.5, 0.0, (), trained=True)).score == 0.0


def test_train_writes_a_model_and_weights_the_stage_can_load(tmp_path: Path) -> None:
    for kind, words in (("spam", "cheap pills casino winner"), ("ham", "patch review kernel build")):
        folder = tmp_path / "corpus" / kind
        folder.mkdir(parents=True)
        for n in range(24):
            raw = build_message(
                sender=f"x{n % 6}@{kind}{n % 6}.example", subject=f"{words.split()[n % 4]} {n}", text=f"{words} {n}\n"
            )
            (folder / f"{n:02}.eml").write_bytes(raw)
    result = CliRunner().invoke(app, ["train", "--corpus", str(tmp_path / "corpus"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    scoring = json.loads((tmp_path / "out" / "scoring.json").read_text())
    assert scoring["cv"]["spam"]["messages"] == 24 and "BAYES_SPAM_HIGH" in scoring["weights"]
    # where the classifier is unsure it never decides alone, and no opinion is no evidence
    assert scoring["weights"]["BAYES_SPAM_LOW"] <= 4.0 and scoring["weights"]["BAYES_NEUTRAL"] <= 1.0
    # a model learnt from a few messages separates them perfectly; its threshold still never sinks to even odds
    assert model_header(tmp_path / "out" / "default-model.tsv.gz")[1] >= 0.55
    files = {"model": str(tmp_path / "out" / "default-model.tsv.gz"), "scoring": str(tmp_path / "out" / "scoring.json")}
    services = StageServices(resolver=None, data_dir=tmp_path, stage_config={"spam": files})
    spam = SpamFilter.from_services(services)
    finding = spam.bayes(Message(build_message(subject="casino 3", text="cheap pills casino winner 3\n")))
    assert finding.code.startswith("BAYES_SPAM") and finding.score == scoring["weights"][finding.code]
