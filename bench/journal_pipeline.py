"""End-to-end journal-mode benchmark: the real `mailwarden serve` process, SMTP on loopback, scanning behind.

Usage: .venv-test/bin/python bench/journal_pipeline.py [--messages 3000] [--concurrency 1 32] [--fsync on off]
                                        [--connections reuse new] [--repeat 3] [--warmup 200]
                                        [--processing workers=16 ...] [--keep] [--rate 300] [--quick]

For every case a fresh directory gets a config (embedded SQLite store, one journal listener on a free
loopback port, `[processing] spool_fsync` on or off), the organisation `example` (domain
`example.com`, monitor only) is imported with `mailwarden policy import`, and `mailwarden serve` is
started as its own process. The load generator (`--concurrency` connections each sending messages back
to back; `new` opens a connection per message) runs in this process. By default its clients send as
Postfix's SMTP client does when PIPELINING is offered: MAIL, RCPT and DATA in one write, the message
after the 354; `--client aiosmtplib` waits for every reply instead (and costs the shared CPUs more). With
`--rate R` the clients are paced to offer R messages/second in all (message i is due i/R seconds after
the start): a sustained load, to find the rate at which scanning keeps up.

Messages are ~4 KB journal copies, each with its own Message-ID so nothing is merged as a duplicate:
Exchange envelope journal reports (inbound and outbound, `X-MS-Journal-Report` with the original as
message/rfc822) and plain BCC copies (with the original recipient encoded in RCPT TO, and without).

A warm-up of `--warmup` messages is sent and processed first (imports, free spool files, SQLite
cache), then `--messages` are measured. Per case:

* accepted msg/s: messages / time from the first to the last 250 reply;
* p50 / p99 acceptance latency: the client writing the end of DATA (`<CR><LF>.<CR><LF>`) → the 250,
  which covers reading the message and committing it to the spool (fsync of file and directory when on);
* drain lag: time from the last 250 until history holds every message (SQLite polled read-only,
  every 10 ms after the last 250, every 100 ms before);
* processed msg/s: messages / (first message sent → history complete);
* max backlog: most committed files seen in `var/spool/queue/` (sampled every 100 ms); `at end` is
  the backlog when the last 250 arrived;
* server CPU ms/msg: utime + stime of the server process (all threads, /proc/<pid>/stat) from before
  the first message to history complete, divided by messages — accept and processing together;
  client CPU ms/msg the same for this process (load generator and sampler); scan CPU ms/msg the same
  for every process below the server (the scanning processes), which the server's own figure leaves out;
* drain CPU ms/msg: server CPU after the last 250 divided by the messages recorded after it, i.e. the
  processing side alone (shown when at least 100 messages were still to process; nan otherwise);
* PSS MB: the proportional set size of the server and every process below it (scanning processes,
  forkserver), summed from /proc/<pid>/smaps_rollup when the run's history is complete.

`--profile DIR` attaches py-spy (`--format raw`, collapsed stacks per thread) to the server for the
measured phase of each run; `--profile-mode gil` samples only the thread holding the GIL. Profiled
runs are slower: use them for where the time goes, not for the figures.

With `--repeat` > 1 the table shows the median of each figure over the repetitions. SQLite runs with
what `mailwarden` configures (journal_mode=WAL) and the library's default `synchronous` (printed in
the header; FULL = the WAL is fsynced at every commit, i.e. once per history batch).

Processing "keeps up" when the drain lag is under `--max-drain-lag` seconds (default 1.0) and the
backlog never exceeds `--max-backlog` messages (default 500, one second of arrivals at the target).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

JOURNAL_ADDRESS = "journal@mailwarden.test"
ORG_DOMAIN = "example.com"
TARGET_PER_SECOND = 500
QUICK_MESSAGES, QUICK_WARMUP = 40, 10
CLK_TCK = os.sysconf("SC_CLK_TCK")

_WORDS = [
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
_PEOPLE = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
]


# ---- messages ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_to: str
    data: bytes  # dot-stuffed, ends with the <CR><LF>.<CR><LF> terminator


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(8, 14))).capitalize() + "."


def _original(
    rng: random.Random, *, sender: str, to: Sequence[str], cc: Sequence[str], message_id: str, size: int, direction: str
) -> str:
    """The journaled message: relay headers, DKIM, multipart/alternative text and HTML (CRLF)."""
    subject = " ".join(rng.choice(_WORDS) for _ in range(6)).capitalize()
    head = (
        f"Received: from mail{rng.randrange(9)}.example.org (mail.example.org [198.51.100.{rng.randrange(1, 254)}])\r\n"
        f"\tby mx.example.com with ESMTPS id {rng.getrandbits(64):016x}; Tue, 14 Oct 2025 09:15:01 +0000\r\n"
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel1;\r\n"
        "\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
        f"\tb={''.join(rng.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop0123456789') for _ in range(170))}\r\n"
        f"From: {sender}\r\nTo: {', '.join(to)}\r\n"
        + (f"Cc: {', '.join(cc)}\r\n" if cc else "")
        + f"Subject: {subject}\r\nDate: Tue, 14 Oct 2025 09:14:59 +0000\r\nMessage-ID: <{message_id}>\r\n"
        f"X-MS-Exchange-Organization-MessageDirectionality: {direction}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="alt1"\r\n\r\n'
    )
    text, html = [], []
    budget = max(size - len(head) - 200, 200) // 2
    while sum(len(line) for line in text) < budget:
        sentence = _sentence(rng)
        text.append(sentence + "\r\n")
        html.append(f"<p>{sentence}</p>\r\n")
    return (
        head
        + "--alt1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "".join(text)
        + "--alt1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        + "".join(html)
        + "--alt1--\r\n"
    )


def _external(rng: random.Random) -> str:
    return f"{rng.choice(_PEOPLE)}{rng.randrange(100)}@partner{rng.randrange(40)}.example.org"


def _internal(rng: random.Random) -> str:
    return f"{rng.choice(_PEOPLE)}@{ORG_DOMAIN}"


def journal_mail(index: int, run: str, size: int = 4096) -> Mail:
    """Message `index` of a run: four kinds in turn, every one with a distinct Message-ID."""
    rng = random.Random(f"{run}-{index}")
    kind = index % 4
    message_id = f"{run}.{index}.{rng.getrandbits(40):x}@mail.example.org"
    if kind in (0, 1):  # Exchange envelope journal report, inbound / outbound
        inbound = kind == 0
        sender = _external(rng) if inbound else _internal(rng)
        to = [_internal(rng) for _ in range(rng.randrange(1, 3))] if inbound else [_external(rng)]
        cc = [_internal(rng)] if rng.random() < 0.5 else []
        original = _original(
            rng,
            sender=sender,
            to=to,
            cc=cc,
            message_id=message_id,
            size=size - 900,
            direction="Incoming" if inbound else "Originating",
        )
        if inbound:
            lines = [f"Recipient: {r}" for r in to + cc]
        else:
            lines = [f"To: {r}" for r in to] + [f"Cc: {r}" for r in cc] + [f"Bcc: {_internal(rng)}"]
        subject = original.split("Subject: ", 1)[1].split("\r\n", 1)[0]
        boundary = f"----=_JR_{index:06d}"
        report = (
            "From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.com>\r\n"
            f"To: <{JOURNAL_ADDRESS}>\r\nSubject: {subject}\r\nDate: Tue, 14 Oct 2025 09:15:03 +0000\r\n"
            f"Message-ID: <jr-{run}-{index}@example.com>\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\nX-MS-Journal-Report:\r\n\r\n'
            f'--{boundary}\r\nContent-Type: text/plain; charset="us-ascii"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
            f"Sender: {sender}\r\nSubject: {subject}\r\nMessage-Id: <{message_id}>\r\n"
            + "".join(line + "\r\n" for line in lines)
            + f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
            + original
            + f"\r\n--{boundary}--\r\n"
        )
        return Mail("", JOURNAL_ADDRESS, _terminated(report))
    # plain BCC copy (Postfix recipient_bcc_maps and the like): MAIL FROM is the original sender
    sender = _external(rng)
    to = [_internal(rng)]
    original = _original(rng, sender=sender, to=to, cc=[], message_id=message_id, size=size, direction="Incoming")
    rcpt = JOURNAL_ADDRESS
    if kind == 2:  # original recipient encoded in our address: journal+in.<local>=<domain>@...
        local, domain = to[0].split("@")
        rcpt = f"journal+in.{local}={domain}@{JOURNAL_ADDRESS.split('@')[1]}"
    return Mail(sender, rcpt, _terminated(original))


def _terminated(text: str) -> bytes:
    data = text.encode()
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


# ---- the server under test ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (the scanning processes and the forkserver)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += parents.get(child, [])
    return found


def tree_pss_mb(pid: int) -> float:
    """The proportional set size of `pid` and every process below it, in MB: shared pages counted once in
    all (each process's share), so the figure is what the whole server costs the machine."""
    total_kb = 0
    for member in (pid, *_descendants(pid)):
        try:
            with open(f"/proc/{member}/smaps_rollup") as f:
                total_kb += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, ValueError, IndexError):
            continue
    return total_kb / 1024


