"""Processes the tests start: found however they were started, and ended when a test is done with them.

On Linux the test session makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`): a process whose
parent died — the scanning processes of a server killed with SIGKILL, a daemon that forked into the
background — is re-parented to the session instead of to init, so "every process this session
started" is exactly the session's descendants, and none can hide from the check at its end.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterable
from multiprocessing import forkserver, resource_tracker

import psutil

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux); whether that worked."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def descendants() -> list[psutil.Process]:
    """Descendants of this process (exited ones too, so that waiting reaps them), except the
    multiprocessing helpers of this very process, which live as long as it does."""
    own = _own_multiprocessing_helpers()
    return [p for p in psutil.Process().children(recursive=True) if p.pid not in own]


def group_members(pgid: int) -> list[psutil.Process]:
    """Live processes of a process group (a server started in its own session and what it started)."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            if os.getpgid(process.pid) == pgid and _alive(process):
                members.append(process)
    return members


def still_running(processes: Iterable[psutil.Process], grace: float) -> list[psutil.Process]:
    """The processes that have not exited after `grace` seconds (exited children are reaped meanwhile)."""
    _, waited_for = psutil.wait_procs(list(processes), timeout=grace)
    return [p for p in waited_for if _alive(p)]  # a zombie has exited: its parent reaps it


def kill(processes: list[psutil.Process]) -> None:
    """SIGKILL the processes and wait for them."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=10)


def end_group(pgid: int, grace: float) -> None:
    """End what is left of a process group: SIGKILL what still runs after `grace` seconds."""
    kill(still_running(group_members(pgid), grace))


def describe(process: psutil.Process) -> str:
    try:
        return f"pid {process.pid}: {' '.join(process.cmdline()) or process.name()}"
    except psutil.Error:
        return f"pid {process.pid}"


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _own_multiprocessing_helpers() -> set[int]:
    """The forkserver and resource tracker this process started: they exit when it does.

    Their pids are private attributes of multiprocessing; without them, the check counts the helpers.
    """
    pids = (
        getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None),
        getattr(getattr(resource_tracker, "_resource_tracker", None), "_pid", None),
    )
    return {pid for pid in pids if isinstance(pid, int)}
