"""The provider's verdict of a journal copy: Microsoft 365's and Google's fields read and normalised."""

from __future__ import annotations

import pytest

from mailwarden.ingest.journal.verdicts import google_verdict, microsoft_verdict
from mailwarden.model.provider import Provider, ProviderCategory
from tests.unit.ingest.journal.helpers import ORIGINAL, build_report, run

INBOUND_REPORT_LINES = (
    "Sender: billing@vendor.example.net",
    "Subject: Invoice",
    "Message-Id: <inv-1@vendor.example.net>",
    "Recipient: ap@example.com",
)


def inbound_original(*headers: bytes) -> bytes:
    return (
        b"From: Vendor Billing <billing@vendor.example.net>\r\n"
        b"To: ap@example.com\r\n"
        b"Subject: Invoice\r\n"
        b"Message-ID: <inv-1@vendor.example.net>\r\n"
        b"X-MS-Exchange-Organization-MessageDirectionality: Incoming\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"\r\nPay now.\r\n"
    )


def exchange(*headers: bytes) -> ProviderCategory | None:
    env = run(build_report(INBOUND_REPORT_LINES, inbound_original(*headers)))
    return env.provider_verdict.category if env.provider_verdict else None


def gmail_copy(*headers: bytes) -> bytes:
    return (
        b"X-Gm-Original-To: ap@example.com\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"X-Journal-Direction: inbound\r\n"
        b"From: Vendor Billing <billing@vendor.example.net>\r\n"
        b"To: ap@example.com\r\n"
        b"Subject: Invoice\r\n"
        b"Message-ID: <inv-2@vendor.example.net>\r\n"
        b"\r\nPay now.\r\n"
    )


def test_an_exchange_report_keeps_microsoft_365s_verdict_with_its_fields() -> None:
    env = run(
        build_report(
            INBOUND_REPORT_LINES,
            inbound_original(
                b"X-Forefront-Antispam-Report: CIP:198.51.100.7;CTRY:;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;"
                b"H:mx.vendor.example.net;PTR:;CAT:NONE;SFS:;DIR:INB;",
                b"X-MS-Exchange-Organization-SCL: 1",
                b"X-Microsoft-Antispam: BCL:3;ARA:13230040;",
            ),
        )
    )

    verdict = env.provider_verdict
    assert verdict is not None
    assert verdict.provider is Provider.MICROSOFT_365
    assert verdict.category is ProviderCategory.CLEAN
    assert (verdict.scl, verdict.bcl) == (1, 3)
    assert verdict.fields == {"cat": "NONE", "sfv": "NSPM", "scl": "1", "bcl": "3", "dir": "INB"}
    assert verdict.shown() == "CAT:NONE SFV:NSPM SCL:1 BCL:3 DIR:INB"


@pytest.mark.parametrize(
    ("forefront", "expected"),
    [
        (b"SFV:NSPM;CAT:MALW;SCL:1;DIR:INB;", ProviderCategory.MALWARE),  # the policy's category wins
        (b"SFV:SPM;CAT:HPHSH;SCL:9;DIR:INB;", ProviderCategory.PHISH),
        (b"SFV:SPM;CAT:SPOOF;SCL:5;DIR:INB;", ProviderCategory.PHISH),
        (b"SFV:SPM;CAT:HSPM;SCL:9;DIR:INB;", ProviderCategory.SPAM),
        (b"SFV:NSPM;CAT:BULK;SCL:6;DIR:INB;", ProviderCategory.BULK),
        (b"SFV:SPM;CAT:NONE;SCL:5;DIR:INB;", ProviderCategory.SPAM),
        (b"SFV:SKB;DIR:INB;", ProviderCategory.SPAM),  # blocked sender in the anti-spam policy
        (b"SFV:SFE;DIR:INB;", ProviderCategory.CLEAN),  # the user's Safe Senders let it through
        (b"SFV:SKA;SCL:-1;DIR:INB;", ProviderCategory.CLEAN),
        (b"SFV:NSPM;SRV:BULK;DIR:INB;", ProviderCategory.BULK),
        (b"sfv:spm;cat:phsh;dir:inb;", ProviderCategory.PHISH),  # codes in any case
        (b"SCL:7;DIR:INB;", ProviderCategory.SPAM),  # no SFV or CAT: the SCL decides
        (b"SCL:0;DIR:INB;", ProviderCategory.CLEAN),
        (b"SFV:XYZ;DIR:INB;", ProviderCategory.UNKNOWN),  # a code we do not know is no verdict
    ],
)
def test_forefront_fields_map_to_mailwardens_categories(forefront: bytes, expected: ProviderCategory) -> None:
    assert exchange(b"X-Forefront-Antispam-Report: " + forefront) is expected


