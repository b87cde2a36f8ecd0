"""Request bodies, read with the server's limits: size (413), type (415) and time (408).

Orders are parsed by the same rules as ``submit -`` and ``import``
(:mod:`realorders.intake`), so their bodies are read here as bytes and not
by a second, pydantic, set of rules. The import route's body is streamed
to a blocking reader (:class:`BodyReader`) chunk by chunk: any size at
constant memory, with the size limit applied per line.
"""

from __future__ import annotations

import asyncio
import io
import queue
from collections.abc import AsyncIterator

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from realorders.server.problems import Problem, problem_response

__all__ = ["BodyLimit", "BodyReader", "media_type", "require_type"]


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_type(request: Request, *accepted: str) -> str:
    """The body's media type if it is one of ``accepted``; 415 naming them otherwise."""
    given = media_type(request)
    if given not in accepted:
        shown = given or "none"
        raise Problem(
            415,
            "unsupported-media-type",
            f"Content-Type {shown} is not accepted here; send {' or '.join(accepted)}",
        )
    return given


def _too_large(limit: int) -> Problem:
    return Problem(413, "too-large", f"the body is over the limit of {limit} bytes (--max-body)")


async def _chunks(request: Request, timeout: float) -> AsyncIterator[bytes]:
    """The body as it arrives; 408 when the client stalls longer than ``timeout``.

    ``wait_for`` per chunk, so that the time the consumer spends between
    chunks (a slow importer pacing the upload) never counts against the client.
    """
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _stalled(timeout) from None
        yield chunk


def _stalled(timeout: float) -> Problem:
    return Problem(
        408,
        "timeout",
        f"no part of the body came for {timeout:g}s",
        headers={"Connection": "close"},
    )


class LineTooLong(Exception):
    """A line of a streamed import is over the size limit."""

    def __init__(self, line: int, limit: int) -> None:
        super().__init__(f"line {line} is over the limit of {limit} bytes (--max-body)")
        self.line = line


class BodyReader(io.RawIOBase):
    """A blocking, file-like view of a request body the event loop feeds chunk by chunk.

    The importer reads it in a thread of its own while :meth:`feed` (on the
    loop) hands chunks over, at most ``depth`` ahead of the reader: the
    client's upload is paced by the importer and the body never sits in
    memory whole.
    """

    def __init__(self, limit: int, depth: int = 16) -> None:
        super().__init__()
        self._chunks: queue.SimpleQueue[bytes | BaseException | None] = queue.SimpleQueue()
        self._room: asyncio.Semaphore | None = None  # created on the loop by feed()
        self._depth = depth
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = memoryview(b"")  # a view: handing part of a chunk over copies nothing
        self._limit = limit
        self._line = 1
        self._line_size = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            chunk = self._chunks.get()
            if self._loop is not None and self._room is not None:
                self._loop.call_soon_threadsafe(self._room.release)
            if chunk is None:
                self._done = True
            elif isinstance(chunk, BaseException):
                self._done = True
                raise chunk
            else:
                self._check_lines(chunk)
                self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _check_lines(self, chunk: bytes) -> None:
        start = 0
        while (newline := chunk.find(b"\n", start)) != -1:
            if self._line_size + newline - start > self._limit:
                raise LineTooLong(self._line, self._limit)
            self._line += 1
            self._line_size = 0
            start = newline + 1
        self._line_size += len(chunk) - start
        if self._line_size > self._limit:
            raise LineTooLong(self._line, self._limit)

    async def feed(self, request: Request, timeout: float) -> None:
        """Hand the body over chunk by chunk; waits while the reader is ``depth`` behind.

        Cancel it once the reader is done: an importer that stopped early
        (an error) leaves the rest of the body unread.
        """
        self._loop = asyncio.get_running_loop()
        self._room = asyncio.Semaphore(self._depth)
        try:
            async for chunk in _chunks(request, timeout):
                if chunk:
                    await self._room.acquire()
                    self._chunks.put(chunk)
        except Problem as exc:
            self._chunks.put(exc)
            raise
        finally:
            self._chunks.put(None)


class BodyLimit:
    """Reads every request body (but the streamed import's) with the server's limits first.

    A body over ``limit`` is answered 413 before any route sees it, and a client
    that stalls mid-body longer than ``timeout`` 408; FastAPI's own body reading
    (the pydantic-validated routes) then replays what was read. Bodies here are
    small by definition (the limit), so holding one is cheap.
    """

    def __init__(self, app: ASGIApp, limit: int, timeout: float, streamed: frozenset[str]) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in self.streamed
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
        ):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
        except Problem as exc:
            response = problem_response(
                None,
                exc.status,
                exc.slug,
                exc.detail,
                exc.headers,
                instance=scope["path"],
                request_id=scope.get("state", {}).get("request_id"),
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                raise _too_large(self.limit)
        parts: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise Problem(400, "bad-request", "the client went away mid-body")
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.limit:
                        raise _too_large(self.limit)
                    parts.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(parts)
                    deadline.reschedule(loop.time() + self.timeout)
        except TimeoutError:
            raise _stalled(self.timeout) from None
