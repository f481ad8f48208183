"""CEF lines from OCSF bodies: the fields a SIEM maps, and escaping exactly as the CEF spec says, checked by
reading every line back with a parser that follows the spec."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mailwarden.export.cef import cef_line, escape_extension, escape_header
from mailwarden.export.event import ExportEvent
from tests.export_events import (
    SHA256,
    T0,
    detection_finding,
    email_activity,
    email_file_activity,
    email_url_activity,
    uid,
)

HEADER_FIELDS = 7  # CEF:Version, vendor, product, version, signature id, name, severity
_UNESCAPED_PIPE = re.compile(r"(?<!\\)((?:\\\\)*)\|")
_KEY = re.compile(r"(?:^| )([A-Za-z0-9_]+)=")


def parse(line: str) -> tuple[list[str], dict[str, str]]:
    """Header fields and extensions of a CEF line, unescaped (a reader written from the spec, not from
    the code under test)."""
    parts: list[str] = []
    rest = line
    for _ in range(HEADER_FIELDS):
        match = _find_unescaped_pipe(rest)
        parts.append(re.sub(r"\\([\\|])", r"\1", rest[:match]))
        rest = rest[match + 1 :]
    keys = [m for m in _KEY.finditer(rest) if not _escaped_at(rest, m.end() - 1)]
    extensions = {}
    for i, key in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(rest)
        raw = rest[key.end() : end]
        extensions[key.group(1)] = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), raw)
    return parts, extensions


def _find_unescaped_pipe(text: str) -> int:
    match = _UNESCAPED_PIPE.search(text)
    assert match is not None, f"no field separator in {text!r}"
    return match.end() - 1


def _escaped_at(text: str, index: int) -> bool:
    backslashes = len(text[:index]) - len(text[:index].rstrip("\\"))
    return backslashes % 2 == 1


def test_header_escapes_pipe_and_backslash_and_flattens_line_breaks() -> None:
    assert escape_header("a|b\\c") == "a\\|b\\\\c"
    assert escape_header("two\r\nlines") == "two  lines"
    assert escape_header("a=b") == "a=b"  # `=` is plain text in the header


def test_extension_escapes_equals_backslash_and_line_breaks_but_not_pipe() -> None:
    assert escape_extension("a=b\\c|d") == "a\\=b\\\\c|d"
    assert escape_extension("one\ntwo\rthree") == "one\\ntwo\\rthree"


@pytest.mark.parametrize(
    "subject",
    [
        "plain",
        "a = b",
        "C:\\temp\\new",  # \t and \n inside a path must stay backslash + letter
        "ends with a backslash\\",
        "line one\nline two\r\nline three",
        "fake=extension suser=evil@example.net",
        "pipes | in | the body",
        "請求書の送付について（至急）",
    ],
)
def test_every_subject_reads_back_unchanged(subject: str) -> None:
    _, extensions = parse(cef_line(email_activity(7, subject=subject)))
    assert extensions["msg"] == subject
    assert extensions["suser"] == "alice@example.org"  # the fake `suser=` in the subject did not win


def test_email_activity_fields() -> None:
    header, ext = parse(cef_line(email_activity(3, severity_id=4)))
    assert header == ["CEF:0", "mailwarden", "mailwarden", "0.1.0", "400902", "Message received", "7"]
    assert ext == {
        "src": "198.51.100.7",
        "suser": "alice@example.org",
        "duser": "bob@example.com,carol@example.com",
        "msg": "Quarterly numbers",
        "cs1": "<m3@example.org>",
        "cs1Label": "Message-ID",
        "act": "Quarantined",
        "outcome": "Success",
        "externalId": uid(3),
        "rt": str(int(T0.timestamp() * 1000) + 3000),
    }


def test_file_activity_carries_the_sha256_and_name() -> None:
    _, ext = parse(cef_line(email_file_activity(4)))
    assert ext["fileHash"] == SHA256
    assert ext["fname"] == "invoice.pdf.exe"
    assert ext["fsize"] == "68"
    assert ext["act"] == "Blocked"


def test_file_activity_without_sha256_uses_the_first_hash() -> None:
    event = email_file_activity(4, hashes=[{"algorithm_id": 1, "value": "44d88612fea8a8f36de82e1278abb02f"}])
    assert parse(cef_line(event))[1]["fileHash"] == "44d88612fea8a8f36de82e1278abb02f"


def test_url_activity_carries_the_url_with_its_equals_signs_escaped() -> None:
    line = cef_line(email_url_activity(5, "https://example.net/a?x=1&y=2"))
    assert "request=https://example.net/a?x\\=1&y\\=2" in line
    assert parse(line)[1]["request"] == "https://example.net/a?x=1&y=2"


def test_detection_finding_is_named_by_its_title_and_reads_the_email_from_its_evidence() -> None:
    header, ext = parse(cef_line(detection_finding(6, title="Malware | EICAR \\ test")))
    assert header[4:] == ["200401", "Malware | EICAR \\ test", "9"]
    assert ext["suser"] == "mallory@example.net"
    assert ext["msg"] == "Reset your password"
    assert (ext["cs2"], ext["cs2Label"]) == ("PHISH_URL", "Rule")


def test_an_admin_change_names_its_actor_as_the_source_user() -> None:
    body = {"class_uid": 6003, "activity_id": 3, "actor": {"user": {"name": "admin@example.com"}}}
    assert parse(cef_line(ExportEvent(1, "u1", 6003, 1, T0, body)))[1]["suser"] == "admin@example.com"


@pytest.mark.parametrize(("ocsf", "cef"), [(0, "0"), (1, "1"), (2, "3"), (3, "5"), (4, "7"), (5, "9"), (6, "10")])
def test_severity_maps_onto_cef_0_to_10(ocsf: int, cef: str) -> None:
    assert parse(cef_line(email_activity(1, severity_id=ocsf)))[0][6] == cef


def test_absent_fields_are_left_out_not_sent_empty() -> None:
    body: dict[str, Any] = {"class_uid": 4009, "activity_id": 2, "metadata": {"uid": "u1"}}
    header, ext = parse(cef_line(ExportEvent(1, "u1", 4009, 99, T0, body)))
    assert header == ["CEF:0", "mailwarden", "mailwarden", header[3], "400902", "4009", "0"]
    assert set(ext) == {"externalId", "rt"}


def test_an_ipv6_client_goes_to_the_ipv6_source_field() -> None:
    _, ext = parse(cef_line(email_activity(1, src_endpoint={"ip": "2001:db8::7"})))
    assert "src" not in ext
    assert (ext["c6a2"], ext["c6a2Label"]) == ("2001:db8::7", "Source IPv6 Address")
