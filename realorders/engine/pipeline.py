"""Batches committed in order on a thread beside the engine, a few at a time.

Both backends spend much of a batch waiting (SQLite's C code on SQLite, round
trips to the broker and Redis on Kafka): time in which the engine's thread can
already run the next batch's actors. :class:`InOrderCommits` is that hand-over,
with the rules both backends rely on:

- batches are written one at a time, in the order handed over;
- at most ``depth`` are in flight: :meth:`put` waits for room, so once it
  returns every batch but the last ``depth`` is written;
- the first failure stops it: that batch and every later one stay unwritten
  (a later batch never lands over a hole), and :meth:`put`, :meth:`sync` and
  :meth:`close` raise that error in the engine's thread from then on;
- :meth:`sync` waits until everything handed over is written: what a read of
  the engine's own output needs first;
- with ``interval``, a write starts at least that long after the previous one
  started (unless a :meth:`sync` waits): a cap on writes per second when each
  costs the same whatever it holds, as a Kafka transaction does.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["InOrderCommits"]

Batch = TypeVar("Batch")


class InOrderCommits(Generic[Batch]):
    """Calls ``write(batch)`` on a thread of its own, for each batch in hand-over order."""

    def __init__(
        self,
        write: Callable[[Batch], None],
        *,
        depth: int,
        name: str,
        interval: float = 0.0,
    ) -> None:
        self.depth = depth
        self._write = write
        self._interval = interval
        self._waiting = 0  # threads in sync(): they want what is queued written now
        self._pending: deque[Batch] = deque()  # handed over, not yet written
        self._changed = threading.Condition()
        self._error: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def put(self, batch: Batch) -> None:
        """Hand a batch over; waits while ``depth`` batches are already in flight."""
        with self._changed:
            while len(self._pending) >= self.depth and self._error is None:
                self._changed.wait()
            self._raise_error()
            self._pending.append(batch)
            self._changed.notify_all()

    def sync(self) -> None:
        """Wait until every batch handed over is written (a waiting interval is cut short)."""
        if not self._pending and self._error is None:
            return  # the engine's common case: nothing in flight, no lock taken
        self._wait_written(None, hurry=True)

    def wait_written(self, timeout: float) -> None:
        """Wait up to ``timeout`` until nothing is in flight, without hurrying the interval."""
        self._wait_written(time.monotonic() + timeout, hurry=False)

    def _wait_written(self, deadline: float | None, *, hurry: bool) -> None:
        with self._changed:
            if hurry:
                self._waiting += 1
                self._changed.notify_all()
            try:
                while self._pending and self._error is None:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return
                    self._changed.wait(left)
            finally:
                if hurry:
                    self._waiting -= 1
            self._raise_error()

    def close(self) -> None:
        """Write what was handed over (unless a batch failed), then stop the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        started = 0.0
        while True:
            with self._changed:
                while not self._pending and not self._closing:
                    self._changed.wait()
                if not self._pending:
                    return  # closing, everything written
                due = started + self._interval  # no sooner than this, unless someone waits
                while time.monotonic() < due and not self._waiting and not self._closing:
                    self._changed.wait(due - time.monotonic())
                started = time.monotonic()
                batch = self._pending[0]
            try:
                self._write(batch)
            except BaseException as exc:
                with self._changed:
                    self._error = exc
                    self._changed.notify_all()
                return
            with self._changed:
                self._pending.popleft()
                self._changed.notify_all()
