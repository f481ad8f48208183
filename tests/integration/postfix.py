"""A private Postfix instance for integration tests.

Everything lives in a temporary directory: config_directory, queue_directory, data_directory and the
mail log. Postfix listens on one free loopback port. The system Postfix (its configuration, queue and
processes) is never touched. It needs root (the master drops privileges to `mail_owner`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.conftest import unavailable

POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix" if Path("/usr/sbin/postfix").exists() else None)

# `{smtpd}` is the listening address; `extra` services (e.g. a second smtp transport) are appended
MASTER_CF = """\
{smtpd} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

# What every private instance needs; the test adds its own routing (`{root}` / `{conf}` are replaced).
BASE_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
mydomain = test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
local_recipient_maps =
alias_maps =
alias_database =
smtputf8_enable = no
smtpd_tls_cert_file = {root}/cert.pem
smtpd_tls_key_file = {root}/key.pem
"""


def postfix_binary() -> str:
    """The postfix command; skips (fails when CI=true) without Postfix or without root."""
    if POSTFIX is None:
        unavailable("postfix is not installed (apt-get install postfix)")
    if os.geteuid() != 0:
        unavailable("a private postfix instance needs root")
    assert POSTFIX is not None
    return POSTFIX


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PrivatePostfix:
    binary: str
    root: Path
    port: int

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def deliveries(self, recipient: str) -> list[str]:
        """The mail log's delivery lines (`to=<recipient>, relay=..., status=...`) for one recipient."""
        marker = f" to=<{recipient}>,"
        return [line for line in self.log().splitlines() if marker in line and " status=" in line]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "MAIL_CONFIG": str(self.conf)}

    def _postfix(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "-c", str(self.conf), command],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def _master_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])
        return None

    def stop(self) -> None:
        """`postfix stop`, then make sure the master and every process it started are gone."""
        master = self._master_pid()
        family = _process_tree(master) if master is not None else {}
        self._postfix("stop")
        if _wait_gone(family, timeout=10):
            return
        self._postfix("abort")
        if _wait_gone(family, timeout=5):
            return
        for pid, started in family.items():
            if _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _wait_gone(family, timeout=5)


@contextlib.contextmanager
def private_postfix(
    binary: str,
    main_cf: str,
    *,
    files: Mapping[str, str] | None = None,
    master_cf_extra: str = "",
    port: int | None = None,
) -> Iterator[PrivatePostfix]:
    """Start a private Postfix with BASE_MAIN_CF + `main_cf`; stop it and remove its directory afterwards.

    `files` are written into the config directory (lookup tables). In `main_cf`, `{root}` and `{conf}`
    are replaced by the instance's directories (plain replacement: braces of `inline:{...}` stay).
    """
    # not under pytest's tmp_path (mode 0700): the postfix user must be able to reach its directories
    root = Path(tempfile.mkdtemp(prefix="mailwarden-postfix-"))
    instance = PrivatePostfix(binary, root, port or free_port())
    try:
        root.chmod(0o755)
        instance.conf.mkdir()
        (root / "data").mkdir()
        (root / "queue").mkdir()
        shutil.chown(root / "data", "postfix")
        _write_cert(root)
        text = (BASE_MAIN_CF + main_cf).replace("{root}", str(root)).replace("{conf}", str(instance.conf))
        (instance.conf / "main.cf").write_text(text)
        (instance.conf / "master.cf").write_text(MASTER_CF.format(smtpd=f"127.0.0.1:{instance.port}") + master_cf_extra)
        for name, content in (files or {}).items():
            (instance.conf / name).write_text(content)
        started = instance._postfix("start")
        if started.returncode != 0:
            raise AssertionError(f"postfix did not start: {started.stdout}{started.stderr}\n{instance.log()}")
        try:
            _wait_for_port(instance.port)
            yield instance
        finally:
            instance.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- helpers --------------------------------------------------------------------------------------
def _write_cert(root: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "next-hop.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    (root / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (root / "key.pem").chmod(0o600)


def _wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"postfix does not listen on 127.0.0.1:{port}")


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: tells a process from a later one that reused its PID.

    None when there is no such process, or only its zombie (it has exited).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if len(fields) < 20 or fields[0] == "Z":
        return None
    return fields[19]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _process_tree(root_pid: int) -> dict[int, str]:
    """The master and its descendants, each with its start time."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    tree: dict[int, str] = {}
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        started = _start_time(pid)
        if started is not None:
            tree[pid] = started
            todo.extend(children.get(pid, []))
    return tree


def _wait_gone(family: Mapping[int, str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid, started in family.items() if _start_time(pid) == started]
        if not alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
