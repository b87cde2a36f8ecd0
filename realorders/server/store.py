"""The server's handles on the store: blocking Client calls, kept off the event loop.

A :class:`~realorders.Client` is synchronous and one handle is not shared
between threads (a SQLite connection holds one transaction at a time), so
each thread of a small pool opens its own, once, and every route awaits
``store.call(lambda client: ...)``. Intake has a thread of its own
(:class:`Intake`), so submissions never wait behind slow reads.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from realorders.client import Client
from realorders.config import Config
from realorders.domain import Order
from realorders.engine.ports import IntakeResult

__all__ = ["Intake", "Store"]

T = TypeVar("T")


class Store:
    """A pool of threads, each holding a Client of its own on the same store."""

    def __init__(self, config: Config, threads: int) -> None:
        self._config = config
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="realorders-store")

    def open_client(self) -> Client:
        client = Client(config=self._config, create=False)
        with self._lock:
            self._clients.append(client)
        return client

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.open_client()
        return client

    async def call(self, work: Callable[[Client], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: work(self._client()))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()


@dataclass(slots=True)
class _Waiting:
    order: Order
    future: asyncio.Future[IntakeResult]
    loop: asyncio.AbstractEventLoop


class Intake:
    """Group commit for single orders: concurrent submissions share one append.

    One thread appends. It takes every submission already waiting (and, with
    ``window``, those arriving within that many seconds), up to ``max_batch``,
    and appends them in one call — one SQLite transaction, or one Redis claim
    and one Kafka flush — the way the engine commits. While it appends, the
    next batch gathers, so under load batches grow by themselves and at rest a
    lone order waits for nobody. A future resolves only after its batch is
    durable: an acknowledged order survives ``kill -9`` of the server.
    """

    def __init__(
        self,
        store: Store,
        *,
        window: float,
        max_batch: int,
        on_commit: Callable[[int], None] = lambda orders: None,
    ) -> None:
        self._store = store
        self._on_commit = on_commit
        self._window = window
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="realorders-intake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    async def submit(self, order: Order) -> IntakeResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IntakeResult] = loop.create_future()
        self._queue.put(_Waiting(order, future, loop))
        return await asyncio.shield(future)  # a client hanging up does not undo its append

    def _gather(self, first: _Waiting) -> tuple[list[_Waiting], bool]:
        batch = [first]
        deadline = time.monotonic() + self._window
        while len(batch) < self._max_batch:
            try:
                remaining = deadline - time.monotonic()
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        client = self._store.open_client()
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch, stopping = self._gather(first)
            try:
                results = client.submit_many([w.order for w in batch], chunk=len(batch))
            except Exception as exc:  # every waiting request answers with the failure
                for waiting in batch:
                    waiting.loop.call_soon_threadsafe(_fail, waiting.future, exc)
                continue
            self._on_commit(len(batch))
            for waiting, result in zip(batch, results, strict=True):
                waiting.loop.call_soon_threadsafe(_resolve, waiting.future, result)


def _resolve(future: asyncio.Future[IntakeResult], result: IntakeResult) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[IntakeResult], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
