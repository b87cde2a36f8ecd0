"""Errors users see. Each carries one clear line; the CLI prints it and exits."""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "EngineBusyError",
    "InputError",
    "NotFoundError",
    "RealordersError",
    "RefusedError",
    "ServiceUnavailableError",
    "UsageError",
]


class RealordersError(Exception):
    """Base for every error realorders raises on purpose (never a bug)."""

    exit_code = 1


class InputError(RealordersError):
    """Bad input: names where (file and line) and why."""

    def __init__(self, reason: str, source: str | None = None, line: int | None = None) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        super().__init__(self.location_prefix() + reason)

    def location_prefix(self) -> str:
        if self.source is None:
            return ""
        return f"{self.source}:{self.line}: " if self.line is not None else f"{self.source}: "


class ConflictError(RealordersError):
    """The same order id was given before with different content."""


class NotFoundError(RealordersError):
    """An order or product that does not exist."""


class RefusedError(RealordersError):
    """A valid request the current state does not allow (e.g. cancelling a shipped order)."""


class EngineBusyError(RealordersError):
    """Another engine already runs on this database."""


class ServiceUnavailableError(RealordersError):
    """Kafka or Redis cannot be reached or refused the credentials; names the address."""


class UsageError(RealordersError):
    """A command line that asks for something impossible (bad option value, unknown backend)."""

    exit_code = 2
