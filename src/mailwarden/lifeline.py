"""Scanning processes end with the server that started them, however the server ends.

The scanning processes are forked by multiprocessing's forkserver, not by the server, so a server
killed with SIGKILL (or by the OOM killer) used to leave them behind: each one holds the forkserver's
"alive" pipe open, which keeps the forkserver running too, and waits for work that never comes.
`PR_SET_PDEATHSIG` cannot help, as their parent is the forkserver, not the server.

A lifeline is a pipe whose write end only the server holds. Each scanning process watches the read
end and exits when it reads end-of-file, which the kernel delivers the moment the server's last file
descriptor closes: on a clean exit, a crash or a SIGKILL alike. With the scanning processes gone, the
forkserver and multiprocessing's resource tracker see their own pipes close and exit as well.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from multiprocessing.connection import Connection

import structlog

log = structlog.get_logger(__name__)

SERVER_GONE_EXIT_CODE = 75  # EX_TEMPFAIL: the work in hand stays in the spool for the next start


_write_end: int | None = None


@functools.cache
def server_lifeline() -> Connection:
    """The read end for scanning processes to watch (made once per server process).

    The write end is never closed on purpose: it lives exactly as long as this process. Both ends are
    close-on-exec, and the read end reaches a scanning process only as a pickled `Connection` (its
    descriptor passed by the forkserver), so no other program holds the write end — except a process
    forked from this one, which lets go of it with `forked_from_server()`.
    """
    global _write_end
    read_fd, _write_end = os.pipe()
    return Connection(read_fd, writable=False)


def forked_from_server() -> None:
    """In a scanning process forked from the server itself (not from the forkserver): close the copy of
    the write end it inherited, so that the lifeline ends with the server, not with this process."""
    if _write_end is not None:
        with contextlib.suppress(OSError):
            os.close(_write_end)


def exit_with_server(lifeline: Connection) -> None:
    """In a scanning process: exit as soon as the server that started it is gone."""
    threading.Thread(target=_wait_for_eof, args=(lifeline,), name="server-lifeline", daemon=True).start()


def _wait_for_eof(lifeline: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv_bytes()  # nothing is ever sent: this returns only at end-of-file
    log.warning("scan_process_exits", reason="the server process is gone", pid=os.getpid())
    os._exit(SERVER_GONE_EXIT_CODE)  # no clean-up: the spool keeps what was in hand
