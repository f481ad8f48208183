"""Journal unwrapping: the spec fixtures (tests/data/journal/) and reports built in code."""

from __future__ import annotations

import base64
import dataclasses
import quopri
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailwarden.errors import ConfigError
from mailwarden.ingest.journal import (
    EnvelopeConfidence,
    JournalEnvelope,
    JournalFormat,
    JournalParseError,
    JournalRecipient,
    detect_format,
    unwrap,
)
from mailwarden.model.direction import Direction
from tests import hostile_mail
from tests.hostile_mail import FOUND_BY_FUZZING

DATA = Path(__file__).resolve().parents[2] / "data" / "journal"
ORG = {"example.com"}
JOURNAL_RCPT = ["journal+tenant1@journal.example.net"]

ORIGINAL = (
    b"Received: from mbx01.example.com (192.0.2.20) by mail.example.com\r\n"
    b" (192.0.2.10); Tue, 14 Oct 2025 09:15:02 +0000\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1; h=from:to:subject;\r\n"
    b"\tbh=AAAA; b=BBBB\r\n"
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Partner <partner@example.org>\r\n"
    b"Subject: Plan\r\n"
    b"Message-ID: <plan-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"X-MS-Exchange-Organization-MessageDirectionality: Originating\r\n"
    b"X-MS-Exchange-Organization-AuthAs: Internal\r\n"
    b"\r\n"
    b"Trailing spaces stay   \r\n"
    b"and so does the last line break.\r\n"
)
REPORT_LINES = (
    "Sender: alice@example.com",
    "Subject: Plan",
    "Message-Id: <plan-1@example.com>",
    "To: partner@example.org",
)


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def build_report(
    lines: tuple[str, ...] | list[str] = REPORT_LINES,
    original: bytes = ORIGINAL,
    *,
    marker: bytes = b"X-MS-Journal-Report:\r\n",
    charset: str = "us-ascii",
    body: bytes | None = None,
    rfc822_headers: bytes = b"Content-Type: message/rfc822\r\n",
    closing: bool = True,
) -> bytes:
    """A journal report around `original`, the way Exchange lays it out (CRLF, two parts)."""
    text = body if body is not None else "".join(f"{line}\r\n" for line in lines).encode(charset)
    out = (
        b"From: Microsoft Outlook <MicrosoftExchange0000@example.com>\r\n"
        b"To: <journal+tenant1@journal.example.net>\r\n"
        b"Subject: Plan\r\n"
        b"Message-ID: <jr-test@example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="JRB"\r\n' + marker + b"\r\n"
        b"--JRB\r\n"
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n"
        b"\r\n" + text + b"\r\n"
        b"--JRB\r\n" + rfc822_headers + b"\r\n" + original + b"\r\n--JRB--\r\n"
    )
    return out if closing else out[: out.rindex(b"\r\n--JRB--")]


def run(raw: bytes, **kwargs: object) -> JournalEnvelope:
    kwargs.setdefault("smtp_mail_from", "")
    kwargs.setdefault("smtp_rcpt_to", JOURNAL_RCPT)
    kwargs.setdefault("org_domains", ORG)
    return unwrap(raw, **kwargs)  # type: ignore[arg-type]


# ---- Exchange: the spec fixtures ---------------------------------------------------------------


def test_exchange_outbound_fixture_parses_as_the_spec_says() -> None:
    env = run(fixture("exchange_outbound.eml"))

    assert env.source_format is JournalFormat.EXCHANGE_2007
    assert env.sender == "alice@example.com"
    assert env.subject == "Q3 budget draft"
    assert env.original_message_id == "<a1b2c3d4.5678@mail.example.com>"
    assert env.journal_msg_id == "<jr-0001-7f3a9c2e@example.com>"
    assert env.network_message_id == "00000000-1111-2222-3333-444444444444"
    assert env.recipients == (
        JournalRecipient("partner@example.org", "to"),
        JournalRecipient("bob@example.com", "cc"),
        JournalRecipient("carol@example.com", "to", expanded_from="finance@example.com"),
        JournalRecipient("dave@example.com", "to", expanded_from="finance@example.com"),
        JournalRecipient("erin@example.com", "bcc"),
        JournalRecipient("frank.home@example.org", "cc", forwarded_from="frank@example.com"),
    )
    assert b"erin" not in env.original  # the Bcc recipient is known only from the report
    assert b"Message-ID: <a1b2c3d4.5678@mail.example.com>" in env.original
    assert env.on_behalf_of is None
    assert env.direction_hint is Direction.OUTBOUND
    assert "ms_directionality:originating" in env.direction_evidence
    assert env.spoof_of_own_domain is False
    assert env.envelope_confidence is EnvelopeConfidence.HIGH
    assert env.wrapped_in_ndr is False


