"""The spam filter stage through the pipeline: sender lists, classifier bands, learning, URI block lists,
and the SCL / phish / bulk boundaries of decide()."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mailwarden.dns import DnsResolver
from mailwarden.model import (
    Action,
    Category,
    Direction,
    Envelope,
    Finding,
    Message,
    PhishLevel,
    Policy,
    StageOutcome,
    StageResult,
)
from mailwarden.model.org import Domain, Organisation
from mailwarden.model.scoring import scl_for
from mailwarden.pipeline.decide import decide
from mailwarden.pipeline.engine import Pipeline
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.services import StageServices
from mailwarden.pipeline.spam.classifier import Classifier, Score
from mailwarden.pipeline.spam.learning import Learnt, forget_message, learn_message
from mailwarden.pipeline.spam.stage import SpamFilter, link_domains, prepare_store
from mailwarden.pipeline.spam.statstore import MemoryTokenStore
from mailwarden.pipeline.spam.tokens import tokenize
from mailwarden.store.db import Database
from mailwarden.store.tokens import SqlTokenStore
from tests.dnsserver import DnsServer
from tests.factories import build_message

INBOUND = Envelope(mail_from="sender@example.org", rcpt_to=("bob@example.com",), client_ip="198.51.100.7")


def services(tmp_path: Path, resolver: Any = None, **stage: Any) -> StageServices:
    return StageServices(resolver=resolver, data_dir=tmp_path, stage_config={"spam": stage})


def scan(
    spam: SpamFilter,
    raw: bytes,
    policy: Policy | None = None,
    *,
    envelope: Envelope = INBOUND,
    direction: Direction = Direction.INBOUND,
    facts: ScanFacts | None = None,
) -> Any:
    pipeline = Pipeline({Direction.INBOUND: [spam], Direction.OUTBOUND: [spam]})
    return asyncio.run(pipeline.scan(Message(raw), envelope, policy or Policy(), direction=direction, facts=facts))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> SpamFilter:
    """The stage as an offline scan builds it: the shipped model in memory."""
    return SpamFilter.from_services(services(tmp_path_factory.mktemp("spam")))


def codes(verdict: Any) -> set[str]:
    return {f.code for f in verdict.findings}


# ---- SCL, phish and bulk boundaries -----------------------------------------------------------
@pytest.mark.parametrize(
    ("score", "scl"),
    [
        (-3.0, 0),
        (0.99, 0),
        (1.0, 1),
        (4.99, 1),
        (5.0, 5),
        (6.99, 5),
        (7.0, 6),
        (9.99, 6),
        (10.0, 8),
        (14.99, 8),
        (15.0, 9),
    ],
)
def test_total_score_maps_to_scl_by_the_table(score: float, scl: int) -> None:
    assert scl_for(score) == scl


def verdict_of(*findings: Finding, policy: Policy | None = None, bypass: str | None = None) -> Any:
    stage = StageResult("spam", StageOutcome.DETECTED if findings else StageOutcome.CLEAN, tuple(findings))
    return decide(Direction.INBOUND, [stage], policy or Policy(), bypass_spam=bypass)


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (4.9, Category.CLEAN),
        (5.0, Category.SPAM),
        (9.9, Category.SPAM),
        (10.0, Category.HIGH_CONFIDENCE_SPAM),
    ],
)
def test_spam_and_high_confidence_spam_start_at_scl_5_and_7(score: float, category: Category) -> None:
    assert verdict_of(Finding("spam", "X", score)).category is category


@pytest.mark.parametrize(
    ("score", "level", "category"),
    [
        (4.9, PhishLevel.NONE, Category.CLEAN),
        (5.0, PhishLevel.PHISH, Category.PHISH),
        (9.9, PhishLevel.PHISH, Category.PHISH),
        (10.0, PhishLevel.HIGH_CONFIDENCE, Category.HIGH_CONFIDENCE_PHISH),
    ],
)
def test_phish_levels_have_their_own_thresholds(score: float, level: PhishLevel, category: Category) -> None:
    verdict = verdict_of(Finding("spam", "PHISH_X", score))
    # phishing evidence counts towards the SCL as well, while the phish level has its own thresholds
    assert (verdict.phish, verdict.category, verdict.scl) == (level, category, scl_for(score))


def test_spam_and_phishing_evidence_together_make_spam() -> None:
    verdict = verdict_of(Finding("spam", "BAYES_SPAM_MEDIUM", 3.5), Finding("spam", "PHISH_URL_IP_HOST", 2.0))
    assert (verdict.category, verdict.scl, verdict.phish) == (Category.SPAM, 5, PhishLevel.NONE)
    assert verdict.score == 5.5


@pytest.mark.parametrize(("bcl_score", "threshold", "bulk"), [(6.4, 7, False), (7.0, 7, True), (5.0, 5, True)])
def test_bulk_is_bcl_at_or_above_the_policy_threshold(bcl_score: float, threshold: int, bulk: bool) -> None:
    policy = Policy.model_validate({"spam": {"bcl_threshold": threshold}})
    verdict = verdict_of(Finding("spam", "BULK_X", bcl_score), policy=policy)
    assert (verdict.category is Category.BULK) is bulk


def test_bypass_gives_scl_minus_one_but_phishing_still_counts() -> None:
    verdict = verdict_of(Finding("spam", "X", 20.0), Finding("spam", "PHISH_X", 10.0), bypass="allowed")
    assert verdict.scl == -1
    assert verdict.category is Category.HIGH_CONFIDENCE_PHISH


def test_outbound_mail_is_scored_but_not_held(shipped: SpamFilter) -> None:
    policy = Policy.model_validate({"lists": {"blocked_senders": ["alice@example.com"]}})
    raw = build_message(sender="alice@example.com", to="someone@example.net")
    verdict = scan(shipped, raw, policy, direction=Direction.OUTBOUND)
    assert verdict.category is Category.HIGH_CONFIDENCE_SPAM
    assert verdict.scl == 9
    assert verdict.disposition.action is Action.DELIVER


# ---- sender lists ------------------------------------------------------------------------------
def test_blocked_sender_is_high_confidence_spam(shipped: SpamFilter) -> None:
    policy = Policy.model_validate({"lists": {"blocked_senders": ["Spammer@Example.org"]}})
    verdict = scan(shipped, build_message(sender="spammer@example.org"), policy)
    assert codes(verdict) == {"SENDER_BLOCKED"}
    assert (verdict.scl, verdict.category) == (9, Category.HIGH_CONFIDENCE_SPAM)


def test_blocked_domain_matches_the_envelope_sender_and_subdomains(shipped: SpamFilter) -> None:
    policy = Policy.model_validate({"lists": {"blocked_domains": ["bad.example"]}})
    envelope = Envelope(mail_from="bounce@mail.bad.example", rcpt_to=("bob@example.com",))
    verdict = scan(shipped, build_message(sender="news@example.org"), policy, envelope=envelope)
    assert "SENDER_BLOCKED" in codes(verdict)
    assert "mail.bad.example" in next(f.detail for f in verdict.findings if f.code == "SENDER_BLOCKED")
    clean = scan(shipped, build_message(sender="news@notbad.example"), policy)
    assert "SENDER_BLOCKED" not in codes(clean)


def test_allowed_sender_skips_spam_filtering(shipped: SpamFilter) -> None:
    policy = Policy.model_validate({"lists": {"allowed_domains": ["partner.example"]}})
    raw = build_message(
        sender="deals@partner.example",
        subject="FREE money!!! Act now",
        text="Click here to claim your prize of $1,000,000 now, limited offer, act now!\n",
    )
    verdict = scan(shipped, raw, policy, facts=ScanFacts(auth={"dmarc": "pass"}))
    assert verdict.scl == -1
    assert verdict.category is Category.CLEAN
    assert "SENDER_ALLOWED" in codes(verdict)


def test_allowed_sender_failing_dmarc_is_not_honoured(shipped: SpamFilter) -> None:
    policy = Policy.model_validate({"lists": {"allowed_senders": ["ceo@partner.example"]}})
    verdict = scan(
        shipped, build_message(sender="ceo@partner.example"), policy, facts=ScanFacts(auth={"dmarc": "fail"})
    )
    assert verdict.scl != -1
    assert "SENDER_ALLOW_IGNORED" in codes(verdict)


# ---- the classifier --------------------------------------------------------------------------
def band_of(spam: SpamFilter, probability: float) -> str:
    finding = spam.bayes_finding(Score(probability, probability, 0.0, (("4111111111111111", 0.99),), trained=True))
    return finding.code


def test_classifier_probability_becomes_one_band_symbol(shipped: SpamFilter) -> None:
    threshold = shipped.spam_band
    assert band_of(shipped, 0.001) == "BAYES_HAM_HIGH"
    assert band_of(shipped, 0.05) == "BAYES_HAM"
    assert band_of(shipped, 0.3) == "BAYES_NEUTRAL"
    assert band_of(shipped, 0.45) == "BAYES_SPAM_LOW"
    assert band_of(shipped, min(0.56, threshold - 0.001)) in {"BAYES_SPAM_MEDIUM", "BAYES_SPAM_LOW"}
    assert band_of(shipped, threshold) == "BAYES_SPAM"
    assert band_of(shipped, 0.9995) == "BAYES_SPAM_HIGH"


def test_band_details_never_carry_the_digits_of_a_token(shipped: SpamFilter) -> None:
    finding = shipped.bayes_finding(Score(0.9999, 1.0, 9.0, (("4111111111111111", 0.99),), trained=True))
    assert "4111" not in finding.detail and "################" in finding.detail


def test_weights_are_configurable(tmp_path: Path) -> None:
    spam = SpamFilter.from_services(services(tmp_path, weights={"BAYES_SPAM_HIGH": 12.0, "SENDER_BLOCKED": 8.0}))
    assert spam.bayes_finding(Score(0.99999, 1.0, 9.0, (), trained=True)).score == 12.0
    policy = Policy.model_validate({"lists": {"blocked_senders": ["x@example.org"]}})
    verdict = scan(spam, build_message(sender="x@example.org"), policy)
    assert (verdict.score, verdict.scl) == (8.0, 6)


def test_a_bad_band_order_is_a_config_error(tmp_path: Path) -> None:
    from mailwarden.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        SpamFilter.from_services(services(tmp_path, bayes={"ham": 0.6, "spam_low": 0.5}))
    assert "stages.spam" in str(info.value)


BORDERLINE = dict(
    sender="Quentin Vale <quentin@vale-logistics.example>",
    subject="Zorblax pallet quote for week 12",
    text=(
        "Hi Bob,\n\nplease find our zorblax pallet quote for week 12 below. Prices are per pallet, "
        "delivery to your warehouse included. Reply with the order number to confirm.\n\nQuentin\n"
    ),
)


def learnt_spam(i: int) -> bytes:
    return build_message(
        sender=f"Quentin Vale <q{i}@vale-logistics.example>",
        subject=f"Zorblax pallet quote {i}",
        text=f"zorblax pallet quote warehouse delivery order number confirm prices week {i}\n",
    )


def test_learning_changes_a_borderline_verdict(tmp_path: Path) -> None:
    spam = SpamFilter.from_services(services(tmp_path))
    raw = build_message(**BORDERLINE)  # type: ignore[arg-type]
    before = spam.classifier.score(tokenize(Message(raw))).probability
    # an organisation's own trade vocabulary, learnt as ham: the message is clean
    for i in range(30):
        assert learn_message(spam.classifier, Message(learnt_spam(i)), False) is Learnt.LEARNT
    as_ham = scan(spam, raw)
    assert as_ham.category is Category.CLEAN
    assert spam.classifier.score(tokenize(Message(raw))).probability < before
    # users report those messages as spam: they move label, and the same message becomes spam
    for i in range(30):
        assert learn_message(spam.classifier, Message(learnt_spam(i)), True) is Learnt.RELEARNT
    as_spam = scan(spam, raw)
    assert as_spam.category in (Category.SPAM, Category.HIGH_CONFIDENCE_SPAM)
    assert codes(as_spam) & {"BAYES_SPAM", "BAYES_SPAM_HIGH"}


def test_learning_the_same_message_twice_counts_it_once(tmp_path: Path) -> None:
    spam = SpamFilter.from_services(services(tmp_path))
    totals = spam.classifier.store.totals()
    message = Message(learnt_spam(1))
    assert learn_message(spam.classifier, message, True) is Learnt.LEARNT
    assert learn_message(spam.classifier, message, True) is Learnt.ALREADY
    assert spam.classifier.store.totals() == (totals[0] + 1, totals[1])
    assert forget_message(spam.classifier, message)
    assert not forget_message(spam.classifier, message)
    assert spam.classifier.store.totals() == totals


def test_the_shipped_model_is_loaded_once_into_a_shared_sqlite_store(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'mailwarden.db'}")
    try:
        db.migrate()
        first, second = SqlTokenStore(db), SqlTokenStore(db)
        assert prepare_store(first)
        loaded = first.totals()
        assert loaded[0] > 100 and loaded[1] > 100
        assert not prepare_store(second)  # a second process starting later
        assert second.totals() == loaded
        # two processes racing on an empty store: the marker lets exactly one load
        assert not second.load_once({"x": (1, 1)}, 1, 1, " model:race") or not first.load_once(
            {"x": (1, 1)}, 1, 1, " model:race"
        )
    finally:
        db.close()


def test_an_untrained_store_says_so_and_scores_nothing() -> None:
    from mailwarden.pipeline.spam.heuristics import Heuristics
    from mailwarden.pipeline.spam.stage import SpamConfig

    spam = SpamFilter(Classifier(MemoryTokenStore()), Heuristics(), SpamConfig())
    verdict = scan(spam, build_message())
    finding = next(f for f in verdict.findings if f.code == "BAYES_UNTRAINED")
    assert finding.score == 0.0


# ---- URI block lists -------------------------------------------------------------------------
def test_link_domains_are_registered_domains_without_the_organisations_own() -> None:
    urls = [
        "https://a.b.evil.example.co.uk/x",
        "http://198.51.100.9/login",
        "https://www.example.com/ok",
        "https://evil.example.co.uk/y",
        "mailto:x@y",
    ]
    # a.b.evil.example.co.uk and evil.example.co.uk share one registered domain: asked once
    assert link_domains(urls, ["example.com"]) == ["example.co.uk", "198.51.100.9"]


def test_uri_block_list_listing_scores_and_names_the_domain(
    tmp_path: Path, dns_server: DnsServer, resolver: DnsResolver
) -> None:
    dns_server.add("phishy-login.example.multi.uribl.test", "A", "127.0.0.2")
    dns_server.add("9.100.51.198.multi.uribl.test", "A", "127.0.0.4")
    zones = [{"zone": "multi.uribl.test", "name": "TEST", "weight": 4.5, "codes": {"127.0.0.2": "black"}}]
    spam = SpamFilter.from_services(services(tmp_path, resolver, uribl=zones))
    organisation = Organisation("org", (Domain("example.com"),))
    raw = build_message(
        html='<p><a href="https://phishy-login.example/x">log in</a> <a href="http://198.51.100.9/a">b</a></p>',
        text="see the links\n",
    )
    pipeline = Pipeline({Direction.INBOUND: [spam]})
    verdict = asyncio.run(
        pipeline.scan(Message(raw), INBOUND, Policy(), organisation=organisation, direction=Direction.INBOUND)
    )
    found = {f.code: f for f in verdict.findings}
    assert found["URIBL_TEST_BLACK"].score == 4.5
    assert "phishy-login.example" in found["URIBL_TEST_BLACK"].detail
    assert "URIBL_TEST_127_0_0_4" in found  # an answer without a configured label keeps its address
    clean = scan(spam, build_message(html='<a href="https://fine.example/">x</a>', text="x\n"))
    assert not any(f.code.startswith("URIBL_") for f in clean.findings)


def test_a_failing_uri_block_list_never_blocks_mail(
    tmp_path: Path, dns_server: DnsServer, resolver: DnsResolver
) -> None:
    dns_server.fail("down.example.broken.uribl.test")
    zones = [{"zone": "broken.uribl.test", "name": "BROKEN", "weight": 5.0}]
    spam = SpamFilter.from_services(services(tmp_path, resolver, uribl=zones))
    verdict = scan(spam, build_message(html='<a href="https://down.example/">x</a>', text="x\n"))
    assert verdict.category is Category.CLEAN
    error = next(f for f in verdict.findings if f.code == "URIBL_ERROR")
    assert error.score == 0.0 and "broken.uribl.test" in error.detail


def test_phishing_evidence_on_confidently_legitimate_content_counts_less(shipped: SpamFilter) -> None:
    from mailwarden.pipeline.spam.stage import PHISH_HAMLIKE

    class SureHam:
        threshold = 0.6

        def score(self, tokens: object, *, explain: int = 10) -> Score:
            return Score(0.001, 0.0, -9.0, (), trained=True)

    spam = SpamFilter(SureHam(), shipped.heuristics, shipped.config)  # type: ignore[arg-type]
    raw = build_message(
        sender="IT Support <it@example.org>",
        subject="Verify your account",
        text="Your password expires today. Verify your account now to avoid suspension: log in here.\n",
        html='<p>Your password expires today. <a href="http://198.51.100.9/login">Verify your account</a></p>',
    )
    verdict = scan(spam, raw)
    hamlike = [f for f in verdict.findings if f.code == PHISH_HAMLIKE]
    phish = [f for f in verdict.findings if f.code.startswith("PHISH_") and f.score > 0]
    assert phish, "the sample must carry phishing evidence"
    assert hamlike and hamlike[0].score == -3.0


def test_a_list_post_is_never_spam_on_an_unsure_classifier_band_alone(tmp_path: Path) -> None:
    """Modern list posts the 2002-trained classifier finds mildly spammy: with a learned scoring that weighs
    the band at 10 points, a list post still needs evidence beside it; a direct message does not."""
    spam = SpamFilter.from_services(services(tmp_path))
    spam.weights["BAYES_SPAM_MEDIUM"] = 10.0
    spam.classifier.score = lambda tokens, explain=0: Score(0.6, 0.6, 0.0, (), trained=True)  # type: ignore[method-assign]
    headers = {"List-Id": "<dev.lists.example.org>", "List-Post": "<mailto:dev@lists.example.org>"}
    listed = scan(
        spam, build_message(subject="[dev] build broken", text="The build fails on arm64.\n", headers=headers)
    )
    direct = scan(spam, build_message(subject="build broken", text="The build fails on arm64.\n"))
    (band,) = [f for f in listed.findings if f.code == "BAYES_SPAM_MEDIUM"]
    assert band.score == 4.0 and "a list post" in band.detail and listed.scl < 5
    assert direct.scl >= 5
