"""A message's timeline details in the user's language, where the recorded English has a known shape.

History keeps each event's detail as the text its producer wrote, in English (`enforce/record.py`,
`enforce/outcome.py`, the delivery agent). The shapes below are read back and said in the user's language;
their values (addresses, hosts, codes, the policy's reasons) stay as they are, marked `translate="no"`.
Any other detail is shown as recorded, marked the same way.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from mailwarden.i18n import DEFAULT_LANGUAGE, Translator

# (the recorded shape, the catalogue key saying it, the groups that are enum values: group → enum kind)
SHAPES: tuple[tuple[re.Pattern[str], str, dict[str, str]], ...] = (
    (
        re.compile(r"would have: (?P<action>[a-z_]+) \((?P<reason>.+)\)"),
        "timeline.would_have_reason",
        {"action": "action"},
    ),
    (re.compile(r"would have: (?P<action>[a-z_]+)"), "timeline.would_have", {"action": "action"}),
    (
        re.compile(r"(?P<category>[a-z_]+) SCL:(?P<scl>-?\d+) BCL:(?P<bcl>\d+); (?P<findings>.+)"),
        "timeline.scan_findings",
        {"category": "category"},
    ),
    (
        re.compile(r"(?P<category>[a-z_]+) SCL:(?P<scl>-?\d+) BCL:(?P<bcl>\d+)"),
        "timeline.scan",
        {"category": "category"},
    ),
    (re.compile(r"internal mail: not scanned"), "timeline.internal", {}),
    (re.compile(r"delivered to (?P<host>.+)"), "timeline.delivered", {}),
    (re.compile(r"DSN to the sender for (?P<recipients>.+)"), "timeline.dsn", {}),
    (re.compile(r"NDR to (?P<sender>.+)"), "timeline.ndr", {}),
    (re.compile(r"malware notification to (?P<to>.+)"), "timeline.malware_notification", {}),
    (re.compile(r"incident report to (?P<to>.+)"), "timeline.incident_report", {}),
    (re.compile(r"copy of a suspicious outbound message to (?P<to>.+)"), "timeline.suspicious_copy", {}),
    (re.compile(r"another journal copy merged: (?P<count>\d+) new recipients"), "timeline.journal_merged", {}),
    (re.compile(r"processing failed: held in quarantine"), "timeline.processing_failed", {}),
    (
        re.compile(r"(?P<format>[a-z0-9_]+): (?P<count>\d+) recipients, envelope confidence (?P<confidence>[a-z]+)"),
        "timeline.journal",
        {},
    ),
    (
        re.compile(
            r"(?P<format>[a-z0-9_]+): (?P<count>\d+) recipients, envelope confidence (?P<confidence>[a-z]+), "
            r"spoof of own domain"
        ),
        "timeline.journal_spoof",
        {},
    ),
    (
        re.compile(r"released from quarantine by (?P<who>.+); queued for delivery without re-filtering"),
        "timeline.released",
        {},
    ),
    (
        re.compile(
            r"quarantined message expired after retention \((?P<reason>[a-z_]+)\); entry (?P<entry>\S+) removed"
        ),
        "timeline.expired",
        {"reason": "quarantine_reason"},
    ),
    (
        re.compile(r"would-have entry expired after retention \((?P<reason>[a-z_]+)\); entry (?P<entry>\S+) removed"),
        "timeline.expired_would_have",
        {"reason": "quarantine_reason"},
    ),
)
# the Receive event: "listener NAME from [IP] helo=... tls=... auth=..." (any part may be missing)
RECEIVE = re.compile(r"(?:listener (?P<listener>\S+))? ?(?:from \[(?P<ip>[^\]]+)\])? ?(?P<rest>.*)")


def _data(value: str) -> Markup:
    return Markup('<span translate="no">{}</span>').format(value)


def event_detail(t: Translator, detail: str) -> Markup:
    """The detail of one timeline event, said in `t`'s language when its shape is known (in English, the
    recorded words are those words)."""
    if t.language == DEFAULT_LANGUAGE:
        return _data(detail)
    for shape, key, kinds in SHAPES:
        found = shape.fullmatch(detail)
        if found is not None:
            values = {
                name: escape(t.enum(kinds[name], value)) if name in kinds else _data(value)
                for name, value in found.groupdict().items()
            }
            return _said(t, key, values)
    return _receive(t, detail) or _data(detail)


def _said(t: Translator, key: str, values: dict[str, Markup]) -> Markup:
    return escape(t(key)).format(**values) if values else escape(t(key))


def _receive(t: Translator, detail: str) -> Markup | None:
    found = RECEIVE.fullmatch(detail)
    if found is None or not (found["listener"] or found["ip"]):
        return None
    parts: list[Markup] = []
    if found["listener"]:
        parts.append(_said(t, "timeline.listener", {"value": _data(found["listener"])}))
    if found["ip"]:
        parts.append(_said(t, "timeline.client", {"value": _data(found["ip"])}))
    if found["rest"]:
        parts.append(_data(found["rest"]))
    return Markup(" · ").join(parts)