def test_exchange_outbound_fixture_original_is_byte_exact_with_crlf() -> None:
    raw = fixture("exchange_outbound.eml")
    start = raw.index(b"Content-Type: message/rfc822\r\n\r\n") + len(b"Content-Type: message/rfc822\r\n\r\n")
    end = raw.index(b"\r\n------=_JR_0001--")

    original = run(raw).original

    assert original == raw[start:end]
    assert original.startswith(b"Received: from mbx01.example.com")
    assert original.endswith(b"--inner-b1--\r\n")
    assert original.count(b"\n") == original.count(b"\r\n")


def test_exchange_inbound_fixture_with_basic_recipient_lines() -> None:
    env = run(fixture("exchange_inbound.eml"))

    assert env.sender == "billing@vendor.example.net"
    assert env.recipients == (
        JournalRecipient("ap@example.com", "recipient"),
        JournalRecipient("grace@example.com", "recipient"),
    )
    assert env.original_message_id == "<inv4471@vendor.example.net>"
    assert env.direction_hint is Direction.INBOUND
    assert env.provider_hints["auth_results"].startswith("spf=fail (sender IP is 198.51.100.7)")
    assert "compauth=fail reason=001" in env.provider_hints["auth_results"]
    assert env.spoof_of_own_domain is False  # AuthAs Anonymous, but the sender is not ours
    assert env.original.startswith(b"From: Vendor Billing")
    assert env.original.endswith(b"</a></p>")  # the line break before the boundary is the boundary's


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("exchange_outbound.eml", JournalFormat.EXCHANGE_2007),
        ("exchange_inbound.eml", JournalFormat.EXCHANGE_2007),
        ("gmail_inbound.eml", JournalFormat.GMAIL),
        ("bcc_inbound.eml", JournalFormat.BCC),
    ],
)
def test_detect_format_of_fixtures(name: str, expected: JournalFormat) -> None:
    assert detect_format(fixture(name)) is expected


def test_original_is_byte_exact_when_built_around_a_signed_message() -> None:
    env = run(build_report())

    assert env.original == ORIGINAL
    assert env.dedupe_key == run(build_report()).dedupe_key


@pytest.mark.parametrize("encoding", [b"7bit", b"8bit", b"binary"])
def test_identity_transfer_encodings_keep_raw_8bit_bytes(encoding: bytes) -> None:
    original = ORIGINAL.replace(b"Subject: Plan", b"Subject: Pl\xc3\xa4n \xff")
    headers = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: " + encoding + b"\r\n"

    assert run(build_report(original=original, rfc822_headers=headers)).original == original


def test_base64_encoded_rfc822_part_is_decoded() -> None:
    encoded = base64.encodebytes(ORIGINAL).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    headers = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n"

    env = run(build_report(original=encoded, rfc822_headers=headers))

    assert env.original == ORIGINAL
    assert env.direction_hint is Direction.OUTBOUND  # hints read from the decoded original


def test_quoted_printable_rfc822_part_is_decoded() -> None:
    original = ORIGINAL.replace(b"Subject: Plan", b"Subject: caf\xc3\xa9")
    encoded = original.replace(b"=", b"=3D").replace(b"\xc3\xa9", b"=C3=A9")
    headers = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n"

    assert run(build_report(original=encoded, rfc822_headers=headers)).original == original


def test_rfc822_part_without_blank_line_after_its_headers() -> None:
    raw = build_report().replace(b"Content-Type: message/rfc822\r\n\r\n", b"Content-Type: message/rfc822\r\n")

    assert run(raw).original == ORIGINAL


