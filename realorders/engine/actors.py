"""Per-order actors and the scheduler that runs them.

Each live order is an :class:`OrderActor`: a mailbox and a native coroutine
that handles one message at a time. The :class:`Scheduler` drives those
coroutines itself instead of wrapping each in an ``asyncio.Task``: measured on
this machine, a task per order costs ~12.5 µs against ~1.8 µs for a
coroutine stepped with ``send``. Driving them also lets the scheduler see
when every actor is blocked on inventory, so all their reservations go to the
inventory port as one batch (one SQLite pass now, one Redis pipeline later).
Timers for fulfilment delays are asyncio ``call_later`` handles on the running
loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, NamedTuple

from realorders.domain import (
    CANCELLABLE,
    HOLDS_STOCK,
    NEXT_STAGE,
    TERMINAL,
    Event,
    LineItem,
    Order,
    OrderState,
    Status,
    apply,
    pending_data,
)
from realorders.engine.ports import Changes, Inventory, Reservation

__all__ = ["Advance", "Cancel", "Delays", "OrderActor", "Scheduler", "Submit", "Wake"]


class Submit(NamedTuple):
    order: Order
    position: int
    at: float
    cancel: Cancel | None = None  # a cancel already in the log: it wins at once


class Cancel(NamedTuple):
    reason: str | None


class Advance(NamedTuple):
    """A fulfilment timer fired; only acts if the order is still in ``expected``."""

    expected: Status


class Wake(NamedTuple):
    """Stock came back: a backordered order should try to reserve again."""


Message = Submit | Cancel | Advance | Wake


@dataclass(frozen=True, slots=True)
class Delays:
    """Seconds spent in a stage before moving on (zero: move on in the same batch)."""

    pack: float = 0.0
    ship: float = 0.0
    deliver: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> Delays:
        """``"pack=0.5,ship=1,deliver=2"`` (any subset; missing stages stay zero)."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in ("pack", "ship", "deliver"):
                raise ValueError(f"{part!r}: expected pack=S, ship=S or deliver=S")
            try:
                seconds = float(raw)
            except ValueError:
                raise ValueError(f"{part!r}: {raw.strip()!r} is not a number of seconds") from None
            if not 0 <= seconds <= 86_400:
                raise ValueError(f"{part!r}: seconds must be between 0 and 86400")
            values[name] = seconds
        return cls(**values)

    def before(self, status: Status) -> float:
        if status is Status.PACKED:
            return self.pack
        if status is Status.SHIPPED:
            return self.ship
        return self.deliver


class _ReserveRequest:
    """What an actor awaits; the scheduler answers it with a :class:`Reservation`."""

    __slots__ = ("lines", "order_id")

    def __init__(self, order_id: str, lines: list[LineItem]) -> None:
        self.order_id = order_id
        self.lines = lines

    def __await__(self) -> Generator[_ReserveRequest, Reservation | None, Reservation]:
        result = yield self
        assert result is not None  # the scheduler always answers with a Reservation
        return result


class OrderActor:
    __slots__ = ("coro", "lines", "mailbox", "order_id", "scheduler", "state", "timer")

    def __init__(self, scheduler: Scheduler, order_id: str, state: OrderState | None) -> None:
        self.scheduler = scheduler
        self.order_id = order_id
        self.state = state
        self.mailbox: deque[Message] = deque()
        self.coro: Coroutine[_ReserveRequest, Reservation | None, None] | None = None
        self.timer: _CountedTimer | None = None
        self.lines: list[LineItem] = [] if state is None else state.lines()

    async def run(self) -> None:
        mailbox = self.mailbox
        while mailbox:
            message = mailbox.popleft()
            if isinstance(message, Submit):
                await self._on_submit(message)
            elif isinstance(message, Advance):
                self._on_advance(message)
            elif isinstance(message, Cancel):
                self._on_cancel(message)
            else:
                await self._on_wake()

    # -- handlers -------------------------------------------------------------

    async def _on_submit(self, message: Submit) -> None:
        if self.state is not None:
            return  # already processed: a redelivered command changes nothing
        order = message.order
        self.lines = list(order.items)
        prices = self.scheduler.prices
        self._emit(Status.PENDING, pending_data(order, prices, message.at, message.position))
        if message.cancel is not None:
            self._on_cancel(message.cancel)
            return
        if not all(i.product_id in prices for i in order.items):
            unknown = sorted({i.product_id for i in order.items if i.product_id not in prices})
            reason = "unknown product " + ", ".join(repr(p) for p in unknown)
            self._emit(Status.REJECTED, {"reason": reason})
            return
        await self._reserve()

    async def _on_wake(self) -> None:
        if self.state is not None and self.state.status is Status.BACKORDERED:
            await self._reserve()

    def _on_advance(self, message: Advance) -> None:
        self.timer = None
        state = self.state
        if state is not None and state.status is message.expected:
            self._advance(NEXT_STAGE[message.expected])

    def _on_cancel(self, message: Cancel) -> None:
        state = self.state
        if state is not None and state.status is Status.CANCELLED:
            return  # cancelled already (perhaps by this very request, seen in advance)
        if state is None or state.status not in CANCELLABLE:
            current = "unknown" if state is None else state.status.value
            self.scheduler.refused.append((self.order_id, f"cannot cancel: order is {current}"))
            return
        if state.status in HOLDS_STOCK:
            # given back after the batch, not now: a newer order in this batch must not
            # take it ahead of older backorders (and batch size must not decide who does)
            self.scheduler.releases.append((self.order_id, self.lines))
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._emit(Status.CANCELLED, {"reason": message.reason or "cancelled by request"})

    # -- steps ----------------------------------------------------------------

    async def _reserve(self) -> None:
        state = self.state
        assert state is not None
        result = await _ReserveRequest(self.order_id, self.lines)
        if result.ok:
            self._emit(Status.RESERVED, None)
            self._after(Status.RESERVED)
        elif result.unknown:
            reason = result.reason()
            if state.status is Status.BACKORDERED:
                reason = f"{reason}: it left the catalogue while the order waited"
            self._emit(Status.REJECTED, {"reason": reason})
        elif state.status is not Status.BACKORDERED:
            self._emit(Status.BACKORDERED, {"reason": result.reason()})

    def _advance(self, target: Status) -> None:
        if target is Status.SHIPPED:
            self.scheduler.inventory.consume(self.order_id, self.lines)
        self._emit(target, None)
        self._after(target)

    def _after(self, status: Status) -> None:
        """Move on to the next stage now (zero delay) or when its timer fires."""
        target = NEXT_STAGE.get(status)
        if target is None:
            return
        delay = self.scheduler.delays.before(target)
        if delay <= 0:
            # inline, not a message to ourselves: outcomes must not depend on where
            # batches happen to split the log (a later cancel in the same batch
            # would otherwise win or lose by batch size)
            self._advance(target)
        else:
            self.timer = self.scheduler.call_later(delay, self, Advance(status))

    def _emit(self, status: Status, data: dict[str, Any] | None) -> None:
        scheduler = self.scheduler
        state = self.state
        seq = 1 if state is None else state.version + 1
        event = Event(self.order_id, seq, status, scheduler.clock(), data)
        self.state = state = apply(state, event)
        changes = scheduler.changes
        changes.events.append(event)
        changes.orders[self.order_id] = state


