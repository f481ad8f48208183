"""SpamAssassin peer: private site config, own Bayes DB, `spamd -L` on loopback, `spamc` per message."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from common import Sample, Scored, sh

LOCAL_CF = """\
# bench/peers: local tests only, no network, no auto-learn, private Bayes DB
dns_available no
skip_rbl_checks 1
use_razor2 0
use_pyzor 0
use_dcc 0
bayes_auto_learn 0
use_bayes 1
bayes_path {bayes}/bayes
bayes_file_mode 0777
lock_method flock
required_score 5
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SpamAssassin:
    name = "SpamAssassin"

    def __init__(self, workdir: Path, children: int = 8) -> None:
        self.dir = workdir / "sa"
        self.site = self.dir / "site"
        self.bayes = self.dir / "bayes"
        self.home = self.dir / "home"
        self.port = free_port()
        self.children = children
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "spamd.log"
        self.notes: list[str] = []

    # ---- configuration --------------------------------------------------------------------------
    def configure(self) -> None:
        for d in (self.site, self.bayes, self.home):
            d.mkdir(parents=True, exist_ok=True)
        for pre in glob.glob("/etc/spamassassin/*.pre"):  # the plugin list (incl. sa-compile.pre)
            shutil.copy(pre, self.site)
        (self.site / "local.cf").write_text(LOCAL_CF.format(bayes=self.bayes))
        self.version = sh(["spamd", "--version"]).stdout.splitlines()[0].strip()
        if shutil.which("sa-compile"):
            compiled = glob.glob("/var/lib/spamassassin/compiled/*/*/bases_body_0.pl")
            if not compiled:
                print("sa: sa-compile (body rules to native code) ...", flush=True)
                r = sh(["sa-compile", "--quiet", f"--siteconfigpath={self.site}"])
                self.notes.append(f"sa-compile exit {r.returncode}")
            else:
                self.notes.append("sa-compile: compiled body rules already present")
        else:
            self.notes.append("sa-compile not available: body rules interpreted")

    def learn(self, samples: list[Sample]) -> dict:
        """sa-learn --spam / --ham on the given files; returns counts and seconds."""
        t0 = time.perf_counter()
        counts = {}
        for kind, pick in (("spam", lambda s: s.positive), ("ham", lambda s: not s.positive)):
            files = [str(s.path) for s in samples if pick(s)]
            counts[kind] = len(files)
            for i in range(0, len(files), 400):
                r = sh(
                    ["sa-learn", f"--siteconfigpath={self.site}", "--no-sync", f"--{kind}", *files[i : i + 400]],
                    env=dict(os.environ, HOME=str(self.home)),
                )
                if r.returncode != 0:
                    raise RuntimeError(f"sa-learn failed: {r.stderr[-2000:]}")
        sh(["sa-learn", f"--siteconfigpath={self.site}", "--sync"], env=dict(os.environ, HOME=str(self.home)))
        dump = sh(["sa-learn", f"--siteconfigpath={self.site}", "--dump", "magic"]).stdout
        nspam = nham = None
        for line in dump.splitlines():
            if line.rstrip().endswith("nspam"):
                nspam = int(line.split()[2])
            if line.rstrip().endswith("nham"):
                nham = int(line.split()[2])
        return {**counts, "db_nspam": nspam, "db_nham": nham, "seconds": round(time.perf_counter() - t0, 1)}

    # ---- daemon ---------------------------------------------------------------------------------
    def start(self) -> None:
        os.chmod(self.dir.parent, 0o755)  # spamd runs as nobody and must reach its config
        shutil.chown(self.dir, "nobody")
        for p in self.dir.rglob("*"):
            shutil.chown(p, "nobody")
        cmd = [
            "spamd",
            "-L",  # local tests only
            "-x",  # no per-user config
            f"--siteconfigpath={self.site}",
            f"--listen=127.0.0.1:{self.port}",
            "--allowed-ips=127.0.0.1",
            "-u",
            "nobody",
            f"--helper-home-dir={self.home}",
            f"--max-children={self.children}",
            f"--min-children={self.children}",
            f"--min-spare={self.children}",
            f"--max-spare={self.children}",
            "-s",
            str(self.log),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"spamd exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("spamd did not start listening")
        # warm: one ping
        sh(["spamc", "-d", "127.0.0.1", "-p", str(self.port), "-K"])

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

    # ---- scanning -------------------------------------------------------------------------------
    def score(self, sample: Sample) -> Scored:
        """One spamc (one TCP connection) per message, stock size limit (500 KB: larger ones are skipped)."""
        with open(sample.path, "rb") as stdin:
            r = subprocess.run(
                ["spamc", "-d", "127.0.0.1", "-p", str(self.port), "-c"],
                stdin=stdin,
                capture_output=True,
                check=False,
            )
        out = r.stdout.decode(errors="replace").strip()
        try:
            score, threshold = (float(x) for x in out.split("/"))
        except ValueError:
            return Scored(sample, 0.0, False, error=f"spamc exit {r.returncode}: {out[:80]}")
        if threshold == 0:  # spamc prints 0/0 when it did not get a score
            big = sample.path.stat().st_size > 500 * 1024
            why = "skipped: over spamc's 500 KB limit" if big else f"no score (spamc exit {r.returncode})"
            return Scored(sample, 0.0, False, error=why)
        return Scored(sample, score, score >= threshold)
