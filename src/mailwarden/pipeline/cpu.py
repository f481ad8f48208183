"""Where a scan's CPU-bound steps run (DKIM/ARC verification, walking attachments).

In the server process the event loop also serves SMTP sessions, so such a step goes to a thread and
the loop stays responsive. A scanning process has nothing else on its loop: the thread hop would only
add a hand-off and GIL switches, so there the step runs inline (`run_inline()`, called once at the
process's start)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_inline = False


def run_inline() -> None:
    """This process scans only: CPU-bound steps run on the event loop's thread."""
    global _inline
    _inline = True


async def offload(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    if _inline:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


def settle() -> None:
    """In a long-running process, once it has loaded what it keeps (a scanning process after its first
    messages; `serve`'s own process when it is ready and again after its first records): what exists then
    (modules, models, compiled rules and patterns, the web application, SQLAlchemy's caches) leaves the
    cyclic garbage collector's view, so its full passes no longer walk it for every few thousand objects
    the work allocates (measured: 6 % of a scan's CPU; in `serve`'s own process 6.5 %, most of it full
    passes of about 80 ms). Reference counting still frees what is dropped later."""
    gc.collect()
    gc.freeze()
