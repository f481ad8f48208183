"""A private rsyslogd (Debian's rsyslog and rsyslog-gnutls) as the collector of the syslog sink's tests.

Its configuration, work directory, certificate and output live in one temporary directory. It listens on
free loopback ports: TLS (imtcp with the gtls driver, anonymous client auth, the certificate of
tests/fakes/tls.make_pki), plain TCP (imptcp) and UDP (imudp), all with octet-counted framing accepted.
Every message it receives is written as one JSON object per line with its parsed RFC 5424 fields, so a test
sees what rsyslog understood, not just what was sent. It runs in the foreground (`-n`) as a child of the
test, which always stops it. The system's rsyslog service is never touched.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.fakes.tls import TestPki, make_pki
from tests.integration.harness import free_port, wait_for_port
from tests.services import unavailable

RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None)
# the TLS driver is a package of its own (rsyslog-gnutls); rsyslogd starts without it and then refuses TLS
GTLS_MODULES = [*Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so"), *Path("/usr/lib/rsyslog").glob("lmnsd_gtls.so")]
PROBE_APP = "mw-probe"

RSYSLOG_CONF = """\
global(
  workDirectory="{root}/work"
  maxMessageSize="64k"
  defaultNetstreamDriverCAFile="{pki.ca_file}"
  defaultNetstreamDriverCertFile="{pki.cert_file}"
  defaultNetstreamDriverKeyFile="{pki.key_file}"
  parser.escapeControlCharactersOnReceive="off"
)
# one worker: the output keeps the order of arrival
main_queue(queue.workerThreads="1")

module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
module(load="imptcp")
module(load="imudp")

template(name="record" type="list" option.jsonf="on") {{
  property(outname="input" name="inputname" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app_name" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}}

ruleset(name="feed") {{
  if $app-name == "{probe}" then {{
    action(type="omfile" file="{root}/probe.log")
    stop
  }}
  action(type="omfile" file="{root}/received.jsonl" template="record")
}}

input(type="imtcp" address="127.0.0.1" port="{tls_port}" ruleset="feed")
input(type="imptcp" address="127.0.0.1" port="{tcp_port}" ruleset="feed")
input(type="imudp" address="127.0.0.1" port="{udp_port}" ruleset="feed")

# rsyslog's own messages (TLS handshake errors and the like), for a failing test's report
action(type="omfile" file="{root}/rsyslogd.log")
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRsyslog:
    """`start()` / `stop()` (again and again: the ports stay); `records()` is what it wrote so far."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pki: TestPki = make_pki(root / "pki")
        self.tls_port = free_port()
        self.tcp_port = free_port()
        self.udp_port = free_udp_port()
        self.process: subprocess.Popen[bytes] | None = None
        (root / "work").mkdir(exist_ok=True)
        self.conf = root / "rsyslog.conf"
        self.conf.write_text(
            RSYSLOG_CONF.format(
                root=root,
                pki=self.pki,
                probe=PROBE_APP,
                tls_port=self.tls_port,
                tcp_port=self.tcp_port,
                udp_port=self.udp_port,
            )
        )

    def start(self, timeout: float = 20.0) -> None:
        assert RSYSLOGD is not None
        output = (self.root / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.root / "rsyslogd.pid")],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        output.close()
        try:
            wait_for_port(self.tls_port, timeout)
            wait_for_port(self.tcp_port, timeout)
            self._wait_for_udp(timeout)
        except (TimeoutError, AssertionError):
            self.stop()
            raise AssertionError(f"rsyslogd did not start:\n{self.log()}") from None

    def _wait_for_udp(self, timeout: float) -> None:
        """UDP has no handshake: send probes (filtered to their own file) until one arrives."""
        probe_file = self.root / "probe.log"
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, "rsyslogd exited"
                s.sendto(f"<14>1 - - {PROBE_APP} - - - ready".encode(), ("127.0.0.1", self.udp_port))
                if probe_file.exists() and probe_file.stat().st_size > 0:
                    return
                time.sleep(0.05)
        raise TimeoutError("rsyslogd's UDP input did not answer")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def records(self) -> list[dict[str, Any]]:
        """Every message received so far (probes aside), in the order rsyslog wrote them."""
        path = self.root / "received.jsonl"
        if not path.exists():
            return []
        whole = path.read_bytes().rpartition(b"\n")[0]  # rsyslog may be half-way through writing the last line
        return [json.loads(line) for line in whole.decode().splitlines() if line.strip()]

    def wait_for_records(self, count: int, timeout: float = 15.0, settle: float = 0.3) -> list[dict[str, Any]]:
        """The records once there are `count`, after a short wait for any extra (a duplicate) to show."""
        deadline = time.monotonic() + timeout
        while len(self.records()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(settle)
        return self.records()

    def log(self) -> str:
        parts = [self.root / name for name in ("stdout.log", "rsyslogd.log")]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())


@contextlib.contextmanager
def private_rsyslog(*, started: bool = True) -> Iterator[PrivateRsyslog]:
    """A private rsyslogd (running unless `started=False`), stopped and removed afterwards."""
    if RSYSLOGD is None:
        unavailable("rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls)")
    if not GTLS_MODULES:
        unavailable("rsyslog's TLS driver lmnsd_gtls.so is missing (apt-get install rsyslog-gnutls)")
    root = Path(tempfile.mkdtemp(prefix="mailwarden-rsyslog-"))
    instance = PrivateRsyslog(root)
    try:
        if started:
            instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)
