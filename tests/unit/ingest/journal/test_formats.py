"""Which journal input a message is, precise errors for broken ones, and fuzzing: nothing but parse errors."""

from __future__ import annotations

import base64
import quopri

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailwarden.ingest.journal import (
    JournalEnvelope,
    JournalFormat,
    JournalParseError,
    detect_format,
    unwrap,
)
from tests import hostile_mail
from tests.hostile_mail import FOUND_BY_FUZZING
from tests.unit.ingest.journal.helpers import (
    ORG,
    ORIGINAL,
    REPORT_LINES,
    build_report,
    fixture,
    run,
)

# ---- format detection -------------------------------------------------------------------------


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
