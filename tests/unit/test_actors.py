"""Actors and the scheduler without the engine loop: messages, batching, timers, passivation."""

from __future__ import annotations

import asyncio
from typing import Any

from fakes import MemoryBackend

from realorders.domain import Event, LineItem, Order, OrderState, Status, apply, pending_data
from realorders.engine.actors import Advance, Cancel, Delays, Scheduler, Submit, Wake

S = Status


def make_scheduler(delays: Delays | None = None, **stock: int) -> tuple[Scheduler, MemoryBackend]:
    backend = MemoryBackend()
    for product_id, on_hand in stock.items():
        backend.catalogue.add(product_id, product_id, 1.0, on_hand)
    backend.claim_engine()
    ticks = iter(range(1, 1_000_000))
    scheduler = Scheduler(backend.inventory, delays or Delays(), lambda: float(next(ticks)))
    scheduler.prices = backend.inventory.prices(stock)
    return scheduler, backend


def submit(scheduler: Scheduler, order_id: str, *lines: tuple[str, int], position: int = 1) -> Any:
    order = Order(order_id, "ada", tuple(LineItem(p, q) for p, q in lines))
    actor = scheduler.actor(order_id, None)
    scheduler.tell(actor, Submit(order, position, 0.5))
    return actor


def pending_state(order_id: str, *lines: tuple[str, int]) -> OrderState:
    order = Order(order_id, "ada", tuple(LineItem(p, q) for p, q in lines))
    return apply(None, Event(order_id, 1, S.PENDING, 1.0, pending_data(order, {}, 1.0, 1)))


def emitted(scheduler: Scheduler) -> list[tuple[str, int, Status]]:
    return [(e.order_id, e.seq, e.status) for e in scheduler.changes.events]


def test_reservations_of_blocked_actors_are_batched() -> None:
    scheduler, backend = make_scheduler(A=3)
    calls: list[list[str]] = []
    real = backend.inventory.reserve_many

    def spy(requests: Any) -> Any:
        calls.append([order_id for order_id, _ in requests])
        return real(requests)

    # a spy on this one instance; mypy forbids assigning to a method in general
    backend.inventory.reserve_many = spy  # type: ignore[method-assign]
    for i in range(5):
        submit(scheduler, f"o{i}", ("A", 1), position=i + 1)
    scheduler.run_until_quiet()
    assert calls == [["o0", "o1", "o2", "o3", "o4"]]
    final = {a.order_id: a.state.status for a in scheduler.actors.values() if a.state}
    assert final == {f"o{i}": S.DELIVERED if i < 3 else S.BACKORDERED for i in range(5)}
    assert not scheduler.busy


def test_messages_are_handled_one_at_a_time_in_order() -> None:
    scheduler, _ = make_scheduler(Delays(pack=60.0), A=3)

    async def main() -> None:
        scheduler.loop = asyncio.get_running_loop()
        actor = submit(scheduler, "o1", ("A", 2))
        scheduler.tell(actor, Cancel("too slow"))  # queued behind the submit's reservation
        scheduler.run_until_quiet()
        assert scheduler.inventory.available("A") == 1  # released after the batch, not mid-way
        scheduler.apply_releases()

    asyncio.run(main())
    assert emitted(scheduler) == [
        ("o1", 1, S.PENDING),
        ("o1", 2, S.RESERVED),
        ("o1", 3, S.CANCELLED),
    ]
    assert scheduler.timers == 0
    assert scheduler.inventory.available("A") == 3


def test_cancel_from_pending_holds_nothing_to_release() -> None:
    scheduler, _ = make_scheduler(A=3)
    actor = scheduler.actor("o1", pending_state("o1", ("A", 2)))
    scheduler.tell(actor, Cancel(None))
    scheduler.run_until_quiet()
    assert emitted(scheduler) == [("o1", 2, S.CANCELLED)]
    assert actor.state is not None
    assert actor.state.reason == "cancelled by request"
    assert scheduler.inventory.available("A") == 3


