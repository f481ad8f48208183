"""Exchange envelope journal reports: the spec fixtures (tests/data/journal/) and reports built in code."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from mailwarden.ingest.journal import (
    EnvelopeConfidence,
    JournalFormat,
    JournalRecipient,
    detect_format,
)
from mailwarden.model.direction import Direction
from tests.unit.ingest.journal.helpers import (
    ORIGINAL,
    REPORT_LINES,
    build_report,
    fixture,
    run,
)

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
