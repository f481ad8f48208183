"""SMTP ingest throughput, acceptance latency and memory: journal messages over loopback into the durable spool.

Usage: python bench/smtp_ingest.py [--messages 5000] [--concurrency 1 32] [--fsync on off]
                                   [--connections reuse new] [--processor none done] [--uvloop]
                                   [--flood-clients 20] [--flood-mb 50] [--ordinary-clients 4]
                                   [--cases matrix flood] [--quick]

The server (one journal listener, spool in a fresh temporary directory) runs in this process; the
clients (aiosmtplib) run in child processes so they do not share the server's event loop.

**matrix**: for each combination it prints accepted messages/second and the p50/p99 acceptance
latency: the time from the client writing the end of DATA (`<CR><LF>.<CR><LF>`) to reading the 250,
which covers the server reading the message and committing it to the spool (fsync of file and
directory when on); and the server's peak RSS during the case. `reuse` sends many messages per
connection (EHLO once, then MAIL/RCPT/DATA per message); `new` opens a connection per message
(greeting, EHLO, MAIL, RCPT, DATA, QUIT). `--processor done` runs a stand-in processor that finishes
each entry as it is committed (`entries()` + `done_async`), the steady state of a running service, in
which spool files are recycled instead of created.

**flood**: `--flood-clients` connections each send `--flood-mb` MB of empty lines as one message (the
default limits: 50 MiB per message, 256 MiB of message data in transit over all sessions), while
`--ordinary-clients` connections of another process send ordinary ~4 KB messages back to back. It
prints the server's RSS before and its peak during the flood (VmHWM, reset at the start), what the
flood messages were answered (250, 452 when they gave way to the in-transit limit, other), and the
ordinary messages' count and p50/p99 acceptance latency meanwhile.

`--quick` runs both with tiny inputs in a few seconds (CI runs every bench script that way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from asyncio.subprocess import PIPE
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from mailwarden.ingest.config import SmtpConfig
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp import SessionInfo, SmtpServer
from mailwarden.ingest.spool import Spool

JOURNAL_ADDRESS = "journal@example.com"
_WORDS = tuple(
    [
        "invoice",
        "quarterly",
        "report",
        "meeting",
        "schedule",
        "budget",
        "forecast",
        "review",
        "contract",
        "delivery",
        "payment",
        "customer",
        "project",
        "update",
        "attached",
        "please",
        "confirm",
        "regards",
        "thanks",
        "team",
        "office",
        "account",
        "balance",
        "shipment",
        "order",
        "tracking",
        "release",
        "notes",
        "deadline",
        "approval",
        "signature",
        "draft",
        "final",
        "version",
    ]
)


def synthetic_message(index: int, size: int = 4096) -> bytes:
    """A plausible journal-sized message: relay headers, DKIM, multipart/alternative text and HTML."""
    rng = random.Random(index)
    sender = f"user{rng.randrange(500)}@sender{rng.randrange(40)}.example.org"
    subject = " ".join(rng.choice(_WORDS) for _ in range(6)).capitalize()
    head = (
        f"Received: from mail{rng.randrange(9)}.example.org (mail.example.org [198.51.100.{rng.randrange(254)}])\r\n"
        f"\tby mx.example.com with ESMTPS id {rng.getrandbits(64):016x}; Tue, 14 Oct 2025 09:15:01 +0000\r\n"
        "Received: from laptop (unknown [10.1.2.3]) by mail.example.org; Tue, 14 Oct 2025 09:14:59 +0000\r\n"
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel1;\r\n"
        "\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
        f"\tb={''.join(rng.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop0123456789') for _ in range(170))}\r\n"
        f"From: {sender}\r\nTo: someone{rng.randrange(900)}@example.com\r\nSubject: {subject}\r\n"
        f"Date: Tue, 14 Oct 2025 09:14:59 +0000\r\nMessage-ID: <{index}.{rng.getrandbits(48):x}@example.org>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b1"\r\n\r\n'
    )
    text_lines, html_lines = [], []
    budget = max(size - len(head) - 200, 200) // 2
    while sum(len(line) for line in text_lines) < budget:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(8, 14))).capitalize() + "."
        text_lines.append(sentence + "\r\n")
        html_lines.append(f"<p>{sentence}</p>\r\n")
    body = (
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "".join(text_lines)
        + "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        + "".join(html_lines)
        + "--b1--\r\n"
    )
    return (head + body).encode()


# ---- clients (child processes) -----------------------------------------------------------------
class Client:
    """One aiosmtplib connection that sends journal messages and notes each acceptance latency."""

    def __init__(self, port: int, latencies: list[float]) -> None:
        self.port = port
        self.latencies = latencies
        self.payloads = [synthetic_message(i) + b".\r\n" for i in range(50)]
        self.smtp: Any = None

    async def open(self) -> None:
        import aiosmtplib

        self.smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=self.port, start_tls=False, timeout=60, local_hostname="bench.example.org"
        )
        await self.smtp.connect()
        await self.smtp.ehlo()

    async def send(self, index: int) -> int:
        """One message; its reply code (the latency is noted only for a 250)."""
        await self.smtp.mail(f"sender{index}@example.org")
        await self.smtp.rcpt(JOURNAL_ADDRESS)
        start = await self.smtp.execute_command(b"DATA")
        if start.code != 354:
            raise RuntimeError(f"DATA refused: {start}")
        self.smtp.protocol.write(self.payloads[index % len(self.payloads)])
        written = time.perf_counter()
        reply = await self.smtp.protocol.read_response(timeout=60)
        if reply.code == 250:
            self.latencies.append(time.perf_counter() - written)
        return int(reply.code)

    async def quit(self) -> None:
        await self.smtp.quit()


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    """Accepted messages, their rate and acceptance latency (p50, p99)."""
    accepted = len(latencies)
    latencies = sorted(latencies) or [float("nan")]
    return {
        "accepted": accepted,
        "seconds": seconds,
        "per_second": accepted / seconds,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


async def client_main(port: int, messages: int, concurrency: int, new_connection: bool) -> dict[str, float]:
    """Send `messages` over `concurrency` connections (a new one per message with `new_connection`)."""
    latencies: list[float] = []
    counter = iter(range(messages))

    async def worker() -> None:
        client = Client(port, latencies)
        if not new_connection:
            await client.open()
        for index in counter:
            if new_connection:
                await client.open()
            if await client.send(index) != 250:
                raise RuntimeError(f"message {index} refused")
            if new_connection:
                await client.quit()
        if not new_connection:
            await client.quit()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result = summary(latencies, time.perf_counter() - began)
    result["client_cpu_ms_per_message"] = 1000 * time.process_time() / messages
    return result


async def ordinary_main(port: int, concurrency: int) -> dict[str, float]:
    """Send ordinary messages back to back until a line arrives on stdin."""
    latencies: list[float] = []
    refused = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), stop.set)
    counter = itertools.count()

    async def worker() -> None:
        nonlocal refused
        client = Client(port, latencies)
        await client.open()
        while not stop.is_set():
            if await client.send(next(counter)) != 250:
                refused += 1
        await client.quit()

    print("ready", flush=True)
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {**summary(latencies, time.perf_counter() - began), "refused": refused}


async def flood_one(port: int, size: int) -> str:
    """One message of `size` bytes of empty lines; the reply code it got."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        line = await reader.readline()
        while line[3:4] == b"-":
            line = await reader.readline()
        return line

    await reply()
    for command in (
        b"EHLO flood.example.net",
        b"MAIL FROM:<flood@example.net>",
        f"RCPT TO:<{JOURNAL_ADDRESS}>".encode(),
    ):
        writer.write(command + b"\r\n")
        await reply()
    writer.write(b"DATA\r\n")
    if not (await reply()).startswith(b"354"):
        return "refused"
    chunk = b"\r\n" * 32768
    for _ in range(size // len(chunk)):
        writer.write(chunk)
        await writer.drain()
    writer.write(b".\r\n")
    code = (await reply())[:3].decode() or "cut"
    writer.write(b"QUIT\r\n")
    writer.close()
    return code


async def flood_main(port: int, clients: int, size: int) -> dict[str, object]:
    began = time.perf_counter()
    codes = await asyncio.gather(*(flood_one(port, size) for _ in range(clients)))
    return {"codes": dict(Counter(codes)), "seconds": time.perf_counter() - began}


# ---- server and orchestration ------------------------------------------------------------------
async def accept_all(listener: str, rcpt: str, session: SessionInfo) -> Reply | None:
    return None


async def finish_entries(spool: Spool) -> None:
    """Stand-in for the processor: take each committed entry and finish it, as the real one does last."""
    async for entry in spool.entries():
        await spool.done_async(entry.id)


def reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux 4.0+); where that is not allowed the peak is the process's lifetime peak."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def rss_mb(field: str) -> float:
    """`VmRSS` (now) or `VmHWM` (peak) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.asynccontextmanager
async def serving(fsync: bool, processor: bool, concurrency: int) -> AsyncIterator[tuple[int, Spool]]:
    config = SmtpConfig.model_validate(
        {
            "hostname": "bench.mailwarden.test",
            "max_connections_per_ip": max(64, concurrency * 2),
            "listeners": [
                {
                    "name": "journal",
                    "role": "journal",
                    "port": 0,
                    "journal_addresses": [JOURNAL_ADDRESS],
                    "allowed_networks": ["127.0.0.0/8"],
                }
            ],
        }
    )
    with (
        tempfile.TemporaryDirectory(prefix="mailwarden-bench-", dir=Path.cwd()) as tmp,
        Spool(Path(tmp) / "spool", fsync=fsync) as spool,
    ):
        server = SmtpServer(config, spool, accept_all)
        await server.start()
        consumer = asyncio.create_task(finish_entries(spool)) if processor else None
        try:
            yield server.bound_ports()["journal"], spool
        finally:
            await server.stop(drain_timeout=5)
            if consumer is not None:
                consumer.cancel()


async def child(*args: str, stdin: int | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, stdin=stdin, stdout=asyncio.subprocess.PIPE
    )


async def run_case(
    messages: int, concurrency: int, fsync: bool, new_connection: bool, use_uvloop: bool, processor: bool
) -> dict[str, Any]:
    async with serving(fsync, processor, concurrency) as (port, spool):
        args = ["--client", str(port), "--messages", str(messages), "--concurrency", str(concurrency)]
        args += ["--new-connection"] if new_connection else []
        args += ["--uvloop"] if use_uvloop else []
        reset_peak_rss()
        server_cpu = time.process_time()
        out, _ = await (await child(*args)).communicate()
        server_cpu = time.process_time() - server_cpu
        result: dict[str, Any] = json.loads(out)
        result["server_cpu_ms_per_message"] = 1000 * server_cpu / messages
        result["peak_rss_mb"] = rss_mb("VmHWM")
        result["spooled"] = spool.backlog
    return result


async def run_flood(clients: int, size: int, ordinary_clients: int) -> dict[str, Any]:
    async with serving(True, True, clients + ordinary_clients) as (port, _):
        ordinary = await child("--ordinary", str(port), "--concurrency", str(ordinary_clients), stdin=PIPE)
        assert ordinary.stdout is not None and ordinary.stdin is not None
        await ordinary.stdout.readline()  # ready: its clients are connected and sending
        before = rss_mb("VmRSS")
        reset_peak_rss()
        flood = await child("--flood", str(port), "--flood-clients", str(clients), "--flood-bytes", str(size))
        flooded, _ = await flood.communicate()
        peak = rss_mb("VmHWM")
        ordinary.stdin.write(b"stop\n")
        meanwhile, _ = await ordinary.communicate()
    return {"before_mb": before, "peak_mb": peak, **json.loads(flooded), "ordinary": json.loads(meanwhile)}


async def orchestrate(args: argparse.Namespace) -> None:
    print(
        f"{os.cpu_count()} CPUs, {'uvloop' if args.uvloop else 'asyncio'} event loop, load average before:"
        f" {os.getloadavg()[0]:.2f} (other work on the machine skews the figures)"
    )
    if "matrix" in args.cases:
        await print_matrix(args)
    if "flood" in args.cases:
        await print_flood(args)


async def print_matrix(args: argparse.Namespace) -> None:
    print(f"\n{args.messages} messages of ~4 KB per case, journal listener, loopback")
    print(
        f"{'fsync':<6} {'processor':<10} {'connections':<12} {'clients':>7} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'spooled':>8} {'server CPU ms/msg':>18} {'client CPU ms/msg':>18} {'peak RSS MB':>12}"
    )
    cases = itertools.product(args.fsync, args.processor, args.connections, args.concurrency)
    for fsync, processor, connections, concurrency in cases:
        result = await run_case(
            args.messages, concurrency, fsync == "on", connections == "new", args.uvloop, processor == "done"
        )
        print(
            f"{fsync:<6} {processor:<10} {connections:<12} {concurrency:>7} {result['per_second']:>9.0f} "
            f"{result['p50_ms']:>8.2f} {result['p99_ms']:>8.2f} {result['spooled']:>8}"
            f" {result['server_cpu_ms_per_message']:>18.2f} {result['client_cpu_ms_per_message']:>18.2f}"
            f" {result['peak_rss_mb']:>12.0f}",
            flush=True,
        )


async def print_flood(args: argparse.Namespace) -> None:
    size = int(args.flood_mb * 1_000_000)
    print(
        f"\nflood: {args.flood_clients} clients x {args.flood_mb:g} MB of empty lines, "
        f"{args.ordinary_clients} ordinary clients meanwhile (~4 KB messages), fsync on, processor done"
    )
    print(
        f"{'RSS before MB':>13} {'peak RSS MB':>12} {'flood 250':>10} {'flood 452':>10} {'other':>6} {'flood s':>8}"
        f" {'ordinary msgs':>14} {'refused':>8} {'p50 ms':>8} {'p99 ms':>8}"
    )
    result = await run_flood(args.flood_clients, size, args.ordinary_clients)
    codes, ordinary = result["codes"], result["ordinary"]
    other = sum(count for code, count in codes.items() if code not in ("250", "452"))
    print(
        f"{result['before_mb']:>13.0f} {result['peak_mb']:>12.0f} {codes.get('250', 0):>10} {codes.get('452', 0):>10}"
        f" {other:>6} {result['seconds']:>8.1f} {ordinary['accepted']:>14} {ordinary['refused']:>8}"
        f" {ordinary['p50_ms']:>8.2f}"
        f" {ordinary['p99_ms']:>8.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--fsync", choices=["on", "off"], nargs="+", default=["on", "off"])
    parser.add_argument("--connections", choices=["reuse", "new"], nargs="+", default=["reuse", "new"])
    parser.add_argument(
        "--processor",
        choices=["none", "done"],
        nargs="+",
        default=["none", "done"],
        help="none: entries pile up in the spool; done: a consumer finishes each entry as it arrives",
    )
    parser.add_argument("--cases", choices=["matrix", "flood"], nargs="+", default=["matrix", "flood"])
    parser.add_argument("--flood-clients", type=int, default=20)
    parser.add_argument("--flood-mb", type=float, default=50, help="MB (10^6 bytes) of empty lines per flood client")
    parser.add_argument("--ordinary-clients", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="tiny inputs, a few seconds (CI)")
    parser.add_argument("--uvloop", action="store_true", help="run server and clients on uvloop (if installed)")
    parser.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--new-connection", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ordinary", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--flood", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--flood-bytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.messages, args.concurrency, args.fsync = 60, [4], ["on"]
        args.connections, args.processor = ["reuse", "new"], ["done"]
        args.flood_clients, args.flood_mb, args.ordinary_clients = 4, 1, 2
    runner = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run
    if args.client:
        print(json.dumps(runner(client_main(args.client, args.messages, args.concurrency[0], args.new_connection))))
    elif args.ordinary:
        print(json.dumps(runner(ordinary_main(args.ordinary, args.concurrency[0]))))
    elif args.flood:
        print(json.dumps(runner(flood_main(args.flood, args.flood_clients, args.flood_bytes))))
    else:
        # the server's own log lines would break up the tables: only errors are shown
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
        runner(orchestrate(args))


if __name__ == "__main__":
    main()
