"""The provider's verdict kept with the message: stored, read back, searched, counted per category."""

from __future__ import annotations

from datetime import timedelta

from mailwarden.model import Category
from mailwarden.model.provider import Agreement, Provider, ProviderCategory, ProviderVerdict
from mailwarden.service.provider_report import provider_report
from mailwarden.store import History, HistoryQuery
from mailwarden.store.reports import Reports, Window

from .records import T0, MakeRecord

GMAIL_CLEAN = ProviderVerdict(Provider.GOOGLE, ProviderCategory.CLEAN, fields={"x_gm_spam": "0", "x_gm_phishy": "0"})
M365_SPAM = ProviderVerdict(
    Provider.MICROSOFT_365, ProviderCategory.SPAM, scl=6, bcl=2, fields={"sfv": "SPM", "cat": "SPM", "scl": "6"}
)


def seed(history: History, make_record: MakeRecord) -> dict[str, str]:
    ids = {}
    for minute, (label, category, provider) in enumerate(
        (
            ("missed malware", Category.MALWARE, GMAIL_CLEAN),
            ("missed phish", Category.HIGH_CONFIDENCE_PHISH, GMAIL_CLEAN),
            ("agreed clean", Category.CLEAN, GMAIL_CLEAN),
            ("provider only", Category.CLEAN, M365_SPAM),
            ("agreed spam", Category.SPAM, M365_SPAM),
            ("clean bulk", Category.BULK, GMAIL_CLEAN),
            ("no provider", Category.MALWARE, None),
        )
    ):
        rec = make_record(
            minutes=minute, subject=label, category=category, provider=provider, source="journal",
            internet_message_id=f"<{minute}@sender.example>",
        )  # fmt: skip
        history.record(rec)
        ids[label] = rec.id
    return ids


def test_the_provider_verdict_is_read_back_with_how_it_compares(history: History, make_record: MakeRecord) -> None:
    ids = seed(history, make_record)

    missed = history.get(ids["missed malware"]).summary
    assert missed.provider == GMAIL_CLEAN
    assert missed.agreement is Agreement.PROVIDER_MISSED
    only = history.get(ids["provider only"]).summary
    assert only.provider == M365_SPAM
    assert only.agreement is Agreement.PROVIDER_ONLY
    assert history.get(ids["agreed spam"]).summary.agreement is Agreement.AGREE
    assert history.get(ids["clean bulk"]).summary.agreement is Agreement.DIFFER
    none = history.get(ids["no provider"]).summary
    assert (none.provider, none.agreement) == (None, None)


def test_the_trace_finds_what_the_provider_passed_and_mailwarden_flagged(
    history: History, make_record: MakeRecord
) -> None:
    seed(history, make_record)

    def subjects(**filters: object) -> list[str]:
        return [m.subject for m in history.search(HistoryQuery(**filters)).items]  # type: ignore[arg-type]

    assert subjects(agreement=Agreement.PROVIDER_MISSED) == ["missed phish", "missed malware"]
    assert subjects(agreement=Agreement.PROVIDER_ONLY) == ["provider only"]
    assert subjects(provider_category=ProviderCategory.SPAM) == ["agreed spam", "provider only"]
    assert subjects(agreement=Agreement.PROVIDER_MISSED, category=Category.MALWARE) == ["missed malware"]
    # paging through the filter with the cursor
    first = history.search(HistoryQuery(agreement=Agreement.PROVIDER_MISSED, limit=1))
    assert [m.subject for m in first.items] == ["missed phish"]
    rest = history.search(HistoryQuery(agreement=Agreement.PROVIDER_MISSED, limit=1, cursor=first.next_cursor))
    assert [m.subject for m in rest.items] == ["missed malware"]


def test_the_report_counts_the_agreement_matrix_and_lists_the_missed(history: History, make_record: MakeRecord) -> None:
    seed(history, make_record)
    history.record(make_record(at=T0 - timedelta(days=3), category=Category.MALWARE, provider=GMAIL_CLEAN))

    report = provider_report(Reports(history.db), history, Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1)))

    assert report.total == 6  # the message without a provider verdict and the one outside the window are not in
    assert report.matrix["clean"] == {"clean": 1, "spam": 0, "bulk": 1, "phish": 1, "malware": 1, "unknown": 0}
    assert report.matrix["spam"] == {"clean": 1, "spam": 1, "bulk": 0, "phish": 0, "malware": 0, "unknown": 0}
    assert (report.provider_missed, report.provider_only) == (2, 1)
    assert report.missed_by_category == {"malware": 1, "phish": 1, "spam": 0}
    assert report.agreement_percent == 100 * 2 / 6
    assert [m.subject for m in report.missed] == ["missed phish", "missed malware"]
    other = provider_report(
        Reports(history.db), history, Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1), organisation="x")
    )
    assert (other.total, other.missed) == (0, [])
