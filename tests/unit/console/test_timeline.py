"""The timeline's details in Japanese: the shapes the producers write are said in Japanese with their values
kept (and marked as data); English reads as recorded; anything else is shown as it is, escaped."""

from __future__ import annotations

from mailwarden.console.timeline import event_detail
from mailwarden.enforce.record import scan_summary, would_have
from mailwarden.i18n import Translator
from mailwarden.model import Action, Category, Direction, Disposition, Finding, StageOutcome, StageResult, Verdict

JA, EN = Translator("ja"), Translator("en")


def spam_verdict() -> Verdict:
    finding = Finding("spam", "BAYES_SPAM", 4.0, "the classifier's probability 0.99")
    return Verdict(
        Direction.INBOUND,
        Category.SPAM,
        Disposition(Action.JUNK, reason="SCL 6 ≥ 5"),
        stages=(StageResult("spam", StageOutcome.DETECTED, (finding,)),),
        scl=6,
    )


def test_what_the_producers_write_is_said_in_japanese_with_its_values_kept() -> None:
    verdict = spam_verdict()
    scanned = str(event_detail(JA, scan_summary(verdict)))
    assert scanned == (
        '判定: スパム · SCL <span translate="no">6</span> · BCL <span translate="no">0</span> · '
        '<span translate="no">BAYES_SPAM(4)</span>'
    )
    assert str(event_detail(JA, would_have(verdict))) == (
        '適用モードなら: 迷惑メール (<span translate="no">SCL 6 ≥ 5</span>)'
    )
    received = str(event_detail(JA, "listener inbound from [192.0.2.1] helo=mx.example tls=TLSv1.3"))
    assert received == (
        'リスナー <span translate="no">inbound</span> · 接続元 [<span translate="no">192.0.2.1</span>] · '
        '<span translate="no">helo=mx.example tls=TLSv1.3</span>'
    )
    assert str(event_detail(JA, "delivered to 127.0.0.1:2525")) == (
        '<span translate="no">127.0.0.1:2525</span> に配信しました'
    )


def test_english_reads_as_recorded_and_an_unknown_shape_is_shown_escaped() -> None:
    detail = scan_summary(spam_verdict())
    assert str(event_detail(EN, detail)) == f'<span translate="no">{detail}</span>'
    odd = "451 4.7.1 <try> later & again"
    assert str(event_detail(JA, odd)) == '<span translate="no">451 4.7.1 &lt;try&gt; later &amp; again</span>'


def test_journal_release_and_expiry_details_are_said_in_japanese() -> None:
    journal = str(event_detail(JA, "gmail_routing_copy: 2 recipients, envelope confidence medium, spoof of own domain"))
    assert '受信者 <span translate="no">2</span> 人' in journal and "自組織ドメインのなりすまし" in journal
    released = "released from quarantine by ann (digest link); queued for delivery without re-filtering"
    assert str(event_detail(JA, released)).startswith('<span translate="no">ann (digest link)</span> が検疫から')
    expired = "quarantined message expired after retention (high_confidence_phish); entry 01K7Q removed"
    assert "(高確度フィッシング)" in str(event_detail(JA, expired))
