"""One error tree for the whole product, mapped once at each edge (CLI, API, SMTP)."""

from __future__ import annotations


class MailwardenError(Exception):
    """Base of every error mailwarden raises on purpose."""

    exit_code = 1


class ConfigError(MailwardenError):
    """The configuration file or environment holds a bad value."""

    exit_code = 78  # EX_CONFIG

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class PolicyError(MailwardenError):
    """A policy document (or one field of it) is invalid; nothing was applied."""

    exit_code = 65  # EX_DATAERR

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        self.errors = errors or [message]
        super().__init__(message)


class NotFoundError(MailwardenError):
    """A named organisation, domain, message or entry does not exist."""

    exit_code = 66


class MessageInputError(MailwardenError):
    """An input file is not mail (or not readable); the run goes on with the next one."""

    exit_code = 65


class PipelineConfigError(MailwardenError):
    """The stage order names an unknown or duplicate stage; start-up stops."""

    exit_code = 78


class DependencyUnavailable(MailwardenError):
    """A server mailwarden depends on (the database, Redis) cannot be reached right now. Nothing is wrong
    with the message at hand: it waits and is tried again, and never counts as a failure of its own."""

    exit_code = 75  # EX_TEMPFAIL


class StaleVersionError(MailwardenError):
    """A change was made against a version of a document that is no longer the current one (someone
    else changed it in between); nothing was applied."""

    exit_code = 75

    def __init__(self, message: str, *, current: int) -> None:
        self.current = current
        super().__init__(message)
