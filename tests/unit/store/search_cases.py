"""A small known history and the results each search must give; shared by the SQLite and PostgreSQL tests."""

from __future__ import annotations

from datetime import timedelta

from mailwarden.model import Action, Category, Direction
from mailwarden.store import History, HistoryQuery

from .records import T0, build_record

# name → record; minutes after T0 fix the order (newest first in results).
DATASET = {
    "invoice": build_record(
        minutes=0, sender="billing@vendor.example", subject="Your invoice 2026-11", internet_message_id="<inv@vendor>"
    ),
    "phish": build_record(
        minutes=10,
        sender="security@paypa1.example",
        subject="Verify your account now",
        category=Category.PHISH,
        action=Action.QUARANTINE,
    ),
    "spam": build_record(
        minutes=20,
        sender="promo@deals.example",
        recipients=("carol@corp.example",),
        subject="Huge INVOICE discount 100%_off",
        category=Category.SPAM,
        action=Action.JUNK,
    ),
    "outbound": build_record(
        minutes=30,
        sender="bob@corp.example",
        recipients=("billing@vendor.example", "ap@vendor.example"),
        subject="Re: Your invoice 2026-11",
        direction=Direction.OUTBOUND,
    ),
    "outbound_spam": build_record(
        minutes=40,
        sender="bob@corp.example",
        recipients=("x@elsewhere.example",),
        subject="cheap pills",
        direction=Direction.OUTBOUND,
        category=Category.SPAM,
        action=Action.JUNK,
    ),
    "bounce": build_record(minutes=50, sender="", recipients=("bob@corp.example",), subject="Undeliverable"),
    "other_org": build_record(
        minutes=60, sender="billing@vendor.example", organisation="other", recipients=("zed@other.example",)
    ),
    "next_day": build_record(
        minutes=60 * 24, sender="news@Sub.Vendor.Example", subject="Newsletter", category=Category.BULK
    ),
}


def names(history: History, **query: object) -> list[str]:
    by_id = {rec.id: name for name, rec in DATASET.items()}
    page = history.search(HistoryQuery(**query))  # type: ignore[arg-type]
    return [by_id[item.id] for item in page.items]


CASES: list[tuple[dict[str, object], list[str]]] = [
    ({}, ["next_day", "other_org", "bounce", "outbound_spam", "outbound", "spam", "phish", "invoice"]),
    ({"start": T0 + timedelta(minutes=10), "end": T0 + timedelta(minutes=30)}, ["outbound", "spam", "phish"]),
    ({"start": T0 + timedelta(hours=2)}, ["next_day"]),
    ({"end": T0 + timedelta(minutes=5)}, ["invoice"]),
    ({"sender": "billing@vendor.example"}, ["other_org", "invoice"]),
    ({"sender": "BILLING@Vendor.Example"}, ["other_org", "invoice"]),
    ({"sender": "@corp.example"}, ["outbound_spam", "outbound"]),
    ({"sender": "vendor.example"}, ["other_org", "invoice"]),  # a domain, not its subdomains
    ({"sender": "sub.vendor.example"}, ["next_day"]),
    ({"sender": "<>"}, ["bounce"]),
    ({"recipient": "carol@corp.example"}, ["spam"]),
    ({"recipient": "ap@vendor.example"}, ["outbound"]),
    ({"recipient": "@vendor.example"}, ["outbound"]),
    ({"recipient": "corp.example"}, ["next_day", "bounce", "spam", "phish", "invoice"]),
    ({"subject": "invoice"}, ["outbound", "spam", "invoice"]),
    ({"subject": "YOUR invoice"}, ["outbound", "invoice"]),
    ({"subject": "invoice re:"}, ["outbound"]),
    ({"subject": "100%_off"}, ["spam"]),
    ({"subject": "RE"}, ["other_org", "outbound"]),  # short words match as substrings too: "Re:", "report"
    ({"subject": "re invoice"}, ["outbound"]),
    ({"subject": "%"}, ["spam"]),  # LIKE wildcards are matched literally
    ({"subject": "_"}, ["spam"]),
    ({"subject": "no-such-word"}, []),
    ({"internet_message_id": "inv@vendor"}, ["invoice"]),
    ({"internet_message_id": "<inv@vendor>"}, ["invoice"]),
    ({"direction": Direction.OUTBOUND}, ["outbound_spam", "outbound"]),
    ({"category": Category.SPAM}, ["outbound_spam", "spam"]),
    ({"category": Category.MALWARE}, []),
    ({"action": Action.QUARANTINE}, ["phish"]),
    ({"organisation": "other"}, ["other_org"]),
    ({"direction": Direction.OUTBOUND, "category": Category.SPAM}, ["outbound_spam"]),
    (
        {
            "sender": "@corp.example",
            "recipient": "@vendor.example",
            "subject": "invoice",
            "category": Category.CLEAN,
            "start": T0,
            "end": T0 + timedelta(hours=1),
            "organisation": "corp",
        },
        ["outbound"],
    ),
    ({"sender": "@corp.example", "category": Category.PHISH}, []),
]