def test_report_body_fields_are_case_insensitive_and_unknown_lines_ignored() -> None:
    lines = [
        "SENDER: <alice@example.com>",
        "x-unknown-field: whatever",
        "message-ID: <plan-1@example.com>",
        "this line is not a field",
        "bcc: Erin <erin@example.com>",
        "RECIPIENT: carol@example.com,expanded: finance@example.com",
        "On-Behalf-Of: boss@example.com",
    ]

    env = run(build_report(lines))

    assert env.sender == "alice@example.com"
    assert env.original_message_id == "<plan-1@example.com>"
    assert env.recipients == (
        JournalRecipient("erin@example.com", "bcc"),
        JournalRecipient("carol@example.com", "recipient", expanded_from="finance@example.com"),
    )
    assert env.on_behalf_of == "boss@example.com"


def test_repeated_recipient_lines_are_deduplicated() -> None:
    lines = [*REPORT_LINES, "To: partner@example.org", "to: PARTNER@example.org", "Cc: bob@example.com"]

    env = run(build_report(lines))

    assert [r.address for r in env.recipients] == ["partner@example.org", "bob@example.com"]


def test_missing_message_id_line_falls_back_to_the_original_header() -> None:
    lines = [line for line in REPORT_LINES if not line.startswith("Message-Id")]

    env = run(build_report(lines))

    assert env.original_message_id == "<plan-1@example.com>"
    assert env.dedupe_key == run(build_report()).dedupe_key


def test_missing_message_id_everywhere_falls_back_to_a_hash_of_the_original() -> None:
    lines = [line for line in REPORT_LINES if not line.startswith("Message-Id")]
    original = ORIGINAL.replace(b"Message-ID: <plan-1@example.com>\r\n", b"")

    env = run(build_report(lines, original))
    same = run(build_report([*lines, "Cc: bob@example.com"], original))
    other = run(build_report(lines, original + b"one more line\r\n"))

    assert env.original_message_id is None
    assert env.dedupe_key == same.dedupe_key
    assert env.dedupe_key != other.dedupe_key


def test_forked_reports_share_the_dedupe_key() -> None:
    raw = fixture("exchange_outbound.eml")
    marker = b"Cc: bob@example.com\r\n"
    first_fork = raw[: raw.index(marker)] + raw[raw.index(b"Bcc: erin") :]
    second_fork = raw.replace(b"To: partner@example.org\r\n", b"").replace(b"Bcc: erin@example.com\r\n", b"")

    a, b = run(first_fork), run(second_fork)

    assert {r.address for r in a.recipients} != {r.address for r in b.recipients}
    assert a.dedupe_key == b.dedupe_key
    other_sender = run(raw.replace(b"Sender: alice@example.com", b"Sender: bob@example.com"))
    assert other_sender.dedupe_key != a.dedupe_key


@pytest.mark.parametrize(
    ("charset", "subject"),
    [("cp1252", "Angebot für Müller – 5 €"), ("iso-2022-jp", "見積書の送付"), ("iso-8859-1", "Café\x85 ñ")],
)
def test_report_body_in_a_non_utf8_charset(charset: str, subject: str) -> None:
    lines = [
        "Sender: alice@example.com",
        f"Subject: {subject}",
        "Message-Id: <plan-1@example.com>",
        "To: x@example.org",
    ]

    env = run(build_report(lines, charset=charset))

    assert env.subject == subject
    assert env.recipients == (JournalRecipient("x@example.org", "to"),)


def test_raw_8bit_report_body_without_declared_charset() -> None:
    body = b"Sender: alice@example.com\r\nSubject: Pr\xe9sentation \x80\r\nTo: x@example.org\r\n"

    env = run(build_report(body=body, charset="us-ascii"))

    assert env.sender == "alice@example.com"
    assert env.recipients == (JournalRecipient("x@example.org", "to"),)


def test_base64_encoded_report_body() -> None:
    text = "".join(f"{line}\r\n" for line in REPORT_LINES).encode()
    raw = build_report(body=base64.encodebytes(text).rstrip(b"\n")).replace(
        b"charset=us-ascii\r\n", b"charset=us-ascii\r\nContent-Transfer-Encoding: base64\r\n", 1
    )

    assert run(raw).recipients == (JournalRecipient("partner@example.org", "to"),)


