"""RFC 5424 messages and octet-counting frames, byte for byte."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mailwarden.errors import ConfigError
from mailwarden.export.rfc5424 import (
    Rfc5424,
    check_sd_id,
    facility_code,
    header_field,
    octet_frame,
    sd_param_value,
    timestamp,
)
from mailwarden.export.sinks.syslog import SyslogSink
from tests.export_events import detection_finding, email_activity
from tests.fakes.tls import make_pki

LAYOUT = Rfc5424(facility=16, hostname="mw1.example.com", app_name="mailwarden", procid="4242")


def test_a_json_message_has_every_header_field_and_the_body_as_one_line() -> None:
    event = email_activity(1, subject="line one\nline two 日本語", severity_id=3)
    message = LAYOUT.message(event)
    head, _, msg = message.partition(b" - ")
    assert head == b"<132>1 2026-03-14T09:26:54.589000Z mw1.example.com mailwarden 4242 EmailActivity"
    assert b"\n" not in msg
    assert json.loads(msg) == event.body
    assert "日本語".encode() in msg  # UTF-8 as is, not \u escapes


def test_a_cef_message_carries_the_cef_line() -> None:
    layout = Rfc5424(facility=16, hostname="h", app_name="mailwarden", procid="1", fmt="cef")
    assert b" DetectionFinding - CEF:0|mailwarden|" in layout.message(detection_finding(2))


@pytest.mark.parametrize(("ocsf", "syslog"), [(0, 5), (1, 6), (2, 5), (3, 4), (4, 3), (5, 2), (6, 1), (99, 5)])
def test_pri_is_facility_times_8_plus_the_mapped_severity(ocsf: int, syslog: int) -> None:
    message = LAYOUT.message(email_activity(1, severity_id=ocsf))
    assert message.startswith(f"<{16 * 8 + syslog}>1 ".encode())


def test_structured_data_names_the_uid_when_an_sd_id_is_set() -> None:
    layout = Rfc5424(facility=1, hostname="h", app_name="a", procid="1", sd_id="mailwarden@32473")
    event = email_activity(5)
    assert f' EmailActivity [mailwarden@32473 uid="{event.uid}"] {{'.encode() in layout.message(event)


def test_the_bom_marks_utf8_only_when_asked() -> None:
    layout = Rfc5424(facility=1, hostname="h", app_name="a", procid="1", utf8_bom=True)
    assert b" - \xef\xbb\xbf{" in layout.message(email_activity(1))
    assert b"\xef\xbb\xbf" not in LAYOUT.message(email_activity(1))


def test_header_fields_keep_only_printable_ascii_within_their_limits() -> None:
    assert header_field("mail host.example.com", 255) == "mailhost.example.com"
    assert header_field("メール", 48) == "-"
    assert header_field(None, 32) == "-"
    assert header_field("x" * 40, 32) == "x" * 32


def test_timestamps_are_utc_with_microseconds() -> None:
    tokyo = dt.datetime(2026, 3, 14, 18, 26, 53, 5, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    assert timestamp(tokyo) == "2026-03-14T09:26:53.000005Z"
    assert timestamp(dt.datetime(2026, 3, 14, 9, 0)) == "2026-03-14T09:00:00.000000Z"


def test_an_octet_frame_counts_bytes_not_characters() -> None:
    assert octet_frame("日本".encode()) == b"6 \xe6\x97\xa5\xe6\x9c\xac"
    message = LAYOUT.message(email_activity(1, subject="請求書\n"))
    length, _, rest = octet_frame(message).partition(b" ")
    assert int(length) == len(rest) == len(message)


def test_sd_param_values_escape_quote_backslash_and_bracket() -> None:
    assert sd_param_value('a"b\\c]d') == 'a\\"b\\\\c\\]d'


@pytest.mark.parametrize("bad", ["mailwarden", "mail warden@1", "mw@x", "@123", 'a"b@1', "x" * 30 + "@12345"])
def test_a_private_sd_id_needs_a_name_and_an_enterprise_number(bad: str) -> None:
    with pytest.raises(ConfigError, match="sd_id"):
        check_sd_id(bad)


def test_facilities_by_name_or_number() -> None:
    assert facility_code("local0") == 16
    assert facility_code("MAIL") == 2
    assert facility_code(23) == 23
    for bad in ("local8", 24, -1):
        with pytest.raises(ConfigError, match="facility"):
            facility_code(bad)


def test_a_sink_refuses_unknown_settings_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="transport"):
        SyslogSink("s", "127.0.0.1", 6514, transport="sctp")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="format"):
        SyslogSink("s", "127.0.0.1", 6514, format="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ca_file"):
        SyslogSink("s", "127.0.0.1", 6514, ca_file="/nonexistent/ca.pem")
    with pytest.raises(ConfigError, match="client_key"):
        SyslogSink("s", "127.0.0.1", 6514, client_key="/etc/key.pem")


def test_a_client_certificate_is_loaded_and_a_bad_one_named_without_its_content(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    SyslogSink("s", "127.0.0.1", 6514, ca_file=pki.ca_file, client_cert=pki.cert_file, client_key=pki.key_file)
    wrong_key = tmp_path / "wrong.key"
    wrong_key.write_bytes(pki.ca_file.read_bytes())  # a certificate where the key should be
    with pytest.raises(ConfigError, match="client_cert") as refused:
        SyslogSink("s", "127.0.0.1", 6514, ca_file=pki.ca_file, client_cert=pki.cert_file, client_key=wrong_key)
    assert "BEGIN" not in str(refused.value)
