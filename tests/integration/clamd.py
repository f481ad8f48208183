"""A private clamd for integration tests and the malware benchmark.

Everything lives in one temporary directory: a tiny signature database written here (EICAR as a
`.hdb` hash and a `.ndb` body signature, and one custom marker), clamd.conf, the Unix socket, the log.
It also listens on a free 127.0.0.1 port. The system clamd and its databases are never touched.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

CLAMD = shutil.which("clamd") or ("/usr/sbin/clamd" if Path("/usr/sbin/clamd").exists() else None)

# Kept in pieces so no file in the tree holds the test string itself.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-" + b"TEST-FILE!$H+H*"
MARKER = b"MAILWARDEN-CLAMD-TEST-MARKER-7f3a"
EICAR_HDB_NAME = "Mailwarden.Test.EICAR-HDB"
EICAR_NDB_NAME = "Mailwarden.Test.EICAR-NDB"
MARKER_NAME = "Mailwarden.Test.Marker"

CLAMD_CONF = """\
Foreground yes
LocalSocket {socket}
TCPSocket {port}
TCPAddr 127.0.0.1
DatabaseDirectory {root}/db
TemporaryDirectory {root}/tmp
LogFile {root}/clamd.log
PidFile {root}/clamd.pid
StreamMaxLength {stream_max}
MaxThreads {threads}
ReadTimeout 10
CommandReadTimeout 5
SelfCheck 3600
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ClamdDaemon:
    """Start with `start()`, stop with `stop()` (or `with ClamdDaemon().start() as daemon:`, which
    stops it however the block ends); `socket_path` and `port` say where it listens."""

    def __init__(self, *, stream_max: str = "1M", threads: int = 4) -> None:
        if CLAMD is None:
            raise FileNotFoundError("clamd is not installed (apt-get install clamav-daemon)")
        self.root = Path(tempfile.mkdtemp(prefix="mw-clamd-"))
        self.socket_path = self.root / "clamd.sock"
        self.port = free_port()
        self.stream_max = stream_max
        self.threads = threads
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        db = self.root / "db"
        db.mkdir()
        (self.root / "tmp").mkdir()
        (db / "mailwarden-test.hdb").write_text(f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:{EICAR_HDB_NAME}\n")
        (db / "mailwarden-test.ndb").write_text(
            f"{EICAR_NDB_NAME}:0:0:{EICAR.hex()}\n{MARKER_NAME}:0:*:{MARKER.hex()}\n"
        )
        conf = self.root / "clamd.conf"
        conf.write_text(
            CLAMD_CONF.format(
                socket=self.socket_path,
                port=self.port,
                root=self.root,
                stream_max=self.stream_max,
                threads=self.threads,
            )
        )
        return conf

    def start(self, timeout: float = 60.0) -> ClamdDaemon:
        conf = self.write_config()
        assert CLAMD is not None
        self.process = subprocess.Popen(
            [CLAMD, f"--config-file={conf}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clamd exited with {self.process.returncode}: {self.log()[-2000:]}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"clamd did not answer PING within {timeout:g} s: {self.log()[-2000:]}")

    def __enter__(self) -> ClamdDaemon:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(str(self.socket_path))
                s.sendall(b"zPING\0")
                return s.recv(16) == b"PONG\0"
        except OSError:
            return False

    def log(self) -> str:
        path = self.root / "clamd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop exactly the clamd this object started, and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