# ---- Exchange: legacy, NDR, spoof, provider hints -----------------------------------------------


@pytest.mark.parametrize("header", [b"Content-Identifier", b"Content-Identifer"])
def test_legacy_2003_report_with_indented_recipient_list(header: bytes) -> None:
    body = (
        b"Sender: Alice <alice@example.com>\r\n"
        b"Message-ID: <plan-1@example.com>\r\n"
        b"Recipients:\r\n"
        b"\tPartner <partner@example.org>\r\n"
        b"\tbob@example.com\r\n"
    )
    raw = build_report(body=body, marker=header + b": ExJournalReport\r\n")

    env = run(raw)

    assert detect_format(raw) is JournalFormat.EXCHANGE_2003
    assert env.source_format is JournalFormat.EXCHANGE_2003
    assert env.sender == "alice@example.com"
    assert env.recipients == (
        JournalRecipient("partner@example.org", "recipient"),
        JournalRecipient("bob@example.com", "recipient"),
    )
    assert env.original == ORIGINAL


def test_internal_transport_header_name_is_detected() -> None:
    raw = build_report(marker=b"X-MS-Exchange-Organization-Journal-Report: \r\n")

    assert detect_format(raw) is JournalFormat.EXCHANGE_2007


def test_journal_report_wrapped_in_an_ndr() -> None:
    ndr = fixture("exchange_ndr_wrapped.eml")
    report = fixture("exchange_outbound.eml")
    assert report in ndr

    env = run(ndr)

    assert detect_format(ndr) is JournalFormat.EXCHANGE_2007
    assert env.wrapped_in_ndr is True
    assert env.journal_msg_id == "<jr-0001-7f3a9c2e@example.com>"
    assert env == dataclasses.replace(run(report), wrapped_in_ndr=True)


def test_ndr_without_a_journal_report_is_a_plain_copy() -> None:
    ndr = (
        b"From: MAILER-DAEMON@example.com\r\nTo: alice@example.com\r\n"
        b'Content-Type: multipart/report; boundary="N"\r\n\r\n'
        b"--N\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--N--\r\n"
    )

    assert detect_format(ndr) is JournalFormat.BCC


SPOOF_ORIGINAL = (
    b"From: CEO <ceo@example.com>\r\n"
    b"To: ap@example.com\r\n"
    b"Subject: Urgent wire\r\n"
    b"Message-ID: <spoof-1@attacker.example.net>\r\n"
    b"X-MS-Exchange-Organization-MessageDirectionality: Originating\r\n"
    b"X-MS-Exchange-Organization-AuthAs: Anonymous\r\n"
    b"\r\n"
    b"Pay this today.\r\n"
)


def test_spoof_of_own_domain_from_anonymous_submission() -> None:
    lines = ["Sender: ceo@example.com", "Message-Id: <spoof-1@attacker.example.net>", "Recipient: ap@example.com"]

    env = run(build_report(lines, SPOOF_ORIGINAL))

    assert env.spoof_of_own_domain is True
    assert env.direction_hint is Direction.INBOUND
    assert "ms_authas:anonymous" in env.direction_evidence
    assert "spoof_of_own_domain" in env.direction_evidence


def test_spoof_of_own_domain_from_forefront_direction() -> None:
    original = SPOOF_ORIGINAL.replace(b"Anonymous", b"Internal").replace(
        b"Originating\r\n",
        b"Incoming\r\nX-Forefront-Antispam-Report: CIP:198.51.100.7;SCL:5;SFV:SPM;CAT:SPOOF;DIR:INB;\r\n",
    )
    lines = ["Sender: ceo@example.com", "Recipient: ap@example.com"]

    env = run(build_report(lines, original))

    assert env.spoof_of_own_domain is True
    assert env.provider_hints == {"scl": "5", "sfv": "SPM", "cat": "SPOOF", "dir": "INB"}
    assert env.direction_evidence[:2] == ("ms_directionality:incoming", "forefront_dir:inb")


def test_no_spoof_without_org_domains_or_for_authenticated_senders() -> None:
    lines = ["Sender: ceo@example.com", "Recipient: ap@example.com"]

    assert run(build_report(lines, SPOOF_ORIGINAL), org_domains=()).spoof_of_own_domain is False
    assert run(build_report()).spoof_of_own_domain is False


