"""What `ProcessPoolExecutor` does not do for the scanning processes: notice a process that died while
it sent its results, and end the processes now rather than after their task.

A scanning process sends its results through a pipe whose write end every process of the pool holds,
the executor's own included. When a scanning process dies half-way through a message (killed, out of
memory), the executor's thread reads the first half and waits for the rest forever: the pipe never
reaches end-of-file, and the death is never reported (CPython's executor does not guard against this).
Once a scanning process is known to be dead, ending the others and closing this process's copy of the
write end turns that wait into end-of-file: the executor reports the pool broken, and the callers start
new processes as they do for any death.

The executor's own attributes are used here (`_processes`, `_result_queue`,
`_executor_manager_thread`); decisions.md says why, and tests/unit/service/test_process_pool.py fails
if a Python release changes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing.process import BaseProcess
from threading import Thread
from typing import Any, TypeVar

T = TypeVar("T")

WATCH_SECONDS = 1.0  # how often a wait for results looks for a process that died mid-send
GRACE_SECONDS = 5.0  # how long a process has to end on SIGTERM before it is killed


def _processes(executor: Executor) -> list[BaseProcess]:
    return list((getattr(executor, "_processes", None) or {}).values())


def _close_result_writer(queue: Any) -> None:
    writer = getattr(queue, "_writer", None)
    if writer is not None:
        with contextlib.suppress(OSError):
            writer.close()


def release_half_sent(executor: Executor) -> bool:
    """If a process of `executor` has died, stop the executor waiting for the rest of a result that
    process may have been sending: it then reports the pool broken. True when a dead process was found.

    The end-of-file comes only once no process holds the write end, so the other processes are ended
    too, as the executor itself ends them once it sees a death: their tasks fail with BrokenProcessPool
    either way. A process that exited cleanly (exit code 0, at shutdown) is no death."""
    processes = _processes(executor)
    if not any(process.exitcode not in (None, 0) for process in processes):
        return False
    results = getattr(executor, "_result_queue", None)
    _end(processes, GRACE_SECONDS)
    _close_result_writer(results)
    return True


def result(future: Future[T], executor: Executor) -> T:
    """`future.result()`, which also ends (with BrokenProcessPool) when a process died mid-send."""
    while True:
        try:
            return future.result(timeout=WATCH_SECONDS)
        except FutureTimeout:
            release_half_sent(executor)


async def result_async(future: asyncio.Future[T], executor: Executor) -> T:
    """The same for a future from `loop.run_in_executor`."""
    while True:
        done, _ = await asyncio.wait({future}, timeout=WATCH_SECONDS)
        if done:
            return future.result()
        await asyncio.to_thread(release_half_sent, executor)  # it may wait for processes to end


def end_now(executor: Executor, grace: float = GRACE_SECONDS) -> None:
    """End the processes now, not after their task, and return once the executor's thread is done
    (`shutdown(wait=False)` forgets the thread, and a later `shutdown(wait=True)` would not wait)."""
    processes = _processes(executor)
    manager: Thread | None = getattr(executor, "_executor_manager_thread", None)
    results = getattr(executor, "_result_queue", None)
    executor.shutdown(wait=False, cancel_futures=True)
    _end(processes, grace)
    _close_result_writer(results)  # every process is dead: what one half-sent ends in end-of-file
    if manager is not None:
        manager.join()


def _end(processes: list[BaseProcess], grace: float) -> None:
    """SIGTERM each process; SIGKILL what is left after `grace` seconds; return once all are gone."""
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            with contextlib.suppress(OSError, ValueError):
                process.kill()
            process.join()