class Scheduler:
    """Owns the live actors, steps their coroutines and batches their reservations."""

    def __init__(
        self,
        inventory: Inventory,
        delays: Delays,
        clock: Callable[[], float],
        on_message: Callable[[], None] = lambda: None,
    ) -> None:
        self.inventory = inventory
        self.delays = delays
        self.clock = clock
        self.on_message = on_message  # wakes the engine loop when a timer delivers a message
        self.actors: dict[str, OrderActor] = {}
        self.stopped: list[OrderActor] = []  # ran dry since the last passivate: may go
        self.ready: deque[tuple[OrderActor, Reservation | None]] = deque()
        self.changes = Changes(position=0)
        self.prices: dict[str, float] = {}
        self.refused: list[tuple[str, str]] = []
        self.releases: list[tuple[str, list[LineItem]]] = []  # cancelled holds, applied late
        self.released: set[str] = set()  # products whose stock came back: offer to backorders
        self.timers = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def actor(self, order_id: str, state: OrderState | None) -> OrderActor:
        actor = self.actors.get(order_id)
        if actor is None:
            actor = self.actors[order_id] = OrderActor(self, order_id, state)
        return actor

    def tell(self, actor: OrderActor, message: Message) -> None:
        actor.mailbox.append(message)
        if actor.coro is None:
            actor.coro = actor.run()
            self.ready.append((actor, None))

    def call_later(self, delay: float, actor: OrderActor, message: Message) -> _CountedTimer:
        loop = self.loop or asyncio.get_running_loop()
        self.timers += 1

        def fire() -> None:
            self.timers -= 1
            actor.timer = None
            self.actors.setdefault(actor.order_id, actor)
            self.tell(actor, message)
            self.on_message()

        handle = loop.call_later(delay, fire)
        return _CountedTimer(handle, self)

    def run_until_quiet(self) -> None:
        """Step every runnable actor until all are done; batch what they wait on."""
        ready = self.ready
        while ready:
            blocked: list[tuple[OrderActor, _ReserveRequest]] = []
            while ready:
                actor, value = ready.popleft()
                coro = actor.coro
                assert coro is not None
                try:
                    request = coro.send(value)
                except StopIteration:
                    actor.coro = None
                    self.stopped.append(actor)
                    continue
                blocked.append((actor, request))
            if blocked:
                results = self.inventory.reserve_many(
                    [(request.order_id, request.lines) for _, request in blocked]
                )
                ready.extend(
                    (actor, result) for (actor, _), result in zip(blocked, results, strict=True)
                )

    def apply_releases(self) -> None:
        """Give back the stock of orders cancelled in this batch (see ``_on_cancel``)."""
        for order_id, lines in self.releases:
            self.inventory.release(order_id, lines)
            self.released.update(line.product_id for line in lines)
        self.releases.clear()

    def passivate(self) -> None:
        """Forget actors with nothing left to do; their state is in the read model.

        Only actors whose coroutine ran dry since the last call can have become
        idle: the others still wait on a timer. Looking at those alone keeps a
        batch's cost independent of how many orders wait on fulfilment timers.
        """
        actors = self.actors
        for actor in self.stopped:
            idle = actor.timer is None and not actor.mailbox and actor.coro is None
            done = idle or (actor.state is not None and actor.state.status in TERMINAL)
            if done and actors.get(actor.order_id) is actor:
                del actors[actor.order_id]
        self.stopped.clear()

    @property
    def busy(self) -> bool:
        return bool(self.ready)


class _CountedTimer:
    """A timer handle that keeps the scheduler's count of armed timers right when cancelled."""

    __slots__ = ("_handle", "_scheduler")

    def __init__(self, handle: asyncio.TimerHandle, scheduler: Scheduler) -> None:
        self._handle = handle
        self._scheduler = scheduler

    def cancel(self) -> None:
        if not self._handle.cancelled():
            self._handle.cancel()
            self._scheduler.timers -= 1
