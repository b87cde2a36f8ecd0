"""One reader of the event log per server process, fanned out to every live subscriber.

A thousand browsers following their orders cost one tail query per poll, not
a thousand: :class:`Hub` reads committed events by cursor and hands each
subscriber only what its filter matches (subscribers naming orders are found
by order id, so a batch costs per event, not per subscriber). Each
subscriber's backlog is bounded: one that falls further behind than its
``limit`` is dropped with a last message, and resumes from its cursor when it
reconnects. The server's memory never grows with a slow reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from realorders.domain import Event, Status
from realorders.server.store import Store

__all__ = ["Batch", "Hub", "Subscription"]

log = logging.getLogger("realorders.server")

Batch = list[tuple[int, Event]]
_PAGE = 1000


@dataclass(eq=False, slots=True)
class Subscription:
    """What one stream wants, and what has come for it that it has not sent yet."""

    order_ids: frozenset[str]
    status: Status | None
    limit: int
    start: int = 0  # the hub's cursor when it joined: later events come through the queue
    queue: asyncio.Queue[Batch | None] = field(default_factory=asyncio.Queue)
    waiting: int = 0  # events queued, not yet taken
    dropped: bool = False

    def matches(self, event: Event) -> bool:
        if self.order_ids and event.order_id not in self.order_ids:
            return False
        return self.status is None or event.status is self.status

    def offer(self, batch: Batch) -> bool:
        """Queue a batch; False (and a last ``None``) when that would exceed the limit."""
        if self.waiting + len(batch) > self.limit:
            self.dropped = True
            self.queue.put_nowait(None)
            return False
        self.waiting += len(batch)
        self.queue.put_nowait(batch)
        return True

    async def next(self) -> Batch | None:
        """The next batch, or None once the hub has dropped this subscriber."""
        batch = await self.queue.get()
        if batch is not None:
            self.waiting -= len(batch)
        return batch


class Hub:
    """The shared tail; see the module docstring."""

    def __init__(self, store: Store, *, poll: float = 0.1) -> None:
        self._store = store
        self._poll = poll
        self.cursor = 0  # the last event read and handed out
        self._by_order: dict[str, set[Subscription]] = defaultdict(set)
        self._everything: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # subscribers dropped for falling behind, for /metrics

    @property
    def subscribers(self) -> int:
        named = {s for subs in self._by_order.values() for s in subs}
        return len(named) + len(self._everything)

    async def start(self) -> None:
        self.cursor = await self._store.call(lambda client: client.head())
        self._task = asyncio.create_task(self._run(), name="realorders-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(
        self, order_ids: Iterable[str] = (), status: Status | None = None, *, limit: int
    ) -> Subscription:
        sub = Subscription(frozenset(order_ids), status, limit, start=self.cursor)
        if sub.order_ids:
            for order_id in sub.order_ids:
                self._by_order[order_id].add(sub)
        else:
            self._everything.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._everything.discard(sub)
        for order_id in sub.order_ids:
            subs = self._by_order.get(order_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_order[order_id]

    async def _run(self) -> None:
        while True:
            try:
                full = await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is away: streams wait, then go on
                log.warning("event tail: %s; retrying", exc)
                full = False
                await asyncio.sleep(1.0)
            if not full:
                await asyncio.sleep(self._poll)

    async def _step(self) -> bool:
        if not self._everything and not self._by_order:  # nobody listens: only keep up
            head = await self._store.call(lambda client: client.head())
            if not self._everything and not self._by_order:  # nobody joined meanwhile
                self.cursor = max(self.cursor, head)
            return False
        after = self.cursor
        batch = await self._store.call(lambda client: client.events(after, _PAGE))
        if batch:
            self._dispatch(batch)
            self.cursor = batch[-1][0]
        return len(batch) == _PAGE

    def _dispatch(self, batch: Batch) -> None:
        routed: dict[Subscription, Batch] = defaultdict(list)
        for item in batch:
            event = item[1]
            for sub in self._by_order.get(event.order_id, ()):  # all: until_done needs them
                routed[sub].append(item)
            for sub in self._everything:
                if sub.status is None or event.status is sub.status:
                    routed[sub].append(item)
        for sub, items in routed.items():
            if not sub.offer(items):
                self.dropped += 1
                self.unsubscribe(sub)