EXCHANGE_LINES = ["Sender: alice@example.com", "Recipient: bob@example.com"]
MS_DIRECTIONALITY = b"X-MS-Exchange-Organization-MessageDirectionality: Originating\r\n"
MS_AUTH_AS = b"X-MS-Exchange-Organization-AuthAs: Internal\r\n"


@pytest.mark.parametrize(
    ("remove", "add", "originated"),
    [
        ((), b"", True),  # Originating and AuthAs Internal
        ((MS_AUTH_AS,), b"", True),
        ((MS_DIRECTIONALITY,), b"", True),
        ((MS_DIRECTIONALITY, MS_AUTH_AS), b"", False),  # the header firewall stripped them: no evidence
        ((MS_DIRECTIONALITY, MS_AUTH_AS), b"X-Forefront-Antispam-Report: SFV:NSPM;DIR:INT;\r\n", False),
        ((), b"X-Forefront-Antispam-Report: SFV:SPM;DIR:INB;\r\n", False),  # any inbound word wins
    ],
)
def test_an_exchange_report_is_originated_only_on_exchange_s_own_word(
    remove: tuple[bytes, ...], add: bytes, originated: bool
) -> None:
    original = ORIGINAL.replace(b"MIME-Version: 1.0\r\n", b"MIME-Version: 1.0\r\n" + add)
    for header in remove:
        original = original.replace(header, b"")

    env = run(build_report(EXCHANGE_LINES, original))

    assert env.originated is originated


def test_a_spoof_of_an_own_domain_is_never_originated() -> None:
    lines = ["Sender: ceo@example.com", "Recipient: ap@example.com"]

    env = run(build_report(lines, SPOOF_ORIGINAL))  # Originating, but AuthAs Anonymous

    assert env.originated is False and env.spoof_of_own_domain is True


def test_microsoft_provider_hints() -> None:
    original = ORIGINAL.replace(
        b"MIME-Version: 1.0\r\n",
        b"MIME-Version: 1.0\r\n"
        b"X-MS-Exchange-Organization-SCL: 1\r\n"
        b"X-Microsoft-Antispam: BCL:7;\r\n"
        b"X-Forefront-Antispam-Report: CIP:192.0.2.1;SCL:1;SFV:NSPM;CAT:NONE;DIR:OUT;\r\n"
        b"Authentication-Results: spf=pass smtp.mailfrom=example.com;\r\n dkim=pass header.d=example.com\r\n",
    )

    env = run(build_report(original=original))

    assert env.provider_hints == {
        "scl": "1",
        "bcl": "7",
        "sfv": "NSPM",
        "cat": "NONE",
        "dir": "OUT",
        "auth_results": "spf=pass smtp.mailfrom=example.com; dkim=pass header.d=example.com",
    }
    assert env.direction_hint is Direction.OUTBOUND
    assert env.direction_evidence == ("ms_directionality:originating", "forefront_dir:out", "ms_authas:internal")


# ---- Gmail ---------------------------------------------------------------------------------------


def test_gmail_fixture() -> None:
    env = run(fixture("gmail_inbound.eml"), smtp_mail_from="billing@vendor.example.net")

    assert env.source_format is JournalFormat.GMAIL
    assert env.sender == "billing@vendor.example.net"
    assert env.recipients == (JournalRecipient("ap@example.com", "envelope"),)
    assert env.envelope_confidence is EnvelopeConfidence.MEDIUM
    assert env.direction_hint is Direction.INBOUND
    assert env.direction_evidence == ("custom_header:inbound",)
    assert env.provider_hints["x_gm_phishy"] == "1"
    assert env.provider_hints["x_gm_spam"] == "0"
    assert env.provider_hints["auth_results"].startswith("i=1; mx.google.com; spf=fail")
    assert env.original == fixture("gmail_inbound.eml")
    assert env.original_message_id == "<inv4471@vendor.example.net>"


