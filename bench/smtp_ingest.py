"""SMTP ingest throughput and acceptance latency: journal messages over loopback into the durable spool.

Usage: python bench/smtp_ingest.py [--messages 5000] [--concurrency 1 32] [--fsync on off]
                                   [--connections reuse new] [--processor none done] [--uvloop]

The server (one journal listener, spool in a fresh temporary directory) runs in this process; the
clients (aiosmtplib) run in a child process so they do not share the server's event loop. For each
combination it prints accepted messages/second and the p50/p99 acceptance latency: the time from the
client writing the end of DATA (`<CR><LF>.<CR><LF>`) to reading the 250, which covers the server
reading the message and committing it to the spool (fsync of file and directory when on).

`reuse` sends many messages per connection (EHLO once, then MAIL/RCPT/DATA per message); `new`
opens a connection per message (greeting, EHLO, MAIL, RCPT, DATA, QUIT). `--processor done` runs a
stand-in processor that finishes each entry as it is committed (`entries()` + `done_async`), the
steady state of a running service, in which spool files are recycled instead of created.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mailwarden.config import SmtpConfig
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


# ---- client (child process) ----------------------------------------------------------------------
async def client_main(port: int, messages: int, concurrency: int, new_connection: bool) -> dict[str, object]:
    import aiosmtplib

    payloads = [synthetic_message(i) + b".\r\n" for i in range(min(messages, 200))]
    latencies: list[float] = []
    counter = iter(range(messages))

    async def open_client() -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, timeout=60, local_hostname="bench.example.org"
        )
        await client.connect()
        await client.ehlo()
        return client

    async def send_one(client: aiosmtplib.SMTP, index: int) -> None:
        await client.mail(f"sender{index}@example.org")
        await client.rcpt(JOURNAL_ADDRESS)
        start = await client.execute_command(b"DATA")
        if start.code != 354:
            raise RuntimeError(f"DATA refused: {start}")
        assert client.protocol is not None
        client.protocol.write(payloads[index % len(payloads)])
        written = time.perf_counter()
        reply = await client.protocol.read_response(timeout=60)
        latencies.append(time.perf_counter() - written)
        if reply.code != 250:
            raise RuntimeError(f"message refused: {reply}")

    async def worker() -> None:
        client = None if new_connection else await open_client()
        for index in counter:
            if new_connection:
                client = await open_client()
            assert client is not None
            await send_one(client, index)
            if new_connection:
                await client.quit()
        if client is not None and not new_connection:
            await client.quit()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "client_cpu_ms_per_message": 1000 * time.process_time() / messages,
        "accepted": len(latencies),
        "seconds": elapsed,
        "per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


# ---- server and orchestration ------------------------------------------------------------------
async def accept_all(listener: str, rcpt: str, session: SessionInfo) -> Reply | None:
    return None


async def finish_entries(spool: Spool) -> None:
    """Stand-in for the processor: take each committed entry and finish it, as the real one does last."""
    async for entry in spool.entries():
        await spool.done_async(entry.id)


async def run_case(
    messages: int, concurrency: int, fsync: bool, new_connection: bool, use_uvloop: bool, processor: bool
) -> dict[str, object]:
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
        port = server.bound_ports()["journal"]
        consumer = asyncio.create_task(finish_entries(spool)) if processor else None
        args = [__file__, "--client", str(port), "--messages", str(messages), "--concurrency", str(concurrency)]
        if new_connection:
            args.append("--new-connection")
        if use_uvloop:
            args.append("--uvloop")
        server_cpu = time.process_time()
        child = await asyncio.create_subprocess_exec(sys.executable, *args, stdout=asyncio.subprocess.PIPE)
        out, _ = await child.communicate()
        server_cpu = time.process_time() - server_cpu
        await server.stop(drain_timeout=5)
        if consumer is not None:
            consumer.cancel()
        result: dict[str, object] = json.loads(out)
        result["server_cpu_ms_per_message"] = 1000 * server_cpu / messages
        result["spooled"] = spool.pending_count()
    return result


async def orchestrate(args: argparse.Namespace) -> None:
    print(
        f"{args.messages} messages of ~4 KB per case, journal listener, loopback, "
        f"{'uvloop' if args.uvloop else 'asyncio'} event loop, {os.cpu_count()} CPUs, "
        f"load average before: {os.getloadavg()[0]:.2f} (other work on the machine skews the figures)"
    )
    print(
        f"{'fsync':<6} {'processor':<10} {'connections':<12} {'clients':>7} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'spooled':>8}"
        f" {'server CPU ms/msg':>18} {'client CPU ms/msg':>18}"
    )
    cases = [
        (fsync, processor, connections, concurrency)
        for fsync in args.fsync
        for processor in args.processor
        for connections in args.connections
        for concurrency in args.concurrency
    ]
    for fsync, processor, connections, concurrency in cases:
        result = await run_case(
            args.messages, concurrency, fsync == "on", connections == "new", args.uvloop, processor == "done"
        )
        print(
            f"{fsync:<6} {processor:<10} {connections:<12} {concurrency:>7} {result['per_second']:>9.0f} "
            f"{result['p50_ms']:>8.2f} {result['p99_ms']:>8.2f} {result['spooled']:>8}"
            f" {result['server_cpu_ms_per_message']:>18.2f} {result['client_cpu_ms_per_message']:>18.2f}",
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
    parser.add_argument("--uvloop", action="store_true", help="run server and clients on uvloop (if installed)")
    parser.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--new-connection", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    runner = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run
    if args.client:
        concurrency = args.concurrency[0]
        print(json.dumps(runner(client_main(args.client, args.messages, concurrency, args.new_connection))))
    else:
        runner(orchestrate(args))


if __name__ == "__main__":
    main()