def _descendants_cpu(pid: int) -> float:
    """CPU seconds (user + system) of every live process below `pid`: the scanning processes."""
    total = 0.0
    for child in _descendants(pid):
        try:
            total += sum(_cpu_seconds(child))
        except OSError:
            continue
    return total


class ServerUnderTest:
    """A configured directory and the `mailwarden serve` process running on it."""

    def __init__(self, root: Path, *, fsync: bool, max_connections: int, processing: Sequence[str]) -> None:
        self.root = root
        self.port = free_port()
        self.config = root / "mailwarden.toml"
        self.db = root / "var" / "mailwarden.sqlite3"
        self.queue_dir = root / "var" / "spool" / "queue"
        extra = "".join(f"{item.split('=', 1)[0].strip()} = {item.split('=', 1)[1].strip()}\n" for item in processing)
        self.config.write_text(
            'organisation = "example"\n'
            '[paths]\ndata_dir = "var"\n'
            '[log]\nlevel = "info"\n'
            f'[smtp]\nhostname = "bench.mailwarden.test"\nmax_connections_per_ip = {max_connections}\n'
            f"[processing]\nspool_fsync = {'true' if fsync else 'false'}\n{extra}"
            '[delivery]\nhostname = "bench.mailwarden.test"\n'
            '[[smtp.listeners]]\nname = "journal"\nrole = "journal"\nhost = "127.0.0.1"\n'
            f'port = {self.port}\njournal_addresses = ["{JOURNAL_ADDRESS}"]\nallowed_networks = ["127.0.0.0/8"]\n'
        )
        org = root / "org.yaml"
        org.write_text(yaml.safe_dump({"name": "example", "monitor_only": True, "domains": [{"name": ORG_DOMAIN}]}))
        self._cli("policy", "import", str(org))
        self.process: subprocess.Popen[bytes] | None = None

    def _cli(self, *args: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "mailwarden", *args, "--config", str(self.config)],
            cwd=self.root,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"mailwarden {' '.join(args)} failed: {result.stderr}")

    def start(self) -> None:
        log = (self.root / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailwarden", "serve", "--config", str(self.config), "--drain-timeout", "10"],
            cwd=self.root,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("mailwarden serve exited:\n" + self.log())
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mailwarden serve did not listen within 30 s:\n" + self.log())

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def log(self) -> str:
        path = self.root / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def backlog(self) -> int:
        try:
            return sum(1 for name in os.listdir(self.queue_dir) if name.endswith(".msg"))
        except FileNotFoundError:
            return 0

    def connect_db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5, check_same_thread=False)


