"""A scanning process that dies half-way through sending its results neither hangs the command or the
server that waits for them, nor keeps a Ctrl-C or SIGTERM from ending the scan."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import struct
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from mailwarden.service.process_pool import end_now, result, result_async

pytestmark = pytest.mark.timeout(60)  # without the fixes these tests wait forever


def send_half_a_result(then_exit: bool) -> None:
    """In a pool process: start a result message of 100,000 bytes, send ten of them, then die or hang."""
    result_queue = multiprocessing.current_process()._args[1]  # type: ignore[attr-defined]
    os.write(result_queue._writer.fileno(), struct.pack("!i", 100_000) + b"0123456789")
    if then_exit:
        os._exit(1)
    time.sleep(3600)


def pool(method: str = "fork") -> ProcessPoolExecutor:
    """Two processes: forked (as `scan --jobs` starts them) or from the forkserver (as `serve` does)."""
    executor = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context(method))
    executor.submit(int).result()  # the processes and the executor's thread are running
    return executor


def test_the_executor_internals_the_fixes_use_are_there() -> None:
    executor = pool()
    try:
        assert len(executor._processes) == 2  # type: ignore[attr-defined]
        assert executor._result_queue._writer is not None  # type: ignore[attr-defined]
        assert executor._executor_manager_thread.is_alive()  # type: ignore[attr-defined]
    finally:
        executor.shutdown()


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_process_that_dies_mid_send_breaks_the_pool_instead_of_hanging_it(method: str) -> None:
    executor = pool(method)
    try:
        future = executor.submit(send_half_a_result, True)
        with pytest.raises(BrokenProcessPool):
            result(future, executor)
    finally:
        end_now(executor)


async def test_the_server_sees_the_death_too() -> None:
    executor = pool("forkserver")
    try:
        future = asyncio.get_running_loop().run_in_executor(executor, send_half_a_result, True)
        with pytest.raises(BrokenProcessPool):
            await result_async(future, executor)
    finally:
        end_now(executor)


def test_ending_now_returns_with_every_process_gone_though_one_was_mid_send() -> None:
    executor = pool()
    processes = list(executor._processes.values())  # type: ignore[attr-defined]
    manager = executor._executor_manager_thread  # type: ignore[attr-defined]
    future = executor.submit(send_half_a_result, False)
    time.sleep(0.5)  # the half message is in the pipe
    assert not future.done()
    end_now(executor, grace=2)
    assert [p.is_alive() for p in processes] == [False, False]
    assert not manager.is_alive()  # nothing left for the interpreter's exit to wait on
