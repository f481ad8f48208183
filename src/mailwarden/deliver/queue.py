"""The persistent delivery queue: one file per job, written like a mail spool (temp file, fsync, rename, fsync dir).

A job file is one line of JSON (the job without its message) followed by the message bytes exactly as
they will be sent. The JSON records the size and SHA-256 of the message, so a truncated or damaged file
is recognised and moved aside to `corrupt/` instead of being sent.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import threading
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from mailwarden.durable import atomic_write, fsync_directory
from mailwarden.ids import new_id

log = structlog.get_logger(__name__)

FORMAT_VERSION = 1
JOB_SUFFIX = ".job"
DONE_SUFFIX = ".done"
CORRUPT_DIR = "corrupt"
HELD_DIR = "held"
_JOB_NAME = re.compile(r"^[0-9A-Z]{26}\.job$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.?$")
MAX_HEADER_LINE = 1024 * 1024


class JobKind(StrEnum):
    MESSAGE = "message"
    DSN = "dsn"


@dataclass(frozen=True, slots=True)
class Route:
    """The next hop of a job.

    `host` empty means "the internet": the pool's smart host when the pool has one, else the MX hosts of
    each recipient's domain. A named host is connected to directly (its A/AAAA records, no MX lookup).
    """

    host: str = ""
    port: int = 25
    require_tls: bool = False
    pool: str = "default"

    def __str__(self) -> str:
        if not self.host:
            return f"pool:{self.pool}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_next_hop(value: str, *, require_tls: bool = False, pool: str = "default") -> Route:
    """A route from "host", "host:port", "[ip]" or "[ip]:port" (brackets are how an IPv6 address takes a port)."""
    text = value.strip()
    port = 25
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"next hop {value!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not _HOST.match(host):
                raise ValueError(f"next hop {value!r}: {host!r} is neither an IP address nor a host name") from None
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"next hop {value!r}: unexpected {rest!r} after ']'")
            port = _port(value, rest[1:])
    else:
        host, sep, port_text = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
        if not sep:
            host = text
        else:
            port = _port(value, port_text)
        if ":" in host:
            raise ValueError(f"next hop {value!r}: write an IPv6 address in brackets, as [addr]:port")
        if not _HOST.match(host):
            raise ValueError(f"next hop {value!r}: {host!r} is not a host name")
    return Route(host=host.rstrip("."), port=port, require_tls=require_tls, pool=pool)


def _port(value: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"next hop {value!r}: {text!r} is not a port number")
    return int(text)


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """One message on its way to one route, for the recipients still to be delivered.

    `mail_from` is "" for the null sender (bounces and DSNs). `message_id` is the history id of the
    message the job belongs to (a DSN job carries the id of the message it reports on).
    """

    id: str
    message_id: str
    mail_from: str
    recipients: tuple[str, ...]
    route: Route
    message: bytes = field(repr=False)
    created_at: datetime
    next_attempt_at: datetime
    expires_at: datetime
    attempts: int = 0
    last_reply: str = ""
    kind: JobKind = JobKind.MESSAGE

    @classmethod
    def create(
        cls,
        *,
        message_id: str,
        mail_from: str,
        recipients: list[str] | tuple[str, ...],
        route: Route,
        message: bytes,
        lifetime: timedelta,
        kind: JobKind = JobKind.MESSAGE,
        now: datetime | None = None,
    ) -> DeliveryJob:
        """A new job, due at once, that expires `lifetime` from now."""
        if not recipients:
            raise ValueError("a delivery job needs at least one recipient")
        for address in (mail_from, *recipients):
            if any(ch in address for ch in "\r\n<> "):
                raise ValueError(f"{address!r} is not an envelope address")
        now = now or datetime.now(UTC)
        return cls(
            id=new_id(now),
            message_id=message_id,
            mail_from=mail_from,
            recipients=tuple(recipients),
            route=route,
            message=message,
            created_at=now,
            next_attempt_at=now,
            expires_at=now + lifetime,
            kind=kind,
        )


class CorruptJobError(Exception):
    """A job file that cannot be read back as the job that was written."""


def _encode(job: DeliveryJob) -> bytes:
    meta = {
        "version": FORMAT_VERSION,
        "id": job.id,
        "message_id": job.message_id,
        "mail_from": job.mail_from,
        "recipients": list(job.recipients),
        "route": {
            "host": job.route.host,
            "port": job.route.port,
            "require_tls": job.route.require_tls,
            "pool": job.route.pool,
        },
        "created_at": job.created_at.isoformat(),
        "next_attempt_at": job.next_attempt_at.isoformat(),
        "expires_at": job.expires_at.isoformat(),
        "attempts": job.attempts,
        "last_reply": job.last_reply,
        "kind": job.kind.value,
        "size": len(job.message),
        "sha256": hashlib.sha256(job.message).hexdigest(),
    }
    # ensure_ascii keeps the header one line whatever the addresses and replies hold
    return json.dumps(meta, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n" + job.message


def _decode_meta(line: bytes) -> dict[str, Any]:
    try:
        meta = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptJobError(f"header is not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CorruptJobError("header is not a JSON object")
    if meta.get("version") != FORMAT_VERSION:
        raise CorruptJobError(f"unknown format version {meta.get('version')!r}")
    return meta


def _decode(data: bytes) -> DeliveryJob:
    line, sep, message = data.partition(b"\n")
    if not sep:
        raise CorruptJobError("no header line")
    meta = _decode_meta(line)
    try:
        if len(message) != meta["size"]:
            raise CorruptJobError(f"message is {len(message)} bytes, header says {meta['size']}")
        if hashlib.sha256(message).hexdigest() != meta["sha256"]:
            raise CorruptJobError("message does not match its SHA-256")
        route = meta["route"]
        recipients = meta["recipients"]
        if not isinstance(recipients, list) or not recipients or not all(isinstance(r, str) for r in recipients):
            raise CorruptJobError("recipients must be a non-empty list of addresses")
        return DeliveryJob(
            id=str(meta["id"]),
            message_id=str(meta["message_id"]),
            mail_from=str(meta["mail_from"]),
            recipients=tuple(recipients),
            route=Route(
                host=str(route["host"]),
                port=int(route["port"]),
                require_tls=bool(route["require_tls"]),
                pool=str(route["pool"]),
            ),
            message=message,
            created_at=_aware(meta["created_at"]),
            next_attempt_at=_aware(meta["next_attempt_at"]),
            expires_at=_aware(meta["expires_at"]),
            attempts=int(meta["attempts"]),
            last_reply=str(meta["last_reply"]),
            kind=JobKind(meta["kind"]),
        )
    except CorruptJobError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptJobError(f"bad or missing field: {exc!r}") from None


def _aware(text: object) -> datetime:
    value = datetime.fromisoformat(str(text))
    if value.tzinfo is None:
        raise ValueError(f"time without zone: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class FinishedEvent:
    """A delivery event of a finished job, kept on disk until the trace has it."""

    message_id: str
    kind: str
    recipient: str
    detail: str
    reply: str


class DeliveryQueue:
    """Jobs waiting for delivery, in a directory of their own. One agent (process) owns a directory.

    The in-memory index holds only each job's next attempt time; jobs are read from disk when due, so
    the queue can grow during a long outage without growing memory by the size of the messages.
    Methods are safe to call from worker threads.

    Two more states keep a crash from delivering a message twice:

    * **held** (`held/<id>.job`): written before the message's history record, released (renamed into
      the queue) after it. The agent never sees a held job, so a replay of the spool entry after a
      crash can write the same job again instead of sending a second copy of one already delivered;
      at start-up the owner releases the held jobs whose message is in history and discards the rest.
    * **finished** (`<id>.done`): the trace events of a job that needs no more attempts, written in
      place of the job file before those events are reported, so a crash while they are being written
      neither sends the job again nor loses them (`finished()` gives them back at the next start).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._held = self.directory / HELD_DIR
        self._held.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._index: dict[str, datetime] = {}
        self._finishing: set[str] = set()  # finished jobs whose events are not all reported yet
        self._load()

    def _path(self, job_id: str) -> Path:
        return self.directory / f"{job_id}{JOB_SUFFIX}"

    def _load(self) -> None:
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith(".tmp-"):
                # a write that a crash interrupted before its rename: the job was never acknowledged
                path.unlink(missing_ok=True)
                continue
            if path.name.endswith(DONE_SUFFIX):
                self._finishing.add(path.name.removesuffix(DONE_SUFFIX))
                continue
            if not path.is_file() or not path.name.endswith(JOB_SUFFIX):
                continue
            if path.with_suffix(DONE_SUFFIX).exists():  # finished; a crash came before the job file went
                path.unlink(missing_ok=True)
                continue
            try:
                if not _JOB_NAME.match(path.name):
                    raise CorruptJobError("file name is not a job id")
                with path.open("rb") as fh:
                    meta = _decode_meta(fh.readline(MAX_HEADER_LINE))
                if meta.get("id") != path.name.removesuffix(JOB_SUFFIX):
                    raise CorruptJobError("job id does not match the file name")
                self._index[meta["id"]] = _aware(meta["next_attempt_at"])
            except (CorruptJobError, ValueError, OSError) as exc:
                self._move_aside(path, str(exc))

    def enqueue(self, job: DeliveryJob) -> None:
        """Write the job durably; it is on disk when this returns."""
        self._write(job)
        with self._lock:
            self._index[job.id] = job.next_attempt_at

    def due(self, now: datetime) -> list[DeliveryJob]:
        """Jobs whose next attempt is at or before `now`, earliest first. Unreadable jobs are moved aside."""
        with self._lock:
            ids = sorted((at, job_id) for job_id, at in self._index.items() if at <= now)
        jobs = []
        for _, job_id in ids:
            job = self._read(job_id)
            if job is not None:
                jobs.append(job)
        return jobs

    def is_due(self, job_id: str, now: datetime) -> bool:
        """True while the job is still queued and due (cheap: the in-memory index only)."""
        with self._lock:
            at = self._index.get(job_id)
        return at is not None and at <= now

    def get(self, job_id: str) -> DeliveryJob | None:
        """The job as stored, or None when it is not (or no longer) queued."""
        with self._lock:
            if job_id not in self._index:
                return None
        return self._read(job_id)

    def retry_at(self, job_id: str, at: datetime) -> DeliveryJob | None:
        """Move a queued job's next attempt to `at` (an administrator's "retry now"); its attempts and last
        reply stay. None when the job is not (or no longer) queued. The caller makes sure no attempt runs."""
        job = self.get(job_id)
        if job is None:
            return None
        updated = replace(job, next_attempt_at=at)
        self._write(updated)
        with self._lock:
            self._index[job.id] = at
        return updated

    def reschedule(self, job: DeliveryJob, reply: str, next_attempt_at: datetime) -> DeliveryJob:
        """Record a failed attempt of `job` (as given, so with its remaining recipients) and when to try again."""
        updated = replace(job, attempts=job.attempts + 1, last_reply=reply, next_attempt_at=next_attempt_at)
        self._write(updated)
        with self._lock:
            self._index[job.id] = next_attempt_at
        return updated

    # ---- held jobs -------------------------------------------------------------------------------
    def hold(self, job: DeliveryJob) -> None:
        """Write the job durably where the agent does not look (see the class docstring)."""
        atomic_write(self._held / f"{job.id}{JOB_SUFFIX}", _encode(job))

    def release(self, job_ids: Collection[str]) -> None:
        """Hand held jobs to the agent (their message is in history now). One directory sync."""
        released = []
        for job_id in job_ids:
            try:
                with (self._held / f"{job_id}{JOB_SUFFIX}").open("rb") as fh:
                    meta = _decode_meta(fh.readline(MAX_HEADER_LINE))
                os.replace(self._held / f"{job_id}{JOB_SUFFIX}", self._path(job_id))
            except FileNotFoundError:
                continue  # released before a crash, or never held
            except (CorruptJobError, OSError) as exc:
                self._move_aside(self._held / f"{job_id}{JOB_SUFFIX}", str(exc))
                continue
            released.append((job_id, _aware(meta["next_attempt_at"])))
        if released:
            self._sync_directory()
            with self._lock:
                self._index.update(released)

    def held(self) -> dict[str, str]:
        """Held jobs: job id → the history id of their message (read at start-up to settle them)."""
        found = {}
        for path in self._held.glob(f"*{JOB_SUFFIX}"):
            try:
                with path.open("rb") as fh:
                    found[path.name.removesuffix(JOB_SUFFIX)] = str(
                        _decode_meta(fh.readline(MAX_HEADER_LINE))["message_id"]
                    )
            except (CorruptJobError, KeyError, OSError) as exc:
                self._move_aside(path, str(exc))
        return found

    def discard_held(self, job_ids: Collection[str]) -> None:
        """Drop held jobs whose message never reached history: the spool replay makes them again."""
        for job_id in job_ids:
            (self._held / f"{job_id}{JOB_SUFFIX}").unlink(missing_ok=True)
        if job_ids:
            fsync_directory(self._held)

    # ---- finished jobs ---------------------------------------------------------------------------
    def finish(self, job_id: str, events: list[FinishedEvent]) -> None:
        """The job needs no more attempts: replace it by its trace events (see the class docstring).

        Fast enough to call on the event loop, and meant to be called there right after the next hop's
        reply, with nothing in between: the record is written and renamed without an fsync, so that it
        is in place before the job file goes (the kernel keeps that order for a killed process). Call
        `sync()` afterwards to make both durable; a power cut before that delivers the job again."""
        with self._lock:
            self._index.pop(job_id, None)
            self._finishing.add(job_id)
        done = self._path(job_id).with_suffix(DONE_SUFFIX)
        tmp = done.with_name(f".tmp-{done.name}")
        tmp.write_bytes(json.dumps([asdict(e) for e in events]).encode())
        os.replace(tmp, done)
        self._path(job_id).unlink(missing_ok=True)

    def sync(self) -> None:
        """Make renames and removals in the queue directory durable."""
        self._sync_directory()

    def finished(self) -> dict[str, list[FinishedEvent]]:
        """Finished jobs whose events may not all be in the trace yet (a crash came in between)."""
        found = {}
        for path in self.directory.glob(f"*{DONE_SUFFIX}"):
            try:
                job_id = path.name.removesuffix(DONE_SUFFIX)
                found[job_id] = [FinishedEvent(**e) for e in json.loads(path.read_bytes())]
            except (ValueError, TypeError, OSError) as exc:
                self._move_aside(path, f"unreadable finished-job events: {exc}")
        return found

    def forget(self, job_id: str) -> None:
        """The finished job's events are in the trace: drop its record."""
        self._path(job_id).with_suffix(DONE_SUFFIX).unlink(missing_ok=True)
        with self._lock:
            self._finishing.discard(job_id)

    def remove(self, job_id: str) -> None:
        """Drop a job (finished, or deleted by an administrator); removing one already gone is not an error."""
        with self._lock:
            self._index.pop(job_id, None)
        try:
            self._path(job_id).unlink()
        except FileNotFoundError:
            return
        self._sync_directory()

    def pending_count(self) -> int:
        """Jobs not done yet: waiting for an attempt, or finished with events still to report."""
        with self._lock:
            return len(self._index) + len(self._finishing)

    def schedule(self) -> list[tuple[datetime, str]]:
        """Every queued job's next attempt and id, earliest first (the in-memory index: no disk read)."""
        with self._lock:
            return sorted((at, job_id) for job_id, at in self._index.items())

    def next_due_at(self, exclude: Collection[str] = ()) -> datetime | None:
        """When the earliest job not in `exclude` is due, or None when there is none."""
        with self._lock:
            return min((at for job_id, at in self._index.items() if job_id not in exclude), default=None)

    def _read(self, job_id: str) -> DeliveryJob | None:
        path = self._path(job_id)
        try:
            job = _decode(path.read_bytes())
            if job.id != job_id:
                raise CorruptJobError("job id does not match the file name")
        except FileNotFoundError:
            with self._lock:
                self._index.pop(job_id, None)
            log.warning("delivery_job_missing", job_id=job_id, path=str(path))
            return None
        except (CorruptJobError, OSError) as exc:
            with self._lock:
                self._index.pop(job_id, None)
            self._move_aside(path, str(exc))
            return None
        return job

    def _write(self, job: DeliveryJob) -> None:
        atomic_write(self._path(job.id), _encode(job))

    def _move_aside(self, path: Path, reason: str) -> None:
        """Keep a damaged job file for an administrator, out of the way of the agent; never raise."""
        target_dir = self.directory / CORRUPT_DIR
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        target = target_dir / f"{path.name}.{stamp}"
        try:
            target_dir.mkdir(exist_ok=True)
            os.replace(path, target)
            target.with_name(target.name + ".reason").write_text(reason + "\n", encoding="utf-8")
            self._sync_directory()
        except OSError as exc:
            log.error("delivery_job_corrupt_not_moved", path=str(path), reason=reason, error=str(exc))
            return
        log.error("delivery_job_corrupt", path=str(path), moved_to=str(target), reason=reason)

    def _sync_directory(self) -> None:
        fsync_directory(self.directory)


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """What an operations view shows of a queued job: its header, without the message."""

    id: str
    message_id: str
    kind: JobKind
    mail_from: str
    recipients: tuple[str, ...]
    route: Route
    created_at: datetime
    next_attempt_at: datetime
    expires_at: datetime
    attempts: int
    last_reply: str
    size: int