class Sampler(threading.Thread):
    """Samples the spool backlog and the history count; 100 ms apart, 10 ms once `fast` is set."""

    def __init__(self, server: ServerUnderTest, target: int) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.target = target
        self.fast = threading.Event()
        self.halt = threading.Event()
        self.samples: list[tuple[float, int, int]] = []  # (time, backlog, history count)
        self.complete_at: float | None = None

    def run(self) -> None:
        db = self.server.connect_db()
        try:
            while not self.halt.is_set():
                now = time.perf_counter()
                count = history_count(db)
                self.samples.append((now, self.server.backlog(), count))
                if count >= self.target and self.complete_at is None:
                    self.complete_at = now
                    return
                self.halt.wait(0.01 if self.fast.is_set() else 0.1)
        finally:
            db.close()

    @property
    def max_backlog(self) -> int:
        return max((b for _, b, _ in self.samples), default=0)


def history_count(db: sqlite3.Connection) -> int:
    try:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or locked for an instant
        return 0


# ---- the load generator --------------------------------------------------------------------------
@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    acked: list[float] = field(default_factory=list)  # perf_counter of every 250
    refused: list[str] = field(default_factory=list)
    began: float = 0.0

    def answered(self, code: int, text: str, written: float) -> None:
        """The reply to the end of DATA, written at perf_counter `written`."""
        now = time.perf_counter()
        if code == 250:
            self.latencies.append(now - written)
            self.acked.append(now)
        else:
            self.refused.append(f"{code} {text}")


