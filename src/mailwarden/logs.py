"""structlog set-up: console lines for people, JSON lines for machines (exceptions included in both)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer


def configure(level: str = "info", fmt: str = "console") -> None:
    renderers: list[structlog.typing.Processor]
    if fmt == "json":
        # The console renderer formats `exc_info` itself; the JSON renderer would print only `true`.
        # Frames without their local variables: those may hold message content or secrets.
        exceptions = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
        renderers = [exceptions, structlog.processors.JSONRenderer()]
    else:
        # a plain traceback: a few lines per frame and no local variables (Rich's default shows them all,
        # hundreds of lines for one database error, with whatever message text or secret they held)
        renderers = [
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)
        ]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *renderers,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*_: Any) -> structlog.PrintLogger:
    """A logger on whatever sys.stderr is now (not the stream it was when logging was configured)."""
    return structlog.PrintLogger(sys.stderr)
