"""uvicorn's HTTP protocol with a deadline on request headers (slowloris).

uvicorn closes idle keep-alive connections but lets a client take forever
over its headers: a few hundred clients trickling a byte a second would hold
every connection. Here a connection must finish each request's headers within
``--client-timeout`` seconds of its first byte (or of connecting) or it is
closed; bodies are bounded by the server's body timeout (:mod:`.bodies`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["DeadlineProtocol", "set_header_timeout"]


class DeadlineProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that closes connections slow to send their headers."""

    header_timeout = 10.0  # seconds; the server's --client-timeout, see set_header_timeout

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expire(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()


def set_header_timeout(seconds: float) -> None:
    """Set the deadline for every connection of this process (each worker sets its own)."""
    DeadlineProtocol.header_timeout = seconds