def test_gmail_outbound_copy_adds_header_recipients() -> None:
    raw = (
        b"X-Gm-Original-To: partner@example.org, partner2@example.org\r\n"
        b"X-Gm-Original-To: partner@example.org\r\n"
        b"X-Journal-Direction: outbound\r\n"
        b"From: Alice <alice@example.com>\r\n"
        b"To: Partner <partner@example.org>, other@example.org\r\n"
        b"Cc: bob@example.com\r\n"
        b"Message-ID: <out-1@example.com>\r\n"
        b"\r\nHello\r\n"
    )

    env = run(raw, smtp_mail_from="alice@example.com")

    assert env.recipients == (
        JournalRecipient("partner@example.org", "envelope"),
        JournalRecipient("partner2@example.org", "envelope"),
        JournalRecipient("other@example.org", "header"),
        JournalRecipient("bob@example.com", "header"),
    )
    assert env.direction_hint is Direction.OUTBOUND
    assert env.envelope_confidence is EnvelopeConfidence.MEDIUM


def test_gmail_copy_without_original_to_falls_back_to_headers_with_low_confidence() -> None:
    raw = fixture("gmail_inbound.eml").replace(b"X-Gm-Original-To: ap@example.com\n", b"")

    env = run(raw, smtp_mail_from="")

    assert env.sender == "billing@vendor.example.net"  # From header when MAIL FROM is empty
    assert env.recipients == (JournalRecipient("ap@example.com", "header"),)
    assert env.envelope_confidence is EnvelopeConfidence.LOW


# ---- BCC copies ----------------------------------------------------------------------------------


def test_bcc_copy_with_encoded_recipients() -> None:
    env = run(
        fixture("bcc_inbound.eml"),
        smtp_mail_from="partner@example.org",
        smtp_rcpt_to=[
            "journal+in.alice=example.com@journal.example.net",
            "<journal+in.bob=example.com@journal.example.net>",
        ],
    )

    assert env.source_format is JournalFormat.BCC
    assert env.sender == "partner@example.org"
    assert env.recipients == (
        JournalRecipient("alice@example.com", "envelope"),
        JournalRecipient("bob@example.com", "envelope"),
    )
    assert env.envelope_confidence is EnvelopeConfidence.HIGH
    assert env.direction_hint is Direction.INBOUND
    assert env.direction_evidence == ("bcc_encoding:in",)
    assert env.original == fixture("bcc_inbound.eml")
    assert env.original_message_id == env.journal_msg_id == "<c2@example.org>"


def test_bcc_copy_outbound_encoding() -> None:
    env = run(
        fixture("bcc_inbound.eml"),
        smtp_mail_from="alice@example.com",
        smtp_rcpt_to=["journal+out.partner=example.org@journal.example.net"],
    )

    assert env.recipients == (JournalRecipient("partner@example.org", "envelope"),)
    assert env.direction_hint is Direction.OUTBOUND


def test_bcc_copy_without_encoding_uses_header_recipients() -> None:
    env = run(
        fixture("bcc_inbound.eml"),
        smtp_mail_from="partner@example.org",
        smtp_rcpt_to=["journal@journal.example.net"],
    )

    assert env.recipients == (JournalRecipient("alice@example.com", "header"),)
    assert env.envelope_confidence is EnvelopeConfidence.LOW
    assert env.direction_hint is None
    assert env.direction_evidence == ()


@pytest.mark.parametrize(
    ("rcpts", "originated", "spoof"),
    [
        (["journal+in.bob=example.com@journal.example.net"], False, True),  # came in from the internet
        (["journal@journal.example.net"], False, False),  # nothing says who sent it
        (["journal+out.bob=example.com@journal.example.net"], True, False),  # the submission door's map
        (["journal+out.bob=example.com@j.example.net", "journal+in.carol=example.com@j.example.net"], False, True),
    ],
)
def test_a_bcc_copy_from_an_own_domain_is_originated_only_by_the_out_encoding(
    rcpts: list[str], originated: bool, spoof: bool
) -> None:
    copy = fixture("bcc_inbound.eml").replace(b"partner@example.org", b"ceo@example.com")

    env = run(copy, smtp_mail_from="ceo@example.com", smtp_rcpt_to=rcpts)

    assert env.sender == "ceo@example.com"
    assert (env.originated, env.spoof_of_own_domain) == (originated, spoof)
    assert ("spoof_of_own_domain" in env.direction_evidence) is spoof


