"""History search benchmark: bulk-load synthetic message history, then time analyst searches.

    .venv-test/bin/python bench/history_search.py                  # 1,000,000 rows, scratch PostgreSQL database
    .venv-test/bin/python bench/history_search.py --rows 100000 --queries 100
    .venv-test/bin/python bench/history_search.py --url postgresql+psycopg://user@host/db   # an EMPTY database
    .venv-test/bin/python bench/history_search.py --quick          # 2,000 rows: checks the script works

Without --url a scratch database `mw_bench_<random>` is created on the local PostgreSQL and dropped at the
end (--keep keeps it). The schema comes from the real migrations; rows are loaded with COPY (secondary
indexes are dropped during the load and rebuilt from their own definitions, as a bulk import would).
Every timed search goes through `mailwarden.store.History.search`, the code path the CLI and API use.
Target: p95 < 200 ms over all searches.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from mailwarden.ids import new_id
from mailwarden.model import Category, Direction
from mailwarden.store import Database, History, HistoryQuery

TARGET_P95_MS = 200.0
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
QUICK_ROWS, QUICK_QUERIES = 2000, 10
DAYS = 30

WORDS = """
invoice payment order shipment delivery account update verify password reset security alert notice
meeting agenda minutes report quarterly annual budget forecast review approval request urgent action
required reminder confirmation receipt statement balance transfer wire bank card credit debit refund
offer discount sale deal free limited exclusive newsletter weekly monthly digest news event webinar
invitation conference registration ticket booking travel flight hotel reservation itinerary schedule
project status plan roadmap release version build deploy incident outage maintenance ticket support
customer client partner vendor supplier contract agreement proposal quote purchase procurement legal
compliance audit policy training onboarding welcome team lunch party holiday vacation leave office
remote hybrid workplace hiring interview candidate resume offer salary benefits payroll tax document
signature sign docusign shared file folder drive access permission expire expired suspended locked
unusual activity login attempt device location voicemail fax scan printer delivery parcel package
tracking customs fee pending failed undeliverable returned mailbox storage full quota upgrade premium
subscription renewal cancel trial product launch feature announcement survey feedback results winner
prize lottery congratulations claim reward bonus gift voucher coupon crypto bitcoin investment stock
market opportunity loan mortgage insurance quote health pharmacy pills weight dating singles casino
""".split()  # noqa: SIM905  # a word list reads better as text

FIRST_NAMES = """
anna ben carla david emma felix grace hana ivan julia kenji lena marco nina omar paula quentin rosa
sam tara umar vera wei xavier yuki zoe alex chris dana eli fatima george haruto isabel jon kim
""".split()  # noqa: SIM905
ROLES = "info sales support billing noreply news marketing hr admin accounts service team alerts".split()  # noqa: SIM905
TLDS = ["com", "net", "org", "de", "fr", "jp", "co.uk", "io", "biz", "info", "ru", "cn", "com.br"]
ORG_DOMAINS = ("corp.example", "corp-mail.example", "eu.corp.example")
OTHER_ORG = ("acme", ("acme.example",))

# Share of inbound mail per verdict category (skewed the way an inbound mail stream is) and the action.
INBOUND_CATEGORIES: list[tuple[Category, float, str, int]] = [
    (Category.CLEAN, 0.615, "deliver", 1),
    (Category.BULK, 0.14, "junk", 5),
    (Category.SPAM, 0.14, "junk", 6),
    (Category.HIGH_CONFIDENCE_SPAM, 0.06, "quarantine", 9),
    (Category.PHISH, 0.02, "junk", 6),
    (Category.HIGH_CONFIDENCE_PHISH, 0.005, "quarantine", 9),
    (Category.MALWARE, 0.003, "quarantine", 1),
    (Category.RULE, 0.015, "redirect", 1),
    (Category.SCAN_ERROR, 0.002, "quarantine", 0),
]
OUTBOUND_CATEGORIES: list[tuple[Category, float, str, int]] = [
    (Category.CLEAN, 0.975, "deliver", 1),
    (Category.SPAM, 0.015, "deliver", 6),
    (Category.RULE, 0.01, "reject", 1),
]

# Column order of the rows `generate` yields.
MESSAGE_COLUMNS = (
    "id",
    "organisation",
    "received_at",
    "direction",
    "mode",
    "source",
    "sender",
    "sender_domain",
    "from_address",
    "subject",
    "internet_message_id",
    "size",
    "sha256",
    "client_ip",
    "category",
    "scl",
    "bcl",
    "phish",
    "action",
    "applied",
    "verdict",
)
RECIPIENT_COLUMNS = ("message_id", "address", "domain", "position", "field", "status")


class Zipf:
    """Draws items with probability ~ 1 / rank^s: a few senders and words are everywhere, most are rare."""

    def __init__(self, items: list[str], rng: random.Random, s: float = 1.07) -> None:
        self.items = items
        self.rng = rng
        self.cum = list(accumulate(1.0 / (rank**s) for rank in range(1, len(items) + 1)))

    def __call__(self) -> str:
        return self.items[bisect_left(self.cum, self.rng.random() * self.cum[-1])]


@dataclass
class Samples:
    """Values seen while loading, so searches ask for things that exist (and some that are rare)."""

    senders: list[str] = field(default_factory=list)
    sender_domains: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    end: datetime = field(default_factory=lambda: datetime.now(UTC))


def build_population(rng: random.Random) -> dict[str, Any]:
    external_domains = sorted(
        {f"{rng.choice(WORDS)}{rng.choice(WORDS)}{rng.randrange(100)}.{rng.choice(TLDS)}" for _ in range(2100)}
    )[:2000]
    rng.shuffle(external_domains)
    domain_pick = Zipf(external_domains, rng, 0.9)
    senders: set[str] = set()
    while len(senders) < 5000:
        local = rng.choice(ROLES) if rng.random() < 0.5 else f"{rng.choice(FIRST_NAMES)}.{rng.randrange(1000)}"
        senders.add(f"{local}@{domain_pick()}")
    internal = sorted({f"{rng.choice(FIRST_NAMES)}.{i}@{rng.choice(ORG_DOMAINS)}" for i in range(8000)})
    external_rcpts: set[str] = set()
    while len(external_rcpts) < 12000:
        external_rcpts.add(f"{rng.choice(FIRST_NAMES)}{rng.randrange(10000)}@{domain_pick()}")
    sender_list = sorted(senders)
    rng.shuffle(sender_list)
    internal_list = list(internal)
    rng.shuffle(internal_list)
    external_list = sorted(external_rcpts)
    rng.shuffle(external_list)
    return {
        "external_senders": Zipf(sender_list, rng),
        "internal_users": Zipf(internal_list, rng, 0.8),
        "external_recipients": Zipf(external_list, rng),
        "words": Zipf(WORDS, rng, 0.9),
        "all_senders": sender_list,
        "all_domains": external_domains,
        "all_recipients": internal_list + external_list,
    }


def pick_category(rng: random.Random, table: list[tuple[Category, float, str, int]]) -> tuple[Category, str, int]:
    r = rng.random()
    for category, share, action, scl in table:
        r -= share
        if r <= 0:
            return category, action, scl
    return table[0][0], table[0][2], table[0][3]


def subject_for(rng: random.Random, words: Zipf) -> str:
    text = " ".join(words() for _ in range(rng.randint(2, 7)))
    text = text[0].upper() + text[1:]
    roll = rng.random()
    if roll < 0.15:
        return "Re: " + text
    if roll < 0.2:
        return "Fwd: " + text
    if roll < 0.3:
        return f"{text} #{rng.randrange(100000)}"
    return text


def receive_times(rng: random.Random, rows: int, end: datetime) -> list[datetime]:
    """`rows` times over DAYS days, busier in working hours, sorted (mail arrives in time order)."""
    start = end - timedelta(days=DAYS)
    span = (end - start).total_seconds()
    out: list[float] = []
    while len(out) < rows:
        t = rng.random() * span
        hour = (t / 3600) % 24
        if rng.random() < 0.35 + 0.65 * max(0.0, math.sin((hour - 6) / 14 * math.pi)):
            out.append(t)
    out.sort()
    return [start + timedelta(seconds=t) for t in out]


Row = tuple[Any, ...]


def generate(rng: random.Random, rows: int, samples: Samples) -> Iterator[tuple[Row, list[Row]]]:
    """Yields (message row, recipient rows) in id order."""
    pop = build_population(rng)
    end = datetime.now(UTC).replace(microsecond=0)
    times = receive_times(rng, rows, end)
    samples.start, samples.end = times[0], times[-1]
    keep_every = max(1, rows // 5000)
    for n, at in enumerate(times):
        roll = rng.random()
        organisation = "corp" if rng.random() < 0.85 else OTHER_ORG[0]
        if roll < 0.78:
            direction = Direction.INBOUND
            sender = pop["external_senders"]() if rng.random() > 0.01 else ""
            rcpts = {pop["internal_users"]() for _ in range(recipient_count(rng))}
            category, action, scl = pick_category(rng, INBOUND_CATEGORIES)
        elif roll < 0.95:
            direction = Direction.OUTBOUND
            sender = pop["internal_users"]()
            rcpts = {pop["external_recipients"]() for _ in range(recipient_count(rng))}
            category, action, scl = pick_category(rng, OUTBOUND_CATEGORIES)
        else:
            direction = Direction.INTERNAL
            sender = pop["internal_users"]()
            rcpts = {pop["internal_users"]() for _ in range(recipient_count(rng))}
            category, action, scl = Category.INTERNAL, "deliver", -1
        if organisation != "corp":
            sender = sender.replace("corp", "acme") if direction is not Direction.INBOUND else sender
            rcpts = {r.replace("corp", "acme") for r in rcpts}
        mid = new_id(at)
        sender_domain = sender.rsplit("@", 1)[1] if sender else None
        bcl = rng.randint(6, 9) if category is Category.BULK else rng.randint(0, 3)
        phish = "phish" if category is Category.PHISH else "high_confidence" if "phish" in category else "none"
        monitor = organisation == "corp"
        imid = f"<{secrets.token_hex(12)}@{sender_domain or 'mailer-daemon.invalid'}>"
        verdict = {
            "direction": direction.value,
            "category": category.value,
            "scl": scl,
            "bcl": bcl,
            "phish": phish,
            "score": round(rng.random() * 12, 3),
            "malware": ["Win.Trojan.Agent"] if category is Category.MALWARE else [],
            "rule_hits": [],
            "auth": {"spf": rng.choice(["pass", "pass", "pass", "softfail", "fail"]), "dkim": "pass"},
            "disposition": {"action": action, "reason": category.value, "applied": not monitor},
            "stages": [
                {"stage": "connection", "outcome": "clean", "findings": [], "duration_ms": 0.4},
                {"stage": "malware", "outcome": "clean", "findings": [], "duration_ms": 3.1},
                {"stage": "spam", "outcome": "detected" if scl >= 5 else "clean", "findings": [], "duration_ms": 5.2},
            ],
            "scan_errors": [],
        }
        row = (
            mid,
            organisation,
            at,
            direction.value,
            "monitor" if monitor else "enforce",
            "journal" if monitor else "smtp",
            sender,
            sender_domain,
            sender or None,
            subject_for(rng, pop["words"]),
            imid,
            rng.randint(2_000, 80_000) if rng.random() < 0.9 else rng.randint(80_000, 15_000_000),
            secrets.token_hex(32),
            f"203.0.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            category.value,
            scl,
            bcl,
            phish,
            action,
            not monitor,
            json.dumps(verdict),
        )
        rcpt_rows = [
            (mid, address, address.rsplit("@", 1)[1], pos, "envelope", "recorded" if monitor else "delivered")
            for pos, address in enumerate(sorted(rcpts))
        ]
        if n % keep_every == 0:
            samples.message_ids.append(imid)
            if sender:
                samples.senders.append(sender)
                samples.sender_domains.append(sender_domain or "")
            samples.recipients.append(rcpt_rows[0][1])
        yield row, rcpt_rows
    # Rare values too: an analyst also searches for senders and recipients that barely occur.
    samples.senders.extend(rng.sample(pop["all_senders"], 200))
    samples.sender_domains.extend(rng.sample(pop["all_domains"], 200))
    samples.recipients.extend(rng.sample(pop["all_recipients"], 200))


def recipient_count(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.7:
        return 1
    if r < 0.85:
        return 2
    if r < 0.97:
        return rng.randint(3, 5)
    return rng.randint(6, 20)


# -- loading -------------------------------------------------------------------------------------


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load(url: str, rows: int, seed: int) -> tuple[Samples, dict[str, float]]:
    rng = random.Random(seed)
    samples = Samples()
    timings: dict[str, float] = {}
    with psycopg.connect(libpq_url(url)) as conn:
        if conn.execute("SELECT count(*) FROM messages").fetchone() != (0,):
            sys.exit("the database already holds messages: give an empty (migrated or new) database")
        conn.execute("SET maintenance_work_mem = '512MB'")
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i"
            " JOIN pg_class c ON c.relname = i.indexname JOIN pg_index x ON x.indexrelid = c.oid"
            " WHERE i.tablename IN ('messages', 'recipients') AND NOT x.indisprimary"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        t0 = time.perf_counter()
        recipient_count_total = 0
        with tempfile.TemporaryFile("w+", encoding="utf-8") as spill:
            copy_messages = sql.SQL("COPY messages ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, MESSAGE_COLUMNS))
            )
            with conn.cursor() as cur, cur.copy(copy_messages) as copy:
                for n, (row, rcpt_rows) in enumerate(generate(rng, rows, samples), 1):
                    copy.write_row(row)
                    for r in rcpt_rows:
                        spill.write("\t".join(map(str, r)) + "\n")
                    recipient_count_total += len(rcpt_rows)
                    if n % 100_000 == 0:
                        print(f"  generated and copied {n:,} messages", file=sys.stderr)
            timings["copy messages"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            spill.seek(0)
            copy_rcpts = sql.SQL("COPY recipients ({}) FROM STDIN").format(
                sql.SQL(", ").join(map(sql.Identifier, RECIPIENT_COLUMNS))
            )
            with conn.cursor() as cur, cur.copy(copy_rcpts) as copy:
                while chunk := spill.read(1 << 20):
                    copy.write(chunk)
            timings["copy recipients"] = time.perf_counter() - t1
        conn.commit()
        t2 = time.perf_counter()
        for _, definition in indexes:
            conn.execute(definition)  # the migration's own index definitions, rebuilt after the load
        conn.commit()
        timings["build indexes"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE messages")
        conn.execute("VACUUM ANALYZE recipients")
        timings["vacuum analyze"] = time.perf_counter() - t3
        timings["recipients"] = recipient_count_total
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
        print(f"  database size after load: {size[0] if size else '?'}", file=sys.stderr)
    return samples, timings


# -- searching -----------------------------------------------------------------------------------


def query_mix(rng: random.Random, s: Samples) -> dict[str, Callable[[], HistoryQuery]]:
    def window(days: float) -> tuple[datetime, datetime]:
        span = (s.end - s.start).total_seconds() - days * 86400
        start = s.start + timedelta(seconds=rng.random() * max(span, 0))
        return start, start + timedelta(days=days)

    def recent(days: float) -> datetime:
        return s.end - timedelta(days=days)

    common_words = Zipf(list(WORDS), rng, 0.9)  # the same ranking the subjects were built with

    def word() -> str:
        # Half the time a word as frequent as in the mail itself ("invoice" is in a third of all
        # subjects), half the time any word: common words are the hard case for an index.
        return common_words() if rng.random() < 0.5 else rng.choice(WORDS)

    categories = [Category.PHISH, Category.MALWARE, Category.HIGH_CONFIDENCE_PHISH, Category.SPAM, Category.BULK]
    pairs = [
        (Direction.OUTBOUND, Category.SPAM),
        (Direction.INBOUND, Category.PHISH),
        (Direction.INBOUND, Category.MALWARE),
        (Direction.OUTBOUND, Category.RULE),
        (Direction.INBOUND, Category.HIGH_CONFIDENCE_SPAM),
        (Direction.INTERNAL, Category.SPAM),  # never happens: the worst case for a keyset scan
    ]

    def time_range() -> HistoryQuery:
        start, end = window(rng.choice([1 / 24, 1, 2, 7]))
        return HistoryQuery(start=start, end=end)

    def combined() -> HistoryQuery:
        choice = rng.randrange(4)
        if choice == 0:
            domain = "@" + rng.choice(s.sender_domains)
            return HistoryQuery(sender=domain, category=rng.choice(categories), start=recent(7))
        if choice == 1:
            return HistoryQuery(recipient=rng.choice(s.recipients), subject=word(), start=recent(14))
        if choice == 2:
            return HistoryQuery(
                direction=Direction.INBOUND, category=Category.PHISH, subject=word(), organisation="corp"
            )
        return HistoryQuery(sender=rng.choice(s.senders), recipient="@" + rng.choice(ORG_DOMAINS), start=recent(30))

    return {
        "time range": time_range,
        "sender": lambda: HistoryQuery(sender=rng.choice(s.senders)),
        "sender domain": lambda: HistoryQuery(sender="@" + rng.choice(s.sender_domains)),
        "recipient": lambda: HistoryQuery(recipient=rng.choice(s.recipients)),
        "subject words": lambda: HistoryQuery(
            subject=" ".join(word() for _ in range(rng.choice([1, 1, 2, 2, 3]))),
            start=recent(rng.choice([2, 7, 30])),
        ),
        "message-id": lambda: HistoryQuery(internet_message_id=rng.choice(s.message_ids)),
        "category + time": lambda: HistoryQuery(category=rng.choice(categories), start=recent(rng.choice([1, 7, 30]))),
        "direction + category": lambda: HistoryQuery(direction=(p := rng.choice(pairs))[0], category=p[1]),
        "combined": combined,
    }


def run_searches(url: str, samples: Samples, queries: int, seed: int, explain: bool) -> dict[str, list[float]]:
    rng = random.Random(seed + 1)
    db = Database(url)
    history = History(db)
    mix = query_mix(rng, samples)
    kinds = [*mix, "second page"]
    for _ in range(20):  # warm the connection pool and the planner's caches; not timed
        history.search(mix[rng.choice(list(mix))]())
    results: dict[str, list[float]] = defaultdict(list)
    slowest: dict[str, tuple[float, HistoryQuery]] = {}
    for n in range(queries):
        kind = kinds[n % len(kinds)]
        if kind == "second page":
            while True:
                query = mix[rng.choice(list(mix))]()
                first = history.search(query)
                if first.next_cursor:
                    break
            query.cursor = first.next_cursor
        else:
            query = mix[kind]()
        t = time.perf_counter()
        history.search(query)
        ms = (time.perf_counter() - t) * 1000
        results[kind].append(ms)
        if ms > slowest.get(kind, (0.0, query))[0]:
            slowest[kind] = (ms, query)
    if explain:
        for kind, (ms, query) in slowest.items():
            print(f"\n-- slowest {kind} ({ms:.1f} ms): {query}")
            print(explain_plan(db, history, query))
    db.close()
    return results


def explain_plan(db: Database, history: History, query: HistoryQuery) -> str:
    from sqlalchemy import select, text

    from mailwarden.store.schema import MessageRow

    stmt = select(MessageRow.id).where(*history._filters(query)).order_by(MessageRow.id.desc()).limit(query.limit + 1)
    compiled = stmt.compile(db.engine, compile_kwargs={"literal_binds": True})
    with db.engine.connect() as conn:
        return "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}")))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def report(results: dict[str, list[float]], timings: dict[str, float], rows: int) -> bool:
    print(f"\nhistory search over {rows:,} messages ({int(timings.get('recipients', 0)):,} recipient rows)")
    load_total = sum(v for k, v in timings.items() if k != "recipients")
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items() if k != "recipients")
    print(f"load: {load_total:.1f} s ({parts})\n")
    print(f"{'query type':<22}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    everything: list[float] = []
    for kind, values in results.items():
        everything.extend(values)
        print(
            f"{kind:<22}{len(values):>5}{statistics.median(values):>10.1f}"
            f"{percentile(values, 95):>10.1f}{max(values):>10.1f}"
        )
    overall = percentile(everything, 95)
    print(
        f"{'all':<22}{len(everything):>5}{statistics.median(everything):>10.1f}{overall:>10.1f}{max(everything):>10.1f}"
    )
    met = overall < TARGET_P95_MS
    verdict = "MET" if met else "NOT MET"
    print(f"\ntarget p95 < {TARGET_P95_MS:.0f} ms: {verdict} (p95 = {overall:.1f} ms)")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--url", help="PostgreSQL URL of an empty database (default: a scratch database)")
    parser.add_argument("--admin-url", default=os.environ.get("MAILWARDEN_BENCH_ADMIN_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--explain", action="store_true", help="print the plan of the slowest search per type")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run that checks the script works (CI): its figures mean nothing, nor is the target judged",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.queries = QUICK_ROWS, QUICK_QUERIES

    scratch = None
    url = args.url
    if url is None:
        scratch = f"mw_bench_{secrets.token_hex(4)}"
        with psycopg.connect(libpq_url(args.admin_url), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        url = make_url(args.admin_url).set(database=scratch).render_as_string(hide_password=False)
        print(f"scratch database {scratch}", file=sys.stderr)
    try:
        db = Database(url)
        db.migrate()
        db.close()
        samples, timings = load(url, args.rows, args.seed)
        results = run_searches(url, samples, args.queries, args.seed, args.explain)
        met = report(results, timings, args.rows)
    finally:
        if scratch and not args.keep:
            with psycopg.connect(libpq_url(args.admin_url), autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
            print(f"dropped scratch database {scratch}", file=sys.stderr)
    return 0 if met or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