class PipeliningClient:
    """An SMTP client that sends as Postfix's does when the server offers PIPELINING (RFC 2920): MAIL,
    RCPT and DATA in one write, then the message once the 354 is in. Cheap, so that the load generator
    leaves the machine's two cores to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> PipeliningClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        await client.expect(220)
        writer.write(b"EHLO bench.example.org\r\n")
        ehlo = await client.expect(250)
        if b"PIPELINING" not in ehlo:
            raise RuntimeError("the server does not offer PIPELINING")
        return client

    async def reply(self) -> tuple[int, bytes]:
        text = b""
        while True:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), 60)
            text += line
            if line[3:4] != b"-":
                return int(line[:3]), text

    async def expect(self, code: int) -> bytes:
        got, text = await self.reply()
        if got != code:
            raise RuntimeError(f"expected {code}, got {text!r}")
        return text

    async def send(self, mail: Mail, result: LoadResult) -> None:
        self.writer.write(f"MAIL FROM:<{mail.mail_from}>\r\nRCPT TO:<{mail.rcpt_to}>\r\nDATA\r\n".encode())
        replies = [await self.reply() for _ in range(3)]
        if [code for code, _ in replies] != [250, 250, 354]:
            if replies[2][0] == 354:  # cannot happen with a failed RCPT, but never leave DATA open
                self.writer.write(b".\r\n")
                await self.reply()
            self.writer.write(b"RSET\r\n")
            await self.reply()
            result.refused.append(b" / ".join(text.strip() for _, text in replies).decode(errors="replace"))
            return
        self.writer.write(mail.data)
        written = time.perf_counter()
        code, text = await self.reply()
        result.answered(code, text[4:].decode(errors="replace").strip(), written)

    async def quit(self) -> None:
        self.writer.write(b"QUIT\r\n")
        with contextlib.suppress(Exception):
            await self.reply()
        self.writer.close()


class AiosmtplibClient:
    """The same three calls over aiosmtplib, which waits for every reply (no pipelining)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    async def open(cls, port: int) -> AiosmtplibClient:
        import aiosmtplib

        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, timeout=60, local_hostname="bench.example.org"
        )
        await client.connect()
        await client.ehlo()
        return cls(client)

    async def send(self, mail: Mail, result: LoadResult) -> None:
        client = self.client
        await client.mail(mail.mail_from)
        await client.rcpt(mail.rcpt_to)
        start = await client.execute_command(b"DATA")
        if start.code != 354:
            raise RuntimeError(f"DATA refused: {start}")
        client.protocol.write(mail.data)
        written = time.perf_counter()
        reply = await client.protocol.read_response(timeout=60)
        result.answered(reply.code, reply.message, written)

    async def quit(self) -> None:
        await self.client.quit()


async def send_all(
    port: int,
    mails: Sequence[Mail],
    concurrency: int,
    new_connection: bool,
    rate: float | None = None,
    client_kind: str = "pipelining",
) -> LoadResult:
    result = LoadResult()
    counter = iter(range(len(mails)))
    opener = PipeliningClient.open if client_kind == "pipelining" else AiosmtplibClient.open

    async def worker() -> None:
        client = None if new_connection else await opener(port)
        for index in counter:
            if rate:  # offered load: message i is due i/rate seconds after the start
                delay = result.began + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if new_connection:
                client = await opener(port)
            assert client is not None
            await client.send(mails[index], result)
            if new_connection:
                await client.quit()
        if client is not None and not new_connection:
            await client.quit()

    result.began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


