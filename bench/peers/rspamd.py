"""rspamd peer: private config dir (--var=...), resolver at a dead loopback port, Bayes in a private Redis DB."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from common import Sample, Scored, pids_named, sh

# dedicated Redis DB numbers: the first empty one is used (two runs side by side get different ones),
# and flushed when we stop; a DB with keys in it is never touched
REDIS_DBS = (13, 14, 15)
DEAD_RESOLVER = "127.0.0.1:9"  # nothing listens on the discard port

# modules disabled because they need DNS or remote services, or keep state across scans (docs/peers.md)
DISABLED = [
    "rbl", "surbl", "fuzzy_check", "dkim", "spf", "dmarc", "arc", "asn", "emails", "dcc", "mx_check",
    "greylist", "ratelimit", "neural", "reputation", "bimi", "url_redirector", "rspamd_update",
    "external_services", "antivirus", "p0f", "clickhouse", "elastic", "metric_exporter", "dkim_signing",
    "once_received", "replies",
]  # fmt: skip

FLAG_ACTIONS = {"reject", "add header", "rewrite subject", "soft reject"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_cmd(*args: str) -> bytes:
    """One RESP command to 127.0.0.1:6379 (no client library needed)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
    )
    with socket.create_connection(("127.0.0.1", 6379), timeout=5) as s:
        s.sendall(payload)
        return s.recv(65536)


def redis_dbsize(db: int) -> int:
    with socket.create_connection(("127.0.0.1", 6379), timeout=5) as s:
        s.sendall(f"*2\r\n$6\r\nSELECT\r\n${len(str(db))}\r\n{db}\r\n*1\r\n$6\r\nDBSIZE\r\n".encode())
        time.sleep(0.05)
        data = s.recv(4096).decode()
    return int(data.split(":")[-1].strip())


def redis_flushdb(db: int) -> None:
    with socket.create_connection(("127.0.0.1", 6379), timeout=5) as s:
        s.sendall(f"*2\r\n$6\r\nSELECT\r\n${len(str(db))}\r\n{db}\r\n*1\r\n$7\r\nFLUSHDB\r\n".encode())
        time.sleep(0.05)
        s.recv(4096)


