"""The clamd engine against a real clamd (Debian's clamav-daemon) with a private two-file signature DB."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailwarden.model import StageOutcome
from mailwarden.pipeline.malware.engines.clamd import ClamdClient, ClamdEngine
from tests.integration.clamd import (
    CLAMD,
    EICAR,
    EICAR_HDB_NAME,
    EICAR_NDB_NAME,
    MARKER,
    MARKER_NAME,
    ClamdDaemon,
)
from tests.integration.conftest import unavailable
from tests.unit.pipeline.malware.samples import item

pytestmark = pytest.mark.integration

STREAM_MAX = 1024 * 1024  # the daemon's StreamMaxLength below


@pytest.fixture(scope="module")
def clamd() -> Iterator[ClamdDaemon]:
    if CLAMD is None:
        unavailable("clamd is not installed (apt-get install clamav-daemon)")
    daemon = ClamdDaemon(stream_max="1M").start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(params=["unix", "tcp"])
def engine(request: pytest.FixtureRequest, clamd: ClamdDaemon) -> ClamdEngine:
    section: dict[str, object] = {"max_stream_bytes": STREAM_MAX, "timeout_seconds": 20}
    if request.param == "unix":
        section["socket"] = str(clamd.socket_path)
    else:
        section |= {"host": "127.0.0.1", "port": clamd.port}
    return ClamdEngine.from_config(section, Path("/nonexistent"))


def zipped(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return buf.getvalue()


async def test_ping_and_version(engine: ClamdEngine) -> None:
    version = await engine.check()
    assert version.startswith("ClamAV ")


async def test_eicar_is_found(engine: ClamdEngine) -> None:
    result = await engine.scan(item(EICAR, "eicar.com"))
    assert result.outcome is StageOutcome.DETECTED
    (name,) = result.detections
    assert name.startswith("CLAMAV:") and name.endswith(".UNOFFICIAL")
    assert name.removeprefix("CLAMAV:").removesuffix(".UNOFFICIAL") in {EICAR_HDB_NAME, EICAR_NDB_NAME}


async def test_custom_signature_is_found_inside_a_zip(engine: ClamdEngine) -> None:
    result = await engine.scan(item(zipped("docs/readme.txt", b"hello " * 1000 + MARKER + b" bye"), "a.zip"))
    assert result.detections == (f"CLAMAV:{MARKER_NAME}.UNOFFICIAL",)


async def test_clean_and_empty_items(engine: ClamdEngine) -> None:
    assert (await engine.scan(item(b"an ordinary attachment\n" * 500, "notes.txt"))).outcome is StageOutcome.CLEAN
    assert (await engine.scan(item(b"", "empty"))).outcome is StageOutcome.CLEAN


async def test_over_our_limit_is_skipped_without_sending(engine: ClamdEngine) -> None:
    result = await engine.scan(item(MARKER + b"x" * STREAM_MAX, "big.bin"))
    assert result.outcome is StageOutcome.SKIPPED


@pytest.mark.parametrize("size", [STREAM_MAX + 50_000, 40 * STREAM_MAX])
async def test_over_clamds_limit_is_an_error_never_clean(clamd: ClamdDaemon, size: int) -> None:
    """With our limit set too high, clamd's StreamMaxLength answers: a little over → ERROR, far over → reset."""
    for client in (
        ClamdClient(socket_path=clamd.socket_path, timeout=20),
        ClamdClient(host="127.0.0.1", port=clamd.port, timeout=20),
    ):
        engine = ClamdEngine(client, max_stream_bytes=100 * STREAM_MAX)
        result = await engine.scan(item(b"\x00" * size, "huge.bin"))
        assert result.outcome is StageOutcome.ERROR, result
        assert result.reason


async def test_many_scans_at_once(engine: ClamdEngine) -> None:
    items = [item(EICAR if n % 5 == 0 else b"clean %d " % n * 100, f"f{n}") for n in range(40)]
    results = await asyncio.gather(*(engine.scan(i) for i in items))
    outcomes = [r.outcome for r in results]
    assert outcomes == [StageOutcome.DETECTED if n % 5 == 0 else StageOutcome.CLEAN for n in range(40)]


async def test_a_stopped_daemon_is_an_error() -> None:
    if CLAMD is None:
        unavailable("clamd is not installed (apt-get install clamav-daemon)")
    with ClamdDaemon().start() as daemon:
        engine = ClamdEngine(ClamdClient(socket_path=daemon.socket_path, connect_timeout=1, timeout=2))
        assert (await engine.scan(item(b"x"))).outcome is StageOutcome.CLEAN
    result = await engine.scan(item(b"x"))
    assert result.outcome is StageOutcome.ERROR
    assert "cannot connect" in (result.reason or "")
