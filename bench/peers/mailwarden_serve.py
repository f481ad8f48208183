"""mailwarden as a server: `mailwarden serve` on the peers' test messages, sent over SMTP as journal copies.

The server is bench/journal_pipeline.py's (`ServerUnderTest`: its own directory, SQLite, a journal listener
on a free loopback port, started as its own process and stopped with SIGTERM), configured like the
in-process adapter's scanner: the same trained model and scoring files, the loopback resolver that answers
SERVFAIL at once. Each corpus message goes as a plain BCC copy, byte for byte (line ends made CRLF, dots
stuffed): MAIL FROM is what the adapter takes as the sender (Return-Path, else From), RCPT TO the journal
address, so the server takes the recipients from To/Cc as the adapter does (a message without either is
addressed to an encoded placeholder recipient, or it could not be unwrapped). A message with a line over
998 octets is refused at the end of DATA, as RFC 5321 has it (`refused` in the JSON). The load generator is
journal_pipeline's pipelining client.

Why journal copies and not an inbound listener in monitor mode: a journal copy goes the whole way a
scanned message goes (SMTP, the spool with fsync, the hand-off to the scanning processes, unwrapping, the
inbound pipeline, the history record written in batches) and ends there, as rspamd's answer ends its work;
an inbound listener in monitor mode would also relay every message to a next hop, delivery work no peer
does, and would judge the loopback client instead of the Received chain the adapter judges.

Copies of one original (same Message-ID and sender) are merged into one history record, as the product
does: the count waited for is the number of distinct originals, worked out with the server's own `unwrap`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
from pathlib import Path

from common import PssSampler, Sample

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: journal_pipeline
from journal_pipeline import (
    JOURNAL_ADDRESS,
    Mail,
    Sampler,
    ServerUnderTest,
    _cpu_seconds,
    _descendants_cpu,
    _wait_for_history,
    journal_mail,
    send_all,
)

SRC = Path(__file__).resolve().parents[2] / "src"
PLACEHOLDER_RCPT = "journal+in.undisclosed=recipients.invalid@" + JOURNAL_ADDRESS.split("@")[1]
WARMUP = 20  # generated journal copies scanned before the clock starts (imports, model, SQLite cache)
DRAIN_TIMEOUT = 300.0

CONFIG = """\
[paths]
data_dir = "var"
[dns]
nameservers = ["127.0.0.1"]
port = {dns_port}
timeout = 0.5
[log]
level = "warning"
[stages.spam]
model = "{model}"
scoring = "{scoring}"
[smtp]
hostname = "bench.mailwarden.test"
max_connections_per_ip = 64
[processing]
spool_fsync = true
[delivery]
hostname = "bench.mailwarden.test"
[api]
port = 0
[[smtp.listeners]]
name = "journal"
role = "journal"
host = "127.0.0.1"
port = {port}
journal_addresses = ["{journal}"]
allowed_networks = ["127.0.0.0/8"]
"""


class ServeUnderTest(ServerUnderTest):
    """journal_pipeline's server with the peers adapter's scanning configuration (no organisation: every
    copy is scanned with the default policy, as the adapter scans). The REST API and console stay on, as
    `serve` runs for a user (rspamd's controller runs too), on a free port."""

    def __init__(self, root: Path, adapter_config: Path, dns_port: int) -> None:
        from journal_pipeline import free_port

        from mailwarden.service.config import load_config

        spam = load_config(adapter_config, environ={}).stages["spam"]
        self.root = root
        self.port = free_port()
        self.config = root / "mailwarden.toml"
        self.db = root / "var" / "mailwarden.sqlite3"
        self.queue_dir = root / "var" / "spool" / "queue"
        self.config.write_text(
            CONFIG.format(
                dns_port=dns_port, model=spam["model"], scoring=spam["scoring"], port=self.port, journal=JOURNAL_ADDRESS
            )
        )
        self.process = None

    def start(self) -> None:
        # the server runs this checkout's code, not whatever the environment's install points at
        path = os.environ.get("PYTHONPATH", "")
        if not path.startswith(str(SRC)):
            os.environ["PYTHONPATH"] = f"{SRC}{os.pathsep}{path}" if path else str(SRC)
        super().start()


def _stuffed(raw: bytes) -> bytes:
    """A message as DATA carries it: CRLF line ends, leading dots doubled, the terminator after it."""
    data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def _unstuffed(data: bytes) -> bytes:
    """The message the server keeps: DATA without the stuffing and the terminator."""
    body = data[: -len(b".\r\n")]
    if body.startswith(b".."):
        body = body[1:]
    return body.replace(b"\r\n..", b"\r\n.")


def journal_copies(samples: list[Sample]) -> tuple[list[Mail], int]:
    """The test messages as plain BCC copies, and how many history records they make (copies of one
    original merge; a copy that cannot be unwrapped is recorded as such, one record each)."""
    from mailwarden.ingest.journal import JournalParseError, unwrap
    from mailwarden.model import Message
    from mailwarden.service.runtime import offline_envelope

    mails, keys, unreadable = [], set(), 0
    for sample in samples:
        raw = sample.path.read_bytes()
        sender = offline_envelope(Message(raw)).mail_from
        data = _stuffed(raw)
        for rcpt in (JOURNAL_ADDRESS, PLACEHOLDER_RCPT):  # the placeholder when To/Cc name no one
            try:
                key = unwrap(_unstuffed(data), smtp_mail_from=sender, smtp_rcpt_to=[rcpt]).dedupe_key
            except JournalParseError:
                continue
            keys.add(key)
            break
        else:
            unreadable += 1
        mails.append(Mail(sender, rcpt, data))
    return mails, len(keys) + unreadable


def verdicts(server: ServerUnderTest) -> dict[str, bool]:
    """sha256 of each recorded message → flagged as the adapter counts it (SCL ≥ 5 or any phish level)."""
    db = server.connect_db()
    try:
        rows = db.execute("SELECT sha256, scl, phish FROM messages").fetchall()
    finally:
        db.close()
    return {sha: scl >= 5 or phish != "none" for sha, scl, phish in rows}


def run_serve(
    adapter_config: Path,
    dns_port: int,
    workdir: Path,
    samples: list[Sample],
    clients: int,
    run_no: int,
    memory: bool = False,
    agreement: dict[str, bool] | None = None,
) -> dict:
    """One run: a fresh server (so no copy merges with an earlier run's), a warm-up, then `samples` sent over
    `clients` connections. msg/s = messages / (first sent → history holds them all); CPU = the server and
    every process below it over that window; client CPU (this process: load generator, history polling,
    the loopback resolver) apart. With `agreement` (path sha256 → the adapter's flagged), the share of
    messages whose flagged agrees."""
    mails, expected = journal_copies(samples)
    root = workdir / f"serve-{run_no}-c{clients}"
    root.mkdir(parents=True)
    server = ServeUnderTest(root, adapter_config, dns_port)
    server.start()
    try:
        warm = [journal_mail(i, f"warm{run_no}") for i in range(3, 4 * WARMUP, 4)]  # plain BCC copies
        asyncio.run(send_all(server.port, warm, clients, False))
        base = _wait_for_history(server, len(warm), timeout=DRAIN_TIMEOUT)
        sampler = Sampler(server, base + expected)
        pss = PssSampler({"serve": lambda: [server.pid]}) if memory else None
        own_before = sum(_cpu_seconds(server.pid))
        cpu_before = own_before + _descendants_cpu(server.pid)
        client_before = time.process_time()
        sampler.start()
        if pss:
            pss.start()
        try:
            load = asyncio.run(send_all(server.port, mails, clients, False))
            if load.refused:
                sampler.target -= len(load.refused)  # never recorded: not waited for
            sampler.fast.set()
            sampler.join(timeout=DRAIN_TIMEOUT)
            sampler.halt.set()
        finally:
            memory_mb = pss.stop() if pss else None
        own = sum(_cpu_seconds(server.pid)) - own_before
        cpu = own + own_before + _descendants_cpu(server.pid) - cpu_before
        client_cpu = time.process_time() - client_before
        if sampler.complete_at is None:
            raise RuntimeError(
                f"history incomplete after {DRAIN_TIMEOUT:g} s: {sampler.samples[-1][2] - base} of {expected}"
            )
        seconds = sampler.complete_at - load.began
        latencies = sorted(load.latencies)
        n = len(mails)

        def pct(q: float) -> float | None:
            return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else None

        out = {
            "clients": clients,
            "messages": n,
            "records": expected,
            "refused": len(load.refused),
            "seconds": round(seconds, 3),
            "msgs_per_s": round(n / seconds, 2),
            "accept_p50_ms": pct(0.5),
            "accept_p99_ms": pct(0.99),
            "cpu_ms_per_msg": round(cpu * 1000 / n, 2),
            "server_process_cpu_ms_per_msg": round(own * 1000 / n, 2),  # SMTP, spool, hand-off, history
            "client_cpu_ms_per_msg": round(client_cpu * 1000 / n, 2),
        }
        if memory_mb is not None:
            out["pss_mb"] = memory_mb
        if load.refused:
            out["refused_example"] = load.refused[0]
        if agreement is not None:
            recorded = verdicts(server)
            by_sha = {hashlib.sha256(_unstuffed(m.data)).hexdigest(): s for m, s in zip(mails, samples, strict=True)}
            compared = [
                (recorded[sha], agreement[str(s.path)])
                for sha, s in by_sha.items()
                if sha in recorded and str(s.path) in agreement
            ]
            out["agreement"] = {
                "compared": len(compared),
                "same_flagged": sum(1 for a, b in compared if a == b),
                "flagged_by_serve_only": sum(1 for a, b in compared if a and not b),
                "flagged_by_adapter_only": sum(1 for a, b in compared if b and not a),
            }
        return out
    finally:
        code = server.stop()
        problems = [line for line in server.log().splitlines() if "error" in line or "Traceback" in line]
        if code != 0 or problems:
            print(f"mailwarden serve exited {code}; log lines: {problems[:3]}", file=sys.stderr)