# ---- one case ------------------------------------------------------------------------------------
@dataclass
class Case:
    fsync: bool
    concurrency: int
    new_connection: bool

    @property
    def label(self) -> str:
        connections = "new" if self.new_connection else "reuse"
        return f"{'on' if self.fsync else 'off':<6} {connections:<6} {self.concurrency:>4}"


FIGURES = (
    "per_second",
    "p50_ms",
    "p99_ms",
    "drain_lag_s",
    "processed_per_second",
    "max_backlog",
    "backlog_at_end",
    "server_cpu_ms",
    "server_sys_ms",
    "client_cpu_ms",
    "scan_cpu_ms",
    "drain_cpu_ms",
)


def run_case(case: Case, args: argparse.Namespace, run_no: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mailwarden-journal-bench-", dir=args.workdir) as tmp:
        root = Path(tmp)
        server = ServerUnderTest(
            root, fsync=case.fsync, max_connections=max(64, case.concurrency * 2), processing=args.processing
        )
        server.start()
        try:
            return _measure(server, case, args, run_no)
        finally:
            code = server.stop()
            problems = [
                line
                for line in server.log().splitlines()
                if any(word in line for word in ("error", "failed", "Traceback", "journal_merge"))
            ]
            if code != 0 or problems:
                kept = Path(args.workdir or tempfile.gettempdir()) / f"journal-bench-{run_no}-problems.log"
                kept.write_text(server.log())
                print(f"  server exit code {code}; log lines: {problems[:3]}; whole log: {kept}", file=sys.stderr)
            if args.keep:
                kept = Path(args.workdir or tempfile.gettempdir()) / f"journal-bench-{run_no}.log"
                kept.write_text(server.log())


def _measure(server: ServerUnderTest, case: Case, args: argparse.Namespace, run_no: int) -> dict[str, float]:
    run = f"r{run_no}-{os.getpid()}"
    if args.warmup:
        warm = [journal_mail(i, run + "w") for i in range(args.warmup)]
        asyncio.run(send_all(server.port, warm, case.concurrency, case.new_connection, None, args.client))
        _wait_for_history(server, args.warmup, timeout=args.drain_timeout)
    base = _wait_for_history(server, args.warmup, timeout=args.drain_timeout)
    mails = [journal_mail(i, run) for i in range(args.messages)]

    sampler = Sampler(server, base + args.messages)
    profiler = _start_profiler(server.pid, args, case, run_no) if args.profile else None
    cpu_before = _cpu_seconds(server.pid)
    scan_before = _descendants_cpu(server.pid)
    client_before = time.process_time()
    sampler.start()
    load = asyncio.run(send_all(server.port, mails, case.concurrency, case.new_connection, args.rate, args.client))
    client_cpu = time.process_time() - client_before
    cpu_at_last = _cpu_seconds(server.pid)
    last_ack = max(load.acked)
    db = server.connect_db()
    history_at_last = history_count(db)
    db.close()
    backlog_at_end = server.backlog()
    sampler.fast.set()
    sampler.join(timeout=args.drain_timeout)
    sampler.halt.set()
    cpu_after = _cpu_seconds(server.pid)
    scan_cpu = _descendants_cpu(server.pid) - scan_before
    pss = tree_pss_mb(server.pid)  # after the run, everything loaded and every cache warm
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        profiler.wait(timeout=60)
    if sampler.complete_at is None:
        print(
            f"  history incomplete after {args.drain_timeout:g} s: {sampler.samples[-1][2] - base} "
            f"of {args.messages} (refused: {len(load.refused)})",
            file=sys.stderr,
        )
    done = sampler.complete_at or time.perf_counter()
    if load.refused:
        print(f"  {len(load.refused)} refused, e.g. {load.refused[0]}", file=sys.stderr)
    latencies = sorted(load.latencies)
    drained = (sampler.samples[-1][2] if sampler.samples else base) - history_at_last
    drain_cpu = sum(cpu_after) - sum(cpu_at_last)
    n = len(latencies)
    first_ack = min(load.acked)
    user = cpu_after[0] - cpu_before[0]
    system = cpu_after[1] - cpu_before[1]
    return {
        "per_second": (n - 1) / (last_ack - first_ack) if n > 1 else 0.0,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))],
        "drain_lag_s": done - last_ack,
        "processed_per_second": args.messages / (done - load.began),
        "max_backlog": sampler.max_backlog,
        "backlog_at_end": backlog_at_end,
        "history_behind_at_end": base + args.messages - history_at_last,
        "server_cpu_ms": 1000 * (user + system) / args.messages,
        "server_sys_ms": 1000 * system / args.messages,
        "client_cpu_ms": 1000 * client_cpu / args.messages,
        "scan_cpu_ms": 1000 * scan_cpu / args.messages,
        # processing alone: server CPU after the last 250 per message recorded after it (nan: too few)
        "drain_cpu_ms": 1000 * drain_cpu / drained if drained >= 100 else float("nan"),
        "complete": float(sampler.complete_at is not None),
        "pss_mb": pss,
    }