def test_cancel_of_an_order_never_seen_is_refused() -> None:
    scheduler, _ = make_scheduler(A=3)
    scheduler.tell(scheduler.actor("ghost", None), Cancel(None))
    scheduler.run_until_quiet()
    assert emitted(scheduler) == []
    assert scheduler.refused == [("ghost", "cannot cancel: order is unknown")]


def test_submit_of_a_known_order_changes_nothing() -> None:
    scheduler, _ = make_scheduler(A=3)
    state = pending_state("o1", ("A", 1))
    state.status, state.version = S.BACKORDERED, 2
    actor = scheduler.actor("o1", state)
    scheduler.tell(actor, Submit(Order("o1", "ada", (LineItem("A", 1),)), 1, 0.5))
    scheduler.run_until_quiet()
    assert emitted(scheduler) == []


def test_a_stale_timer_does_nothing() -> None:
    scheduler, _ = make_scheduler(A=3)
    state = pending_state("o1", ("A", 1))
    state.status, state.version = S.CANCELLED, 2
    actor = scheduler.actor("o1", state)
    scheduler.tell(actor, Advance(S.RESERVED))
    scheduler.run_until_quiet()
    assert emitted(scheduler) == []


def test_wake_only_moves_backorders() -> None:
    scheduler, _ = make_scheduler(A=3)
    pending = scheduler.actor("o1", pending_state("o1", ("A", 1)))
    scheduler.tell(pending, Wake())
    waiting_state = pending_state("o2", ("A", 1))
    waiting_state.status, waiting_state.version = S.BACKORDERED, 2
    waiting = scheduler.actor("o2", waiting_state)
    scheduler.tell(waiting, Wake())
    scheduler.run_until_quiet()
    assert {order_id for order_id, _, _ in emitted(scheduler)} == {"o2"}
    assert emitted(scheduler)[0] == ("o2", 3, S.RESERVED)
    assert waiting.state is not None
    assert waiting.state.status is S.DELIVERED


def test_a_wake_that_still_does_not_fit_adds_no_event() -> None:
    scheduler, _ = make_scheduler(A=0)
    state = pending_state("o1", ("A", 1))
    state.status, state.version = S.BACKORDERED, 2
    actor = scheduler.actor("o1", state)
    scheduler.tell(actor, Wake())
    scheduler.run_until_quiet()
    assert emitted(scheduler) == []


def test_timers_deliver_advances_and_are_counted() -> None:
    scheduler, _ = make_scheduler(Delays(pack=0.01, ship=0.01, deliver=0.01), A=3)
    woken: list[int] = []
    scheduler.on_message = lambda: woken.append(1)

    async def main() -> None:
        scheduler.loop = asyncio.get_running_loop()
        submit(scheduler, "o1", ("A", 1))
        scheduler.run_until_quiet()
        assert scheduler.timers == 1
        for _ in range(3):
            while not scheduler.busy:
                await asyncio.sleep(0.002)
            scheduler.run_until_quiet()
        assert scheduler.timers == 0

    asyncio.run(main())
    assert [s for _, _, s in emitted(scheduler)] == [
        S.PENDING,
        S.RESERVED,
        S.PACKED,
        S.SHIPPED,
        S.DELIVERED,
    ]
    assert len(woken) == 3


def test_passivate_keeps_only_actors_with_work_left() -> None:
    scheduler, _ = make_scheduler(Delays(pack=60.0), A=1)

    async def main() -> None:
        scheduler.loop = asyncio.get_running_loop()
        submit(scheduler, "timed", ("A", 1), position=1)  # reserved, timer armed
        submit(scheduler, "waits", ("A", 1), position=2)  # backordered: idle
        submit(scheduler, "bad", ("ZZ", 1), position=3)  # rejected: terminal
        scheduler.run_until_quiet()
        scheduler.passivate()
        assert set(scheduler.actors) == {"timed"}
        timed = scheduler.actors["timed"]
        scheduler.tell(timed, Cancel(None))
        scheduler.run_until_quiet()
        scheduler.passivate()
        assert scheduler.actors == {}
        assert scheduler.timers == 0

    asyncio.run(main())