def test_a_gmail_copy_is_originated_only_by_its_direction_header() -> None:
    internal = b"X-Gm-Original-To: bob@example.com\r\nFrom: alice@example.com\r\nTo: bob@example.com\r\n\r\nHi\r\n"

    assert run(b"X-Journal-Direction: internal\r\n" + internal, smtp_mail_from="alice@example.com").originated
    assert not run(internal, smtp_mail_from="alice@example.com").originated
    spoof = run(b"X-Journal-Direction: inbound\r\n" + internal, smtp_mail_from="alice@example.com")
    assert not spoof.originated and spoof.spoof_of_own_domain


def postfix_encode(address: str, direction: str = "in") -> str:
    """What the documented Postfix map produces: /^(.+)@([^@]+)$/ journal+in.${1}=${2}@journal.example.net."""
    local, _, domain = address.rpartition("@")
    return f"journal+{direction}.{local}={domain}@journal.example.net"


@given(
    local=st.text(alphabet="abcxyz019.+=-_", min_size=1, max_size=20),
    domain=st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,2}\.(com|org|net)", fullmatch=True),
    direction=st.sampled_from(["in", "out"]),
)
def test_bcc_encoding_round_trips_any_local_part(local: str, domain: str, direction: str) -> None:
    address = f"{local}@{domain}"

    env = run(
        fixture("bcc_inbound.eml"), smtp_mail_from="x@example.org", smtp_rcpt_to=[postfix_encode(address, direction)]
    )

    assert env.recipients == (JournalRecipient(address, "envelope"),)
    assert env.direction_hint is (Direction.INBOUND if direction == "in" else Direction.OUTBOUND)


def test_bcc_encoding_with_a_tenant_tag_and_tricky_local_parts() -> None:
    rcpts = [
        "journal+tenant1+IN.bob+in.x=y=example.com@journal.example.net",
        '"journal+in.a..b=example.com"@j.example.net',
    ]

    env = run(fixture("bcc_inbound.eml"), smtp_mail_from="x@example.org", smtp_rcpt_to=rcpts)

    assert [r.address for r in env.recipients] == ["bob+in.x=y@example.com", "a..b@example.com"]


def test_custom_journal_address_pattern() -> None:
    pattern = r"archive-(?P<dir>in|out)--(?P<local>.+)--at--(?P<domain>[^@]+)@archive\.example\.net"

    env = run(
        fixture("bcc_inbound.eml"),
        smtp_mail_from="partner@example.org",
        smtp_rcpt_to=["archive-in--alice--at--example.com@archive.example.net"],
        journal_address_pattern=pattern,
    )

    assert env.recipients == (JournalRecipient("alice@example.com", "envelope"),)


@pytest.mark.parametrize("pattern", [r"(?P<dir>in|out", r"journal\+(?P<dir>in|out)\.(.+)@"])
def test_bad_journal_address_pattern_is_a_config_error(pattern: str) -> None:
    with pytest.raises(ConfigError, match="journal_address_pattern"):
        run(fixture("bcc_inbound.eml"), smtp_mail_from="a@example.org", journal_address_pattern=pattern)


