"""Syslog messages as RFC 5424 lays them out, and the octet-counting frame of RFC 6587 §3.4.1 / RFC 5425.

Pure: the syslog sink adds only the sockets. The MSG part is the OCSF event as one line of JSON, or its CEF
line; either way it never holds a raw line break, and the octet count makes the frame safe even if it did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from mailwarden.errors import ConfigError
from mailwarden.export.cef import cef_line
from mailwarden.export.event import ExportEvent

Format = Literal["json", "cef"]

FACILITIES: Mapping[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
    "solaris-cron": 15, **{f"local{n}": 16 + n for n in range(8)},
}  # fmt: skip

# OCSF severity_id -> syslog severity (0 emergency ... 7 debug). Unknown and Other read as notice:
# something a person may want to look at, never an alarm.
SYSLOG_SEVERITY: Mapping[int, int] = {0: 5, 1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1, 99: 5}
NOTICE = 5

BOM = b"\xef\xbb\xbf"
NILVALUE = "-"
# Field limits of RFC 5424 §6 (ABNF): HOSTNAME 255, APP-NAME 48, PROCID 128, MSGID 32, SD-NAME 32.
HOSTNAME_MAX, APP_NAME_MAX, PROCID_MAX, MSGID_MAX = 255, 48, 128, 32
_SD_ID = re.compile(r"[\x21-\x7e]{1,32}")
_SD_ID_FORBIDDEN = frozenset('= ]"')


def facility_code(facility: int | str) -> int:
    """A facility by name (`local0`, `mail`, ...) or number (0-23)."""
    code = FACILITIES.get(facility.lower()) if isinstance(facility, str) else facility
    if code is None or not 0 <= code <= 23:
        raise ConfigError(f"unknown syslog facility {facility!r} (a name like local0, or 0-23)", field="facility")
    return code


def header_field(value: str | None, limit: int) -> str:
    """A header field as the ABNF allows it: printable US-ASCII without spaces, at most `limit` long, or `-`."""
    cleaned = "".join(ch for ch in (value or "") if "\x21" <= ch <= "\x7e")[:limit]
    return cleaned or NILVALUE


def check_sd_id(sd_id: str) -> str:
    """A private SD-ID must be `name@<private enterprise number>` (RFC 5424 §7.2.2)."""
    name, at, number = sd_id.partition("@")
    if not (_SD_ID.fullmatch(sd_id) and at and name and number.isdigit()) or _SD_ID_FORBIDDEN & set(sd_id):
        raise ConfigError(f"{sd_id!r} is not name@<enterprise number>", field="sd_id")
    return sd_id


def sd_param_value(value: str) -> str:
    """A PARAM-VALUE with `"`, `\\` and `]` escaped (RFC 5424 §6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds (TIME-SECFRAC allows six digits); a naive time is taken as UTC."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def msgid(event: ExportEvent) -> str:
    """The OCSF class name without spaces (`EmailActivity`, `DetectionFinding`), so a collector can route
    by class without parsing MSG."""
    class_name = event.body.get("class_name")
    return header_field(class_name if isinstance(class_name, str) else f"ocsf{event.class_uid}", MSGID_MAX)


def message_text(event: ExportEvent, fmt: Format) -> str:
    """MSG: the OCSF body as one line of compact JSON (UTF-8, not \\u-escaped), or the CEF line."""
    if fmt == "cef":
        return cef_line(event)
    return json.dumps(event.body, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Rfc5424:
    """The fixed parts of every message one sink sends."""

    facility: int
    hostname: str
    app_name: str
    procid: str
    fmt: Format = "json"
    sd_id: str | None = None  # None: STRUCTURED-DATA is `-` (the uid is in MSG either way)
    utf8_bom: bool = False

    def message(self, event: ExportEvent) -> bytes:
        """`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG` as bytes.

        The BOM is off by default: RFC 5424 allows MSG without it (MSG-ANY), and the JSON and CEF parsers
        of most collectors treat a leading BOM as part of the first field."""
        pri = self.facility * 8 + SYSLOG_SEVERITY.get(event.severity_id, NOTICE)
        sd = f'[{self.sd_id} uid="{sd_param_value(event.uid)}"]' if self.sd_id else NILVALUE
        head = (
            f"<{pri}>1 {timestamp(event.time)} {header_field(self.hostname, HOSTNAME_MAX)} "
            f"{header_field(self.app_name, APP_NAME_MAX)} {header_field(self.procid, PROCID_MAX)} "
            f"{msgid(event)} {sd} "
        )
        return head.encode("ascii") + (BOM if self.utf8_bom else b"") + message_text(event, self.fmt).encode()


def octet_frame(message: bytes) -> bytes:
    """`MSG-LEN SP SYSLOG-MSG`: the receiver reads exactly MSG-LEN octets, whatever they hold."""
    return b"%d %s" % (len(message), message)