def _start_profiler(pid: int, args: argparse.Namespace, case: Case, run_no: int) -> subprocess.Popen[bytes]:
    """py-spy on the server for the measured phase: collapsed stacks (`--format raw`), threads apart."""
    out = Path(args.profile) / f"serve-{'fsync' if case.fsync else 'nofsync'}-c{case.concurrency}-run{run_no}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--threads", "--nonblocking"]
    command += ["--rate", "200", "--subprocesses", "-o", str(out)]
    if args.profile_mode != "active":
        command.append(f"--{args.profile_mode}")
    profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the first message
    return profiler


def _wait_for_history(server: ServerUnderTest, count: int, timeout: float) -> int:
    db = server.connect_db()
    try:
        deadline = time.monotonic() + timeout
        while True:
            seen = history_count(db)
            if (seen >= count and server.backlog() == 0) or time.monotonic() > deadline:
                return seen
            time.sleep(0.02)
    finally:
        db.close()


# ---- orchestration -------------------------------------------------------------------------------
def sqlite_settings() -> str:
    db = sqlite3.connect(":memory:")
    try:
        synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[db.execute("PRAGMA synchronous").fetchone()[0]]
    finally:
        db.close()
    return f"SQLite {sqlite3.sqlite_version} journal_mode=WAL, synchronous={synchronous} (library default)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=3000, help="measured messages per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32], help="client connections")
    parser.add_argument(
        "--client",
        choices=["pipelining", "aiosmtplib"],
        default="pipelining",
        help="load generator: MAIL/RCPT/DATA in one write as Postfix sends them (default), or aiosmtplib "
        "waiting for each reply",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="offered load in msg/s (paced clients) instead of as fast as the server takes them: "
        "the sustained rate at which scanning keeps up",
    )
    parser.add_argument("--fsync", choices=["on", "off"], nargs="+", default=["on", "off"], help="spool_fsync")
    parser.add_argument("--no-fsync-runs", action="store_true", help="only fsync on (same as --fsync on)")
    parser.add_argument("--connections", choices=["reuse", "new"], nargs="+", default=["reuse"])
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the table shows medians")
    parser.add_argument("--warmup", type=int, default=200, help="messages sent and processed before measuring")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="longest wait for history to fill")
    parser.add_argument(
        "--processing",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra [processing] settings, TOML values (e.g. workers=16 batch_delay_ms=5)",
    )
    parser.add_argument("--max-drain-lag", type=float, default=1.0, help="seconds; more means processing fell behind")
    parser.add_argument("--max-backlog", type=int, default=500, help="messages; more means processing fell behind")
    parser.add_argument("--workdir", default=None, help="where the temporary server directories go")
    parser.add_argument("--keep", action="store_true", help="copy each server log next to the work directory")
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the server during each measured phase; collapsed stacks in DIR"
    )
    parser.add_argument(
        "--profile-mode",
        choices=["active", "idle", "gil"],
        default="active",
        help="py-spy samples: active threads (default), also idle ones, or only the thread holding the GIL",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run (one case, a few messages) that checks the script works (CI): its figures mean nothing",
    )
    args = parser.parse_args()
    if args.no_fsync_runs:
        args.fsync = ["on"]
    if args.quick:
        args.messages, args.warmup, args.concurrency, args.fsync = QUICK_MESSAGES, QUICK_WARMUP, [4], ["on"]
        args.connections, args.repeat = ["reuse"], 1

    cases = [
        Case(fsync == "on", concurrency, connections == "new")
        for fsync in args.fsync
        for connections in args.connections
        for concurrency in args.concurrency
    ]
    print(
        f"{args.messages} journal messages (~4 KB) per run after {args.warmup} warm-up, {args.repeat} run(s) per case"
        f"{' (medians)' if args.repeat > 1 else ''}; real `mailwarden serve` subprocess, loopback; "
        f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}"
        + (f"; offered load {args.rate:g} msg/s" if args.rate else "; clients send as fast as they are answered")
    )
    print(f"{sqlite_settings()}; [processing] {' '.join(args.processing) or 'defaults'}")
    header = (
        f"{'fsync':<6} {'conn':<6} {'cli':>4} {'acc msg/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'drain s':>7}"
        f" {'proc msg/s':>10} {'max backlog':>11} {'backlog@end':>11} {'srv CPU ms/msg':>14} {'(sys)':>6}"
        f" {'scan CPU ms/msg':>15} {'cli CPU ms/msg':>14} {'drain CPU ms/msg':>16} {'PSS MB':>7}"
    )
    print(header, flush=True)
    results: list[tuple[Case, dict[str, float]]] = []
    run_no = 0
    for case in cases:
        runs = []
        for _ in range(args.repeat):
            run_no += 1
            runs.append(run_case(case, args, run_no))
        merged = {key: _median([r[key] for r in runs]) for key in runs[0]}
        merged["complete"] = min(r["complete"] for r in runs)
        merged["max_backlog_worst"] = max(r["max_backlog"] for r in runs)
        merged["drain_lag_worst"] = max(r["drain_lag_s"] for r in runs)
        results.append((case, merged))
        print(
            f"{case.label} {merged['per_second']:>9.0f} {merged['p50_ms']:>7.2f} {merged['p99_ms']:>7.2f}"
            f" {merged['drain_lag_s']:>7.2f} {merged['processed_per_second']:>10.0f} {merged['max_backlog']:>11.0f}"
            f" {merged['backlog_at_end']:>11.0f} {merged['server_cpu_ms']:>14.2f} {merged['server_sys_ms']:>6.2f}"
            f" {merged['scan_cpu_ms']:>15.2f} {merged['client_cpu_ms']:>14.2f} {merged['drain_cpu_ms']:>16.2f}"
            f" {merged['pss_mb']:>7.0f}" + ("" if merged["complete"] else "  INCOMPLETE"),
            flush=True,
        )
        if args.repeat > 1:
            print(
                "       per run acc msg/s: "
                + ", ".join(f"{r['per_second']:.0f}" for r in runs)
                + "; drain s: "
                + ", ".join(f"{r['drain_lag_s']:.2f}" for r in runs)
                + "; max backlog: "
                + ", ".join(f"{r['max_backlog']:.0f}" for r in runs),
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print_verdict(results, args)


def _median(values: list[float]) -> float:
    present = [v for v in values if v == v]  # leave out nan
    return statistics.median(present) if present else float("nan")


def print_verdict(results: list[tuple[Case, dict[str, float]]], args: argparse.Namespace) -> None:
    for case, r in results:
        kept_up = (
            r["complete"] and r["drain_lag_worst"] <= args.max_drain_lag and r["max_backlog_worst"] <= args.max_backlog
        )
        target = ""
        if case.fsync and case.concurrency >= 32 and not args.rate:
            met = r["per_second"] >= TARGET_PER_SECOND
            target = f"target >= {TARGET_PER_SECOND} msg/s with fsync on: {'MET' if met else 'NOT MET'} "
            target += f"({r['per_second']:.0f}); "
        print(
            f"fsync {'on' if case.fsync else 'off'}, {'new' if case.new_connection else 'reused'} connections, "
            f"{case.concurrency} clients: {target}processing "
            + (
                "kept up"
                if kept_up
                else f"FELL BEHIND (drain lag up to {r['drain_lag_worst']:.2f} s, backlog up to "
                f"{r['max_backlog_worst']:.0f}; limits {args.max_drain_lag:g} s, {args.max_backlog})"
            )
        )


if __name__ == "__main__":
    main()