# ---- malformed input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "journal message is empty"),
        (build_report().replace(b"message/rfc822", b"application/octet-stream"), "has no message/rfc822 part"),
        (build_report(body=b""), "journal report body is empty"),
        (build_report(body=b"\r\n\r\n  \r\n"), "journal report body is empty"),
        (build_report(closing=False), "truncated: its closing MIME boundary is missing"),
        (build_report()[:300], "truncated before its message/rfc822 part"),
        (build_report().replace(b'; boundary="JRB"', b""), "has no boundary parameter"),
        (build_report().replace(b'boundary="JRB"', b'boundary="other"'), "no MIME part delimiter"),
        (
            b"X-MS-Journal-Report:\r\nContent-Type: text/plain\r\n\r\nSender: a@example.com\r\n",
            "no message/rfc822 part (it is a single text/plain part)",
        ),
        (
            build_report(["Subject: x", "To: a@example.org"], ORIGINAL.replace(b"From: Alice", b"X-From: Alice")),
            "no Sender line and the attached original has no From header",
        ),
        (build_report(["Sender: alice@example.com", "Subject: x"]), "no recipient lines"),
        (
            build_report(
                original=b"!!!not base64!!!x",
                rfc822_headers=b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n",
            ),
            "broken base64",
        ),
        (build_report(original=b"  \r\n"), "message/rfc822 part of the journal report is empty"),
        (b"\x00\x01garbage\xff\xfe" * 50, "not an email message"),
        (b"From: a@example.org\r\n\r\nno recipients anywhere\r\n", "BCC copy has no recipients"),
        (b"X-Gm-Spam: 0\r\nSubject: x\r\n\r\nbody\r\n", "Gmail copy has no envelope sender"),
    ],
)
def test_malformed_input_raises_a_precise_error(raw: bytes, message: str) -> None:
    with pytest.raises(JournalParseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(raw)


def test_parse_error_names_the_format() -> None:
    with pytest.raises(JournalParseError) as excinfo:
        run(build_report(body=b""))

    assert excinfo.value.source_format is JournalFormat.EXCHANGE_2007


# ---- robustness ----------------------------------------------------------------------------------

VALID_INPUTS = [
    build_report(),
    fixture("exchange_outbound.eml"),
    fixture("exchange_inbound.eml"),
    fixture("gmail_inbound.eml"),
    fixture("bcc_inbound.eml"),
    fixture("exchange_ndr_wrapped.eml"),
]


def assert_unwraps_or_raises_parse_error(raw: bytes) -> None:
    try:
        result = unwrap(
            raw,
            smtp_mail_from="partner@example.org",
            smtp_rcpt_to=["journal+in.alice=example.com@journal.example.net"],
            org_domains=ORG,
        )
    except JournalParseError:
        return
    assert isinstance(result, JournalEnvelope)
    assert detect_format(raw) is result.source_format


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_anything_but_parse_errors(raw: bytes) -> None:
    assert_unwraps_or_raises_parse_error(raw)


@st.composite
def mutated_reports(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(VALID_INPUTS)))
    for _ in range(draw(st.integers(1, 6))):
        if not raw:
            break
        pos = draw(st.integers(0, len(raw) - 1))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "truncate", "duplicate"]))
        if kind == "delete":
            del raw[pos : pos + draw(st.integers(1, 40))]
        elif kind == "insert":
            snippet = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=20),
                    st.sampled_from(
                        [b"\r\n", b"\n\n", b"--", b"--JRB--", b":", b"<", b",", b"=?", b"Content-Type: ", b"\xff"]
                    ),
                )
            )
            raw[pos:pos] = snippet
        elif kind == "replace":
            raw[pos] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del raw[pos:]
        else:
            end = min(len(raw), pos + draw(st.integers(1, 200)))
            raw[pos:pos] = raw[pos:end]
    return bytes(raw)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_reports())
def test_mutated_reports_never_raise_anything_but_parse_errors(raw: bytes) -> None:
    assert_unwraps_or_raises_parse_error(raw)


@st.composite
def reports_around_hostile_mime(draw: st.DrawFn) -> bytes:
    """Exchange reports and plain copies of hostile messages: hostile charsets in the report body too, and
    originals sent base64 or quoted-printable."""
    original = draw(hostile_mail.messages())
    encoding = draw(st.sampled_from(hostile_mail.TRANSFER_ENCODINGS))
    if encoding == "base64":
        original = base64.encodebytes(original)
    elif encoding == "quoted-printable":
        original = quopri.encodestring(original)
    charset = draw(st.sampled_from(hostile_mail.CHARSETS))
    lines = draw(st.lists(st.sampled_from([*REPORT_LINES, "Recipients:", "  carol@example.com"]), max_size=6))
    body = "".join(f"{line}\r\n" for line in lines).encode() + draw(st.binary(max_size=20))
    headers = f"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: {encoding}\r\n"
    report = build_report(lines, original, charset=charset, body=body, rfc822_headers=headers.encode())
    return draw(st.sampled_from([report, original]))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@example(raw=FOUND_BY_FUZZING[0])
@example(raw=build_report(original=FOUND_BY_FUZZING[2]))
@given(raw=reports_around_hostile_mime())
def test_reports_around_hostile_mime_never_raise_anything_but_parse_errors(raw: bytes) -> None:
    assert_unwraps_or_raises_parse_error(raw)
