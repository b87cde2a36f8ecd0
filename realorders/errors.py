"""Errors users see. Each carries one clear line; the CLI prints it and exits.

This is the one table both fronts read: ``exit_code`` is what the CLI exits
with, ``http_status`` and ``problem`` (a stable, machine-readable slug) what
the HTTP server answers with, as RFC 9457 ``application/problem+json``.
"""

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
    http_status = 500
    problem = "error"


class InputError(RealordersError):
    """Bad input: names where (file and line, or a JSON pointer to the field) and why."""

    http_status = 422
    problem = "invalid-input"

    def __init__(
        self,
        reason: str,
        source: str | None = None,
        line: int | None = None,
        *,
        pointer: str | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.pointer = pointer  # RFC 6901, e.g. "/items/0/quantity", when one field is at fault
        super().__init__(self.location_prefix() + reason)

    def location_prefix(self) -> str:
        if self.source is None:
            return ""
        return f"{self.source}:{self.line}: " if self.line is not None else f"{self.source}: "


class ConflictError(RealordersError):
    """The same order id was given before with different content."""

    http_status = 409
    problem = "conflict"


class NotFoundError(RealordersError):
    """An order or product that does not exist."""

    http_status = 404
    problem = "not-found"


class RefusedError(RealordersError):
    """A valid request the current state does not allow (e.g. cancelling a shipped order)."""

    http_status = 409
    problem = "refused"


class EngineBusyError(RealordersError):
    """Another engine already runs on this database."""

    http_status = 409
    problem = "engine-busy"


class ServiceUnavailableError(RealordersError):
    """Kafka or Redis cannot be reached or refused the credentials; names the address."""

    http_status = 503
    problem = "service-unavailable"


class UsageError(RealordersError):
    """A command line that asks for something impossible (bad option value, unknown backend)."""

    exit_code = 2
    http_status = 400
    problem = "bad-request"