def test_the_organisation_scl_comes_before_the_forefront_one_and_bad_levels_are_dropped() -> None:
    env = run(
        build_report(
            INBOUND_REPORT_LINES,
            inbound_original(
                b"X-Forefront-Antispam-Report: SCL:1;DIR:INB;",
                b"X-MS-Exchange-Organization-SCL: 6",
                b"X-Microsoft-Antispam: BCL:42;",
            ),
        )
    )
    assert env.provider_verdict is not None
    assert env.provider_verdict.category is ProviderCategory.SPAM
    assert env.provider_verdict.scl == 6
    assert env.provider_verdict.bcl is None  # 42 is no BCL
    assert env.provider_verdict.fields["bcl"] == "42"  # but it is kept as written


def test_a_report_without_verdict_fields_has_no_provider_verdict() -> None:
    assert run(build_report()).provider_verdict is None  # direction fields only
    assert exchange(b"X-Forefront-Antispam-Report: DIR:INB;CIP:198.51.100.7;") is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ((b"X-Gm-Spam: 0", b"X-Gm-Phishy: 0"), ProviderCategory.CLEAN),
        ((b"X-Gm-Spam: 1", b"X-Gm-Phishy: 0"), ProviderCategory.SPAM),
        ((b"X-Gm-Spam: 0", b"X-Gm-Phishy: 1"), ProviderCategory.PHISH),
        ((b"X-Gm-Spam: 1", b"X-Gm-Phishy: 1"), ProviderCategory.PHISH),
        ((b"X-Gm-Spam: 0",), ProviderCategory.CLEAN),
        ((b"X-Gm-Spam: maybe", b"X-Gm-Phishy: 0"), ProviderCategory.UNKNOWN),
    ],
)
def test_gmail_fields_map_to_mailwardens_categories(headers: tuple[bytes, ...], expected: ProviderCategory) -> None:
    env = run(gmail_copy(*headers), smtp_mail_from="billing@vendor.example.net")
    assert env.provider_verdict is not None
    assert env.provider_verdict.provider is Provider.GOOGLE
    assert env.provider_verdict.category is expected
    assert env.provider_verdict.scl is None


def test_gmail_copy_fields_are_kept_as_written() -> None:
    env = run(gmail_copy(b"X-Gm-Spam: 0", b"X-Gm-Phishy: 1"), smtp_mail_from="billing@vendor.example.net")
    assert env.provider_verdict is not None
    assert env.provider_verdict.shown() == "X-Gm-Spam:0 X-Gm-Phishy:1"


def test_a_gmail_copy_without_spam_fields_and_a_bcc_copy_have_no_provider_verdict() -> None:
    assert run(gmail_copy(), smtp_mail_from="billing@vendor.example.net").provider_verdict is None
    bcc = run(
        ORIGINAL.replace(b"Subject: Plan", b"X-Gm-Spam-Lookalike: 1\r\nSubject: Plan"),
        smtp_rcpt_to=["journal+in.bob=example.com@journal.example.net"],
    )
    assert bcc.provider_verdict is None


def test_microsoft_fields_on_a_gmail_copy_are_ignored() -> None:
    env = run(
        gmail_copy(b"X-Gm-Spam: 0", b"X-Forefront-Antispam-Report: SFV:SPM;CAT:MALW;"),
        smtp_mail_from="billing@vendor.example.net",
    )
    assert env.provider_verdict is not None
    assert env.provider_verdict.category is ProviderCategory.CLEAN


def test_normalisers_survive_any_value() -> None:
    long_value = "A" * 10_000
    verdict = microsoft_verdict({"sfv": long_value, "scl": "nine", "bcl": "", "cat": "\x00"})
    assert verdict is not None
    assert verdict.category is ProviderCategory.UNKNOWN
    assert verdict.scl is None
    assert len(verdict.fields["sfv"]) == 64
    assert google_verdict({"x_gm_spam": "\r\n 1 \t"}) is not None
    assert google_verdict({"x_gm_spam": "\r\n 1 \t"}).category is ProviderCategory.SPAM  # type: ignore[union-attr]
    assert google_verdict({}) is None
