"""All times in the user's time zone: the `mw_tz` cookie names an IANA zone, and the `when` filter shows a
datetime in it with the zone's abbreviation (`2026-01-02 09:00 JST`).

The cookie is set from the browser's own zone (Intl API, by static/console.js) on the first page, or
chosen on the time zone page; without a valid one, times are in UTC. Stored times are UTC; a datetime
without a zone is taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from jinja2 import pass_context
from jinja2.runtime import Context

TZ_COOKIE = "mw_tz"
FORMATS = {
    "minutes": "%Y-%m-%d %H:%M",
    "seconds": "%Y-%m-%d %H:%M:%S",
    "ms": "%Y-%m-%d %H:%M:%S.%f",
    "date": "%Y-%m-%d",
}


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_of(name: str | None) -> tuple[str, tzinfo]:
    """The zone a cookie names, as (name, zone); ("UTC", UTC) when it names none or an unknown one."""
    text = (name or "").strip()
    if text and len(text) <= 64 and text != "UTC":
        found = _zone(text)
        if found is not None:
            return text, found
    return "UTC", UTC


@lru_cache(maxsize=1)
def zone_names() -> list[str]:
    """Every IANA zone name this system knows, sorted, UTC first."""
    return ["UTC", *sorted(name for name in available_timezones() if name != "UTC" and "/" in name)]


def when(value: datetime | None, zone: tzinfo, style: str = "minutes") -> str:
    """`value` in `zone`, in one of FORMATS, followed by the zone's abbreviation; "" for None."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(zone)
    text = local.strftime(FORMATS.get(style, FORMATS["minutes"]))
    if style == "ms":
        text = text[:-3]
    if style == "date":
        return text
    return f"{text} {local.tzname() or 'UTC'}"


@pass_context
def when_filter(context: Context, value: datetime | None, style: str = "minutes") -> str:
    """The template filter: `{{ m.received_at|when("seconds") }}` in the zone the page renders for."""
    zone = context.get("tz_zone")
    return when(value, zone if isinstance(zone, tzinfo) else UTC, style)
