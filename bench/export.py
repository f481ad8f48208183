"""Event feed benchmark: what the feed adds per message, and events per second per sink.

    .venv-test/bin/python bench/export.py [--corpus ../shared/corpus] [--messages 600] [--repeat 3]
    .venv-test/bin/python bench/export.py --quick        # 40 messages, 1 run: checks the script works

Corpus messages (SpamAssassin ham and spam, read-only) are scanned by the product's processor (untimed) into
history records. Then, timed in CPU of this process, median of the runs:
  1. the outbox: recording them with the feed's rows against recording them without (the outbox writer
     switched off for the comparison only), per message;
  2. rendering the outbox rows as OCSF 1.3.0 events, per message;
  3. each sink sending all the events: a JSON-lines file, syslog over TLS (RFC 5425) to a private rsyslogd,
     NATS JetStream (127.0.0.1:4222, a stream of its own, every PubAck awaited), and a webhook receiver on
     loopback (plain HTTP, signed batches): events per second (wall clock) and CPU ms per message.
The last line adds 1 + 2 + every sink: the CPU the feed adds per message with every sink on.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailwarden.export.config import FileSink, NatsSink, SinkConfig, SyslogSink, WebhookSink  # noqa: E402
from mailwarden.export.event import ExportEvent  # noqa: E402
from mailwarden.export.ocsf import render  # noqa: E402
from mailwarden.logs import configure as configure_logging  # noqa: E402
from mailwarden.model.trace import EventRecord, MessageRecord  # noqa: E402
from mailwarden.service.export import build_sink  # noqa: E402
from mailwarden.store import Database, History, outbox  # noqa: E402
from mailwarden.store.outbox import Outbox, OutboxItem  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
Scanned = list[tuple[MessageRecord, list[EventRecord]]]


def corpus_messages(root: Path, n: int) -> list[bytes]:
    files = [p for s in ("ham", "spam") for p in sorted((root / "spamassassin" / s).rglob("*")) if p.is_file()]
    files = [p for p in files if not p.name.startswith(".") and p.name not in {"README.md", "MANIFEST.tsv"}]
    step = max(1, len(files) // n)
    return [p.read_bytes() for p in files[::step][:n]]


def scanned(raws: list[bytes], tmp: Path) -> Scanned:
    """History records the way the server makes them (the processor: malware, rules, spam stages)."""
    from tests.unit.export.scanned import processor_in, scan

    with processor_in(tmp) as processor:
        return [scan(processor, raw, to="bob@example.com") for raw in raws]


def cpu(work: Callable[[], Any]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def outbox_cost(records: Scanned, tmp: Path) -> float:
    """CPU seconds per message the outbox adds to recording (with its rows − without)."""

    def record(db_path: Path) -> float:
        db = Database(f"sqlite:///{db_path}")
        db.migrate()
        history = History(db)
        spent = cpu(lambda: [history.record_many(records[i : i + 200]) for i in range(0, len(records), 200)])
        db.close()
        return spent

    with_rows = record(tmp / f"with-{secrets.token_hex(3)}.sqlite3")
    original = outbox.append
    outbox.append = lambda session, rows: None  # type: ignore[assignment]
    try:
        without = record(tmp / f"without-{secrets.token_hex(3)}.sqlite3")
    finally:
        outbox.append = original  # type: ignore[assignment]
    return max(0.0, with_rows - without) / len(records)


def rows_of(records: Scanned, tmp: Path) -> list[OutboxItem]:
    db = Database(f"sqlite:///{tmp / f'rows-{secrets.token_hex(3)}.sqlite3'}")
    db.migrate()
    History(db).record_many(records)
    rows = Outbox(db).after(0, limit=10**9)
    db.close()
    return rows


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def sinks(tmp: Path) -> Iterator[list[SinkConfig]]:
    """Every sink, each against a real peer on loopback."""
    from tests.integration.rsyslog import private_rsyslog

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        with private_rsyslog() as rsyslog:
            yield [
                FileSink(type="file", name="file", path=tmp / "events.jsonl"),
                SyslogSink(type="syslog", name="syslog-tls", host="127.0.0.1", port=rsyslog.tls_port,
                           transport="tls", ca_file=rsyslog.pki.ca_file),
                NatsSink(type="nats", name="nats", subject=f"bench.{secrets.token_hex(4)}",
                         stream=f"BENCH_{secrets.token_hex(4).upper()}", create_stream=True),
                WebhookSink(type="webhook", name="webhook", url=f"http://127.0.0.1:{receiver.server_port}/feed",
                            secret="bench-secret"),  # type: ignore[arg-type]
            ]  # fmt: skip
    finally:
        receiver.shutdown()
        receiver.server_close()


async def send_all(cfg: SinkConfig, batches: list[list[ExportEvent]]) -> tuple[float, float]:
    """(events per wall second, CPU seconds) for one sink sending every batch."""
    sink = build_sink(cfg)
    try:
        await sink.send(batches[0][:1])  # connect and warm up
        cpu0, wall0 = time.process_time(), time.monotonic()
        for batch in batches:
            await sink.send(batch)
        wall, spent = time.monotonic() - wall0, time.process_time() - cpu0
    finally:
        await sink.close()
    return sum(len(b) for b in batches) / wall, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 messages, 1 run: checks the script works")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.repeat = 40, 1
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory(prefix="mw-bench-export-") as name:
        tmp = Path(name)
        records = scanned(corpus_messages(args.corpus, args.messages), tmp)
        n = len(records)
        outbox_ms = statistics.median(outbox_cost(records, tmp) for _ in range(args.repeat)) * 1000
        rows = rows_of(records, tmp)
        render_runs = [
            cpu(lambda: [render(r.seq, r.uid, r.kind, r.at, r.payload) for r in rows]) for _ in range(args.repeat)
        ]
        render_ms = statistics.median(render_runs) * 1000 / n
        events = [render(r.seq, r.uid, r.kind, r.at, r.payload) for r in rows]
        batches = [[e for row in events[i : i + 200] for e in row] for i in range(0, len(events), 200)]
        total = sum(len(b) for b in batches)
        print(f"{n} messages, {total} events ({total / n:.1f} per message), {args.repeat} runs (medians)")
        print(f"outbox rows written with history: {outbox_ms:.3f} ms CPU per message")
        print(f"OCSF rendering:                   {render_ms:.3f} ms CPU per message")
        added = outbox_ms + render_ms
        print(f"{'sink':<12} {'events/s':>10} {'CPU ms/message':>15}")
        with sinks(tmp) as configs:
            for cfg in configs:
                runs = [asyncio.run(send_all(cfg, batches)) for _ in range(args.repeat)]
                rate = statistics.median(r[0] for r in runs)
                per_message = statistics.median(r[1] for r in runs) * 1000 / n
                added += per_message
                print(f"{cfg.name:<12} {rate:>10.0f} {per_message:>15.3f}")
        print(f"added CPU per message with every sink on: {added:.3f} ms (target < 0.5 ms)")


if __name__ == "__main__":
    main()
