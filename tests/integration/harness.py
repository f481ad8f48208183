"""`mailwarden serve` as a real process on loopback ports, for tests that treat it as a black box."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiosmtpd.controller import Controller

from mailwarden.service.config import load_config
from mailwarden.service.runtime import Runtime
from mailwarden.store import History, MessageDetail
from tests.processes import end_group

SCAN_PROCESS_GRACE_SECONDS = 10.0  # for the scanning processes of a killed server to notice and exit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Retry `check` until it returns something truthy without raising; then return that."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (AssertionError, LookupError) as exc:
            last = exc
        time.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError(f"condition not met within {timeout:g} s")


@dataclass
class Mailwarden:
    """A configured instance: its directory, ports, organisation document; start/stop/kill it."""

    root: Path
    listeners: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    extra_config: str = ""
    dns_port: int = 0  # the loopback DNS server the instance asks (no test reaches a real resolver)

    @property
    def config_path(self) -> Path:
        return self.root / "mailwarden.toml"

    @property
    def journal_address(self) -> str:
        return "journal@mailwarden.test"

    def write_config(
        self,
        *,
        outbound_networks: tuple[str, ...] = ("127.0.0.0/8",),
        smart_host: str = "",
        journal_access: str = 'allowed_networks = ["127.0.0.0/8", "::1/128"]',
    ) -> None:
        """The config file; `journal_access` is the journal listener's client rule, as TOML lines."""
        blocks = []
        for name, port in self.listeners.items():
            block = f'[[smtp.listeners]]\nname = "{name}"\nrole = "{name}"\nhost = "127.0.0.1"\nport = {port}\n'
            if name == "journal":
                block += f'journal_addresses = ["{self.journal_address}"]\n{journal_access}\n'
            if name == "outbound":
                block += f"allowed_networks = {list(outbound_networks)!r}\n".replace("'", '"')
            blocks.append(block)
        self.config_path.write_text(
            'organisation = "acme"\n'
            '[paths]\ndata_dir = "var"\n'
            '[smtp]\nhostname = "mailwarden.test"\n'
            "[processing]\npolicy_refresh_seconds = 0.5\nbatch_delay_ms = 5\n"
            f'[dns]\nnameservers = ["127.0.0.1"]\nport = {self.dns_port or 9}\ntimeout = 0.5\n'
            f'[delivery]\nhostname = "mailwarden.test"\npools = {{ default = "{smart_host}" }}\n'
            "first_retry = 0.3\nmax_retry = 1\npoll_interval = 0.2\nconnect_timeout = 5\n"
            + self.extra_config
            + "\n".join(blocks)
        )

    def import_organisation(self, document: dict[str, Any]) -> None:
        path = self.root / "org.yaml"
        path.write_text(yaml.safe_dump(document))
        self.cli("policy", "import", str(path))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "mailwarden", *args, "--config", str(self.config_path)],
            cwd=self.root,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"mailwarden {' '.join(args)} failed: {result.stderr}")
        return result

    def start(self) -> None:
        """Start `mailwarden serve` in a session of its own (its process group holds all it starts)."""
        log = (self.root / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailwarden", "serve", "--config", str(self.config_path), "--drain-timeout", "10"],
            cwd=self.root,
            env=_env() | {"PYTHONFAULTHANDLER": "1"},  # SIGABRT writes every thread's stack to the log
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        for port in self.listeners.values():
            try:
                wait_for_port(port)
            except TimeoutError:
                self.kill()  # a server that did not come up is not left running
                raise AssertionError("mailwarden serve did not start:\n" + self.log()) from None

    def stop(self) -> int:
        """SIGTERM and wait for the drain; the exit code. Whatever it leaves running is killed."""
        process = self._running()
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # what it waits on, for the failure to show
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            raise AssertionError(
                "mailwarden serve did not stop within 60 s of SIGTERM; the end of its log, with the stack of "
                "every thread:\n" + self.log()[-8000:]
            ) from None
        finally:
            self._end(process)

    def kill(self) -> None:
        """SIGKILL the server alone, as a crash would; then end whatever it started that outlives it.

        The product's scanning processes end with the server (test_serve_processes.py checks that
        they do by themselves); here they get a grace period and are killed after it, so that a
        regression fails that test but leaks no process into the rest of the session.
        """
        process = self._running()
        process.kill()
        self._end(process)

    def _running(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, "mailwarden serve is not running"
        return self.process

    def _end(self, process: subprocess.Popen[bytes]) -> None:
        self.process = None
        try:
            process.wait(timeout=30)
        finally:
            end_group(process.pid, grace=SCAN_PROCESS_GRACE_SECONDS)

    def log(self) -> str:
        path = self.root / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def runtime(self) -> Runtime:
        return Runtime(load_config(self.config_path, environ={}))

    def history(self) -> History:
        return self.runtime().history

    def messages(self, **query: Any) -> list[MessageDetail]:
        """Every message in history matching the search, with detail, oldest first."""
        from mailwarden.store import HistoryQuery

        rt = self.runtime()
        try:
            page = rt.history.search(HistoryQuery(limit=1000, **query))
            return [rt.history.get(item.id) for item in reversed(page.items)]
        finally:
            rt.close()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def organisation(*, monitor_only: bool, domains: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "acme", "monitor_only": monitor_only, "domains": domains}


_OUR_RECEIVED = re.compile(rb"Received: from [^\r\n]+(?:\r\n\t[^\r\n]+)*\r\n")


def relayed_as_sent(content: bytes, raw: bytes) -> bool:
    """`content` is `raw` as sent, below the one Received field mailwarden puts on mail it accepts to relay."""
    field = _OUR_RECEIVED.match(content)
    return field is not None and b" (mailwarden) with " in field.group() and content[field.end() :] == raw


class Sink:
    """A next-hop SMTP server that can answer 451 a few times before it accepts."""

    def __init__(self, *, temporary_failures: int = 0) -> None:
        self.temporary_failures = temporary_failures
        self.received: list[tuple[str, list[str], bytes]] = []
        self.attempts = 0
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.attempts <= self.temporary_failures:
            return "451 4.7.1 Try again later"
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: queued"