def list_queued(directory: Path, *, limit: int = 1000) -> tuple[list[QueuedJob], int]:
    """The queued jobs of a queue directory, next attempt first (at most `limit`), and how many there are.

    Read-only and safe beside the process that owns the directory: only each file's header line is
    read, and a file that is unreadable or changes under the reader is skipped, never moved."""
    try:
        names = [name for name in os.listdir(directory) if _JOB_NAME.match(name)]
    except OSError:
        return [], 0
    jobs = read_queued(directory, [name.removesuffix(JOB_SUFFIX) for name in names])
    jobs.sort(key=lambda job: (job.next_attempt_at, job.id))
    return jobs[:limit], len(jobs)


def read_queued(directory: Path, job_ids: Collection[str]) -> list[QueuedJob]:
    """The headers of these queued jobs, in the order given; ids that are not job ids, not queued (any
    more) or unreadable are left out. Read-only, like `list_queued`."""
    jobs: list[QueuedJob] = []
    for job_id in job_ids:
        if not _JOB_NAME.match(f"{job_id}{JOB_SUFFIX}"):
            continue
        try:
            with (Path(directory) / f"{job_id}{JOB_SUFFIX}").open("rb") as fh:
                meta = _decode_meta(fh.readline(MAX_HEADER_LINE))
            route = meta["route"]
            jobs.append(
                QueuedJob(
                    id=str(meta["id"]),
                    message_id=str(meta["message_id"]),
                    kind=JobKind(meta["kind"]),
                    mail_from=str(meta["mail_from"]),
                    recipients=tuple(str(r) for r in meta["recipients"]),
                    route=Route(str(route["host"]), int(route["port"]), bool(route["require_tls"]), str(route["pool"])),
                    created_at=_aware(meta["created_at"]),
                    next_attempt_at=_aware(meta["next_attempt_at"]),
                    expires_at=_aware(meta["expires_at"]),
                    attempts=int(meta["attempts"]),
                    last_reply=str(meta["last_reply"]),
                    size=int(meta["size"]),
                )
            )
        except (CorruptJobError, OSError, KeyError, TypeError, ValueError):
            continue  # delivered and gone while reading, or damaged: the owner moves it aside
    return jobs
