"""Outbound limits benchmark: the CPU the sending limits add per outbound message, with the counters in
Redis and in the database (SQLite here), and the cost of the compromised-account signals (the sender's
activity read before the scan and noted after recording).

    .venv-test/bin/python bench/outbound.py [--messages 3000] [--senders 300] [--repeat 3]
    .venv-test/bin/python bench/outbound.py --quick      # 200 messages, 1 run: checks the script works

Each message goes through `OutboundGuard.recorded` (count its recipients, compare with the policy's limits,
restrict when over) exactly as the server calls it after recording; limits are set high enough that nobody
is restricted, so the figure is the steady cost. Redis is the machine's 127.0.0.1:6379 (keys under a prefix
of this run's own, deleted at the end). Medians of the runs, CPU of this process (Redis's own CPU is its own).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailwarden.ids import new_id  # noqa: E402
from mailwarden.logs import configure as configure_logging  # noqa: E402
from mailwarden.model import Action, Category, Direction, Disposition, Mode, Policy, Verdict  # noqa: E402
from mailwarden.model.trace import MessageRecord, RecipientRecord  # noqa: E402
from mailwarden.outbound.counters import RecipientCounter, RedisCounter, SqlCounter  # noqa: E402
from mailwarden.service.outbound import OutboundGuard  # noqa: E402
from mailwarden.service.sender_activity import SenderActivityLookup  # noqa: E402
from mailwarden.store import Database  # noqa: E402
from mailwarden.store.outbound import OutboundCounts  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
POLICY = Policy.model_validate(
    {"outbound_spam": {"external_per_hour": 10000, "internal_per_hour": 10000, "per_day": 10000}}
)


def records(n: int, senders: int) -> list[MessageRecord]:
    now = datetime.now(UTC)
    verdict = Verdict(direction=Direction.OUTBOUND, category=Category.CLEAN, disposition=Disposition(Action.DELIVER))
    return [
        MessageRecord(
            id=new_id(now), organisation="acme", received_at=now, direction=Direction.OUTBOUND, mode=Mode.ENFORCE,
            source="smtp", sender=f"user{i % senders}@acme.example", from_address=None, subject="s",
            internet_message_id=None, size=1000, sha256="ab" * 32, client_ip="10.0.0.1", verdict=verdict,
            applied=True, recipients=[RecipientRecord(f"p{i}@else.example"), RecipientRecord("c@acme.example")],
        )
        for i in range(n)
    ]  # fmt: skip


async def activity(db: Database, batch: list[MessageRecord]) -> float:
    """The compromised-account signals' cost: the read before each scan and the note after recording."""
    lookup = SenderActivityLookup(db, lambda org: frozenset({"acme.example"}))
    own = frozenset({"acme.example"})
    start = time.process_time()
    for i in range(0, len(batch), 50):
        chunk = batch[i : i + 50]
        for r in chunk:
            await lookup.facts("acme", r.sender, [x.address for x in r.recipients], own, r.received_at)
        await lookup.recorded(chunk)
    return (time.process_time() - start) * 1000 / len(batch)


async def run(counter: RecipientCounter, db: Database, batch: list[MessageRecord]) -> float:
    guard = OutboundGuard(db, lambda org: POLICY, lambda org: frozenset({"acme.example"}), counter=counter)
    await guard.recorded(batch[:10])  # warm up (connections, scripts loaded)
    start = time.process_time()
    for i in range(0, len(batch), 50):  # the writer hands records over in batches
        await guard.recorded(batch[i : i + 50])
    return (time.process_time() - start) * 1000 / len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.repeat = 200, 1
    configure_logging("warning", "console")
    prefix = f"mailwarden:bench:{secrets.token_hex(4)}:"
    print(f"{args.messages} outbound messages from {args.senders} senders, {args.repeat} runs (medians)")
    with tempfile.TemporaryDirectory(prefix="mw-bench-outbound-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'm.sqlite3'}")
        db.migrate()
        sql = [asyncio.run(run(SqlCounter(OutboundCounts(db)), db, records(args.messages, args.senders)))
               for _ in range(args.repeat)]  # fmt: skip
        redis_runs = []
        for _ in range(args.repeat):
            counter = RedisCounter.from_url(REDIS_URL, prefix=prefix)
            redis_runs.append(asyncio.run(run(counter, db, records(args.messages, args.senders))))
        signals = [asyncio.run(activity(db, records(args.messages, args.senders))) for _ in range(args.repeat)]
        db.close()
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    print(f"limits with the counters in the database (SQLite): {statistics.median(sql):.3f} ms CPU per message")
    redis_ms = statistics.median(redis_runs)
    print(f"limits with the counters in Redis:                 {redis_ms:.3f} ms CPU per message (target < 0.3)")
    print(f"compromised-account signals (SQLite, read + note):  {statistics.median(signals):.3f} ms CPU per message")


if __name__ == "__main__":
    main()