class Rspamd:
    name = "rspamd"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "rspamd"
        self.conf = self.dir / "conf"
        self.local = self.dir / "local"
        self.port = free_port()
        self.ctrl_port = free_port()
        while self.ctrl_port == self.port:
            self.ctrl_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.notes: list[str] = []
        self.log = self.dir / "log" / "rspamd.log"
        self.redis_db: int | None = None

    def configure(self) -> None:
        free = [db for db in REDIS_DBS if redis_dbsize(db) == 0]
        if not free:
            raise RuntimeError(f"Redis DBs {REDIS_DBS} all hold keys: not ours to use (or earlier runs left them)")
        self.redis_db = free[0]
        self.notes.append(f"Bayes in Redis DB {self.redis_db}")
        shutil.copytree("/etc/rspamd", self.conf)
        for sub in ("local/local.d", "local/override.d", "db", "run", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        ld = self.local / "local.d"
        (ld / "options.inc").write_text(
            f'dns {{ nameserver = ["{DEAD_RESOLVER}"]; timeout = 0.2s; retransmits = 1; }}\n'
            'local_addrs = "127.0.0.0/8";\n'
        )
        (ld / "worker-normal.inc").write_text(f'bind_socket = "127.0.0.1:{self.port}";\n')
        (ld / "worker-controller.inc").write_text(f'bind_socket = "127.0.0.1:{self.ctrl_port}";\n')
        (ld / "worker-proxy.inc").write_text("enabled = false;\n")
        (ld / "worker-fuzzy.inc").write_text("enabled = false;\n")
        (ld / "logging.inc").write_text(f'type = "file";\nfilename = "{self.log}";\nlevel = "info";\n')
        (ld / "redis.conf").write_text(f'servers = "127.0.0.1:6379";\ndb = "{self.redis_db}";\n')
        (ld / "classifier-bayes.conf").write_text(
            f'backend = "redis";\nservers = "127.0.0.1:6379";\ndb = "{self.redis_db}";\nautolearn = false;\n'
        )
        for module in DISABLED:
            (ld / f"{module}.conf").write_text("enabled = false;\n")
        (ld / "phishing.conf").write_text("openphish_enabled = false;\nphishtank_enabled = false;\n")
        # HELO/hostname checks resolve names; so do the From-host checks (HFILTER_FROMHOST_NORES_A_OR_MX
        # showed `dns req: 3` per message with them on), so those are off too
        (ld / "hfilter.conf").write_text("helo_enabled = false;\nhostname_enabled = false;\nfrom_enabled = false;\n")
        # the corpus is from 2002: a date in the past says nothing here
        (ld / "groups.conf").write_text('symbols {\n  "DATE_IN_PAST" { weight = 0.0; }\n}\n')
        self.version = sh(["rspamd", "--version"]).stdout.strip()

    def _var_args(self) -> list[str]:
        return [
            f"--var=CONFDIR={self.conf}",
            f"--var=LOCAL_CONFDIR={self.local}",
            f"--var=DBDIR={self.dir / 'db'}",
            f"--var=RUNDIR={self.dir / 'run'}",
            f"--var=LOGDIR={self.dir / 'log'}",
        ]

    def start(self) -> None:
        cmd = [
            "rspamd",
            "-f",
            "-i",
            "-u",
            "root",
            "-g",
            "root",
            "-c",
            str(self.conf / "rspamd.conf"),
            *self._var_args(),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300  # it compiles its regexp cache first; slow on a busy machine
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = self.log.read_text()[-3000:] if self.log.exists() else ""
                raise RuntimeError(f"rspamd exited {self.proc.returncode}: {err[-2000:]} {log}")
            try:
                for port in (self.port, self.ctrl_port):
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        pass
                break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError("rspamd did not start listening")

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc else []

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        if self.redis_db is not None:
            redis_flushdb(self.redis_db)

    def learn(self, samples: list[Sample]) -> dict:
        t0 = time.perf_counter()
        counts: dict = {}
        for cmd, pick in (("learn_spam", lambda s: s.positive), ("learn_ham", lambda s: not s.positive)):
            files = [str(s.path) for s in samples if pick(s)]
            learned = 0
            for i in range(0, len(files), 400):
                r = sh(
                    ["rspamc", "-h", f"127.0.0.1:{self.ctrl_port}", "-n", "4", "-t", "60",
                     "--header", "Learn-Type: bulk", cmd, *files[i : i + 400]]
                )  # fmt: skip
                learned += r.stdout.count("success = true")
            counts[cmd] = {"files": len(files), "learned": learned}
        counts["redis_keys"] = redis_dbsize(self.redis_db)
        counts["seconds"] = round(time.perf_counter() - t0, 1)
        return counts

    def score(self, sample: Sample) -> Scored:
        """POST /checkv2 on the normal worker, one HTTP connection per message."""
        body = sample.path.read_bytes()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("POST", "/checkv2", body=body, headers={"Content-Length": str(len(body))})
            resp = conn.getresponse()
            data = json.loads(resp.read())
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return Scored(sample, 0.0, False, error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        if "score" not in data:
            return Scored(sample, 0.0, False, error=str(data)[:200])
        return Scored(sample, float(data["score"]), data.get("action") in FLAG_ACTIONS)

    def symbols(self, sample: Sample) -> dict:
        body = sample.path.read_bytes()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", "/checkv2", body=body)
        data = json.loads(conn.getresponse().read())
        conn.close()
        return data

    def dns_check(self) -> dict:
        """Per-message task lines in the log carry `dns req: N`: count them and any non-zero."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        reqs = [int(m) for m in re.findall(r"dns req: (\d+)", text)]
        return {"tasks_logged": len(reqs), "nonzero": sum(1 for r in reqs if r), "max": max(reqs, default=0)}

    @staticmethod
    def redis_pids() -> list[int]:
        return pids_named("redis-server")
