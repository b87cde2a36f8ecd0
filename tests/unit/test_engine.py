"""The engine loop end to end: on the in-memory fake, and the same cases on SQLite.

The ``shop`` fixture runs each test once per backend: ``memory`` drives the
engine over :mod:`fakes`, ``sqlite`` goes through :class:`realorders.Client`
on a real database file. Only the few things the fake has no notion of
(a second process, removing a product) are SQLite-only.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import MemoryBackend

from realorders import (
    Client,
    Delays,
    Engine,
    EngineBusyError,
    EngineStats,
    InputError,
    LineItem,
    RefusedError,
)
from realorders.catalogue_file import ProductRow
from realorders.check import check
from realorders.domain import Order, OrderState, Status
from realorders.engine.ports import CommandKind

S = Status
LIFECYCLE = [S.PENDING, S.RESERVED, S.PACKED, S.SHIPPED, S.DELIVERED]
HOLD = Delays(pack=60.0)  # orders stay reserved until the test stops the engine
HOLD_PACKED = Delays(ship=60.0)
HOLD_SHIPPED = Delays(deliver=60.0)


class Shop:
    """One store plus the engine runs a test needs, the same on every backend."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.client: Client | None = None
        if kind == "memory":
            self.backend: Any = MemoryBackend()
        else:
            self.client = Client(tmp_path / "x.db")
            self.backend = self.client.backend
        self.engine: Engine | None = None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    # -- commands ---------------------------------------------------------------

    def product(self, product_id: str, stock: int, price: float = 5.0) -> None:
        if self.client is not None:
            self.client.add_product(product_id, f"product {product_id}", price, stock)
        else:
            self.backend.catalogue.add(product_id, f"product {product_id}", price, stock)

    def submit(self, order_id: str, *lines: tuple[str, int], customer: str = "ada") -> int:
        items = [LineItem(p, q) for p, q in lines]
        if self.client is not None:
            result = self.client.submit(order_id=order_id, customer_id=customer, items=items)
        else:
            (result,) = self.backend.commands.append_orders(
                [Order(order_id, customer, tuple(items))]
            )
        assert result.position is not None
        return result.position

    def submit_many(self, orders: list[Order]) -> None:
        self.backend.commands.append_orders(orders)

    def cancel(self, order_id: str, reason: str | None = None) -> int:
        """Append a cancel as is: the engine, not the client, decides (see test_client_*)."""
        position: int = self.backend.commands.append(
            CommandKind.CANCEL, order_id, {"reason": reason}
        )
        return position

    def restock(self, product_id: str, quantity: int) -> int:
        if self.client is not None:
            return self.client.restock(product_id, quantity)
        position: int = self.backend.commands.append(
            CommandKind.RESTOCK, None, {"product_id": product_id, "quantity": quantity}
        )
        return position

    def set_stock(self, product_id: str, quantity: int) -> int:
        position: int = self.backend.commands.append(
            CommandKind.SET_STOCK, None, {"product_id": product_id, "quantity": quantity}
        )
        return position

    # -- the engine -------------------------------------------------------------

    def new_engine(self, delays: Delays | None = None, **options: Any) -> Engine:
        if self.client is not None and set(options) <= {"batch_size"}:
            engine = self.client.engine(delays=delays, **options)
        else:
            engine = Engine(self.backend, delays=delays, **options)
        self.engine = engine
        return engine

    def run(self, delays: Delays | None = None, **options: Any) -> EngineStats:
        """Run until idle (nothing pending, no timer armed)."""
        engine = self.new_engine(delays, **options)
        return asyncio.run(asyncio.wait_for(engine.run(until_idle=True), 30))

    def run_until(
        self,
        done: Callable[[], bool],
        delays: Delays | None = None,
        timeout: float = 10.0,
        **options: Any,
    ) -> EngineStats:
        """Run the engine until ``done()`` holds on committed state, then stop it."""
        engine = self.new_engine(delays, **options)

        async def main() -> EngineStats:
            task = asyncio.create_task(engine.run())
            deadline = time.monotonic() + timeout
            while not task.done() and not done():
                if time.monotonic() > deadline:
                    engine.stop()
                    await task
                    raise AssertionError("condition not reached in time")
                await asyncio.sleep(0.005)
            engine.stop()
            return await task

        return asyncio.run(main())

    def processed(self, position: int) -> Callable[[], bool]:
        return lambda: self.backend.position() >= position

    def reaches(self, order_id: str, status: Status) -> Callable[[], bool]:
        return lambda: self.status(order_id) is status

    # -- reads ------------------------------------------------------------------

    def state(self, order_id: str) -> OrderState:
        state: OrderState | None = self.backend.orders.get(order_id)
        assert state is not None, f"{order_id} not processed"
        return state

    def status(self, order_id: str) -> Status | None:
        state = self.backend.orders.get(order_id)
        return None if state is None else state.status

    def statuses(self, order_id: str) -> list[Status]:
        history = self.backend.events.history(order_id)
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        return [e.status for e in history]

    def level(self, product_id: str) -> tuple[int, int]:
        """(on_hand, reserved) as committed."""
        for level in self.backend.orders.levels():
            if level.product_id == product_id:
                return level.on_hand, level.reserved
        raise AssertionError(f"no product {product_id}")

    def assert_consistent(self) -> None:
        report = check(self.backend)
        assert report.ok, report.problems


@pytest.fixture(params=["memory", "sqlite"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    store = Shop(request.param, tmp_path)
    yield store
    store.close()


@pytest.fixture
def sqlite_shop(tmp_path: Path) -> Iterator[Shop]:
    store = Shop("sqlite", tmp_path)
    yield store
    store.close()


# -- the lifecycle -------------------------------------------------------------


def test_zero_delay_order_walks_the_whole_lifecycle(shop: Shop) -> None:
    shop.product("A", 5)
    shop.submit("o1", ("A", 2))
    stats = shop.run()
    assert shop.statuses("o1") == LIFECYCLE
    state = shop.state("o1")
    assert (state.status, state.version, state.total) == (S.DELIVERED, 5, 10.0)
    assert state.terminal_at is not None
    assert shop.level("A") == (3, 0)
    assert (stats.commands, stats.events, stats.finished) == (1, 5, 1)
    assert shop.backend.position() == 1
    shop.assert_consistent()


def test_unknown_product_is_rejected_with_a_reason(shop: Shop) -> None:
    shop.product("A", 5)
    shop.submit("o1", ("A", 1), ("ZZ", 1), ("YY", 2))
    shop.run()
    assert shop.statuses("o1") == [S.PENDING, S.REJECTED]
    state = shop.state("o1")
    assert state.reason == "unknown product 'YY', 'ZZ'"
    assert state.total is None  # unpriced lines
    assert shop.level("A") == (5, 0)
    shop.assert_consistent()


def test_out_of_stock_is_backordered_and_holds_nothing(shop: Shop) -> None:
    shop.product("A", 1)
    shop.product("B", 9)
    shop.submit("o1", ("A", 3), ("B", 1))
    shop.run()
    assert shop.statuses("o1") == [S.PENDING, S.BACKORDERED]
    assert shop.state("o1").reason == "out of stock: A needs 3, 1 available"
    assert shop.level("A") == (1, 0)
    assert shop.level("B") == (9, 0)
    waiting = {s.product_id: s.backordered for s in shop.backend.orders.levels()}
    assert waiting == {"A": 1, "B": 1}
    shop.assert_consistent()


def test_orders_in_one_batch_compete_in_arrival_order(shop: Shop) -> None:
    shop.product("A", 3)
    for order_id, quantity in (("first", 2), ("second", 2), ("third", 1)):
        shop.submit(order_id, ("A", quantity))
    shop.run()
    assert shop.status("first") is S.DELIVERED
    assert shop.status("second") is S.BACKORDERED
    assert shop.status("third") is S.DELIVERED  # the earliest that fits
    assert shop.level("A") == (0, 0)
    shop.assert_consistent()


def test_restock_wakes_backorders_in_arrival_order(shop: Shop) -> None:
    """Arrival (command position) decides, not the id: the ids sort the other way."""
    shop.product("A", 0)
    wanted = {"z1": 3, "y2": 1, "x3": 2, "w4": 1}
    for order_id, quantity in wanted.items():
        shop.submit(order_id, ("A", quantity))
    shop.run()
    assert {shop.status(o) for o in wanted} == {S.BACKORDERED}

    shop.restock("A", 3)  # exactly what the earliest needs
    shop.run()
    assert [shop.status(o) for o in wanted] == [S.DELIVERED] + [S.BACKORDERED] * 3

    shop.restock("A", 2)  # y2 takes 1; x3 needs 2 and does not fit; w4 takes the last
    shop.run()
    assert [shop.status(o) for o in wanted] == [
        S.DELIVERED,
        S.DELIVERED,
        S.BACKORDERED,
        S.DELIVERED,
    ]
    reserved_order = [
        e.order_id for _, e in shop.backend.events.tail(0, 1000) if e.status is S.RESERVED
    ]
    assert reserved_order == ["z1", "y2", "w4"]
    assert shop.statuses("x3") == [S.PENDING, S.BACKORDERED]  # a failed wake adds no event

    shop.restock("A", 2)
    shop.run()
    assert shop.statuses("x3") == [S.PENDING, S.BACKORDERED, *LIFECYCLE[1:]]
    assert shop.state("x3").reason is None
    assert shop.level("A") == (0, 0)
    shop.assert_consistent()


def test_restock_of_one_product_waits_for_the_others(shop: Shop) -> None:
    shop.product("A", 0)
    shop.product("B", 0)
    shop.submit("o1", ("A", 1), ("B", 1))
    shop.run()
    shop.restock("A", 5)
    shop.run()
    assert shop.statuses("o1") == [S.PENDING, S.BACKORDERED]
    assert shop.level("A") == (5, 0)  # nothing held while waiting
    shop.restock("B", 1)
    shop.run()
    assert shop.status("o1") is S.DELIVERED
    assert (shop.level("A"), shop.level("B")) == ((4, 0), (0, 0))
    shop.assert_consistent()


def test_a_delivery_of_restocks_is_one_batch(shop: Shop) -> None:
    """Restocks in a row share a batch; each still wakes its product's backorders in turn."""
    shop.product("A", 0)
    shop.product("B", 0)
    shop.submit("o1", ("A", 1))
    shop.submit("o2", ("A", 1), ("B", 1))  # woken by A first, short of B until B's turn
    shop.submit("o3", ("B", 1))
    shop.run()
    assert {shop.status(o) for o in ("o1", "o2", "o3")} == {S.BACKORDERED}
    shop.restock("A", 2)
    shop.restock("B", 2)
    stats = shop.run()
    assert stats.batches == 1
    assert [shop.status(o) for o in ("o1", "o2", "o3")] == [S.DELIVERED] * 3
    assert (shop.level("A"), shop.level("B")) == ((0, 0), (0, 0))
    shop.assert_consistent()


def test_a_restock_wakes_more_than_one_page_of_backorders(shop: Shop) -> None:
    shop.product("A", 0)
    shop.submit_many([Order(f"o{i:05}", "ada", (LineItem("A", 1),)) for i in range(1200)])
    shop.run()
    assert shop.backend.orders.counts()["backordered"] == 1200
    shop.restock("A", 1150)
    shop.run()
    delivered = {s.id for s in shop.backend.orders.backordered(None, 0, 2000)}
    assert delivered == {f"o{i:05}" for i in range(1150, 1200)}  # the latest 50 still wait
    assert shop.level("A") == (0, 0)
    shop.assert_consistent()


def test_set_stock_wakes_backorders(shop: Shop) -> None:
    shop.product("A", 0)
    shop.submit("o1", ("A", 2))
    shop.run()
    shop.set_stock("A", 2)
    shop.run()
    assert shop.status("o1") is S.DELIVERED
    assert shop.level("A") == (0, 0)
    shop.assert_consistent()


def test_set_stock_below_reserved_is_refused_by_the_engine(shop: Shop) -> None:
    shop.product("A", 5)
    shop.submit("o1", ("A", 3))
    shop.run_until(shop.reaches("o1", S.RESERVED), HOLD)
    position = shop.set_stock("A", 2)
    shop.run_until(shop.processed(position), HOLD)
    assert shop.level("A") == (5, 3)
    assert shop.status("o1") is S.RESERVED
    shop.assert_consistent()


# -- cancelling -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delays", "held_in"),
    [(HOLD, S.RESERVED), (HOLD_PACKED, S.PACKED)],
    ids=["reserved", "packed"],
)
def test_cancel_while_holding_stock_releases_it(
    shop: Shop, delays: Delays, held_in: Status
) -> None:
    shop.product("A", 5)
    shop.submit("o1", ("A", 2))
    shop.run_until(shop.reaches("o1", held_in), delays)
    assert shop.level("A") == (5, 2)
    shop.cancel("o1", "customer changed their mind")
    shop.run_until(shop.reaches("o1", S.CANCELLED), delays)
    assert shop.statuses("o1")[-2:] == [held_in, S.CANCELLED]
    assert shop.state("o1").reason == "customer changed their mind"
    assert shop.level("A") == (5, 0)
    assert shop.engine is not None
    assert shop.engine.scheduler.timers == 0  # the fulfilment timer was disarmed
    shop.assert_consistent()


def test_cancel_from_backordered(shop: Shop) -> None:
    shop.product("A", 0)
    shop.submit("o1", ("A", 2))
    shop.run()
    shop.cancel("o1")
    shop.run()
    assert shop.statuses("o1") == [S.PENDING, S.BACKORDERED, S.CANCELLED]
    assert shop.state("o1").reason == "cancelled by request"
    shop.restock("A", 5)
    shop.run()
    assert shop.status("o1") is S.CANCELLED  # no longer waiting
    assert shop.level("A") == (5, 0)
    shop.assert_consistent()


@pytest.mark.parametrize("delays", [HOLD, None], ids=["delays", "zero-delays"])
def test_a_cancel_logged_before_the_engine_reaches_the_order_wins(
    shop: Shop, delays: Delays | None
) -> None:
    """Cancelled straight from pending, with no stock taken, however batches split."""
    shop.product("A", 5)
    shop.submit("o1", ("A", 2))
    shop.cancel("o1")
    shop.run(delays)
    assert shop.statuses("o1") == [S.PENDING, S.CANCELLED]
    assert shop.level("A") == (5, 0)
    shop.assert_consistent()


def test_cancel_after_shipping_is_refused_without_an_event(shop: Shop) -> None:
    shop.product("A", 5)
    shop.submit("o1", ("A", 2))
    shop.run_until(shop.reaches("o1", S.SHIPPED), HOLD_SHIPPED)
    position = shop.cancel("o1")
    shop.run_until(shop.processed(position), HOLD_SHIPPED)
    assert shop.statuses("o1") == LIFECYCLE[:4]
    assert shop.level("A") == (3, 0)
    shop.assert_consistent()


def test_cancel_after_delivery_is_refused_without_an_event(shop: Shop) -> None:
    shop.product("A", 5)
    shop.submit("o1", ("A", 2))
    shop.run()
    shop.cancel("o1")
    shop.submit("o2", ("A", 1))
    stats = shop.run()
    assert shop.statuses("o1") == LIFECYCLE
    assert shop.status("o2") is S.DELIVERED
    assert (stats.commands, stats.events) == (2, 5)
    shop.assert_consistent()


def test_cancel_of_an_unknown_order_is_ignored(shop: Shop) -> None:
    shop.product("A", 5)
    shop.cancel("ghost")
    shop.submit("o1", ("A", 1))
    shop.run()
    assert shop.backend.orders.get("ghost") is None
    assert shop.status("o1") is S.DELIVERED
    shop.assert_consistent()


def test_client_refuses_to_cancel_a_shipped_order(sqlite_shop: Shop) -> None:
    shop = sqlite_shop
    assert shop.client is not None
    shop.product("A", 5)
    shop.submit("o1", ("A", 2))
    shop.run()
    head = shop.backend.engine_info().head
    with pytest.raises(RefusedError, match="delivered"):
        shop.client.cancel("o1")
    assert shop.backend.engine_info().head == head  # nothing appended


def test_stock_released_by_a_cancel_goes_to_the_waiting_backorder(shop: Shop) -> None:
    shop.product("A", 2)
    shop.submit("holder", ("A", 2))
    shop.submit("waiter", ("A", 2))
    shop.run_until(shop.reaches("waiter", S.BACKORDERED), HOLD)
    assert shop.status("holder") is S.RESERVED
    shop.cancel("holder")
    shop.submit("latecomer", ("A", 2))
    shop.run_until(shop.reaches("holder", S.CANCELLED), HOLD)
    assert shop.status("waiter") is S.RESERVED  # arrived first, waited for this stock
    assert shop.status("latecomer") is S.BACKORDERED


# -- delays and idleness ---------------------------------------------------------


def test_orders_advance_over_time_with_delays(shop: Shop) -> None:
    shop.product("A", 100)
    for i in range(20):
        shop.submit(f"o{i}", ("A", 1))
    delays = Delays(pack=0.05, ship=0.05, deliver=0.05)
    seen: set[tuple[str, ...]] = set()

    def snapshot() -> bool:
        counts: dict[str, int] = shop.backend.orders.counts()
        seen.add(tuple(k for k, v in counts.items() if v))
        return counts["delivered"] == 20

    started = time.monotonic()
    shop.run_until(snapshot, delays)
    assert time.monotonic() - started >= 0.15
    assert any("packed" in s or "shipped" in s for s in seen)  # observed mid-way
    for i in range(20):
        history = shop.backend.events.history(f"o{i}")
        assert [e.status for e in history] == LIFECYCLE
        steps = [b.at - a.at for a, b in itertools.pairwise(history[1:])]
        assert all(step >= 0.045 for step in steps), steps
    shop.assert_consistent()


def test_until_idle_waits_for_timers_then_returns(shop: Shop) -> None:
    shop.product("A", 10)
    for i in range(5):
        shop.submit(f"o{i}", ("A", 1))
    started = time.monotonic()
    shop.run(Delays(pack=0.05, ship=0.05, deliver=0.05))
    assert time.monotonic() - started >= 0.15
    assert shop.backend.orders.counts()["delivered"] == 5
    assert shop.engine is not None
    assert shop.engine.scheduler.timers == 0
    shop.assert_consistent()


def test_until_idle_returns_with_nothing_to_do_and_with_backorders(shop: Shop) -> None:
    stats = shop.run()
    assert stats.commands == 0
    shop.product("A", 0)
    shop.submit("o1", ("A", 1))
    shop.run(Delays(pack=5.0))  # backorders cannot move: no timer, so idle
    assert shop.status("o1") is S.BACKORDERED


def test_a_stopped_engine_resumes_orders_in_flight(shop: Shop) -> None:
    shop.product("A", 10)
    for i in range(5):
        shop.submit(f"o{i}", ("A", 1))
    slow = Delays(pack=0.05, ship=0.05, deliver=0.05)
    shop.run_until(lambda: shop.backend.orders.counts()["packed"] > 0, slow)
    assert shop.backend.orders.counts()["delivered"] < 5
    shop.run(slow)  # a new engine re-arms the timers from the committed state
    assert {shop.status(f"o{i}") for i in range(5)} == {S.DELIVERED}
    for i in range(5):
        assert shop.statuses(f"o{i}") == LIFECYCLE
    shop.assert_consistent()


def test_running_again_changes_nothing(shop: Shop) -> None:
    shop.product("A", 1)
    shop.submit("o1", ("A", 1))
    shop.submit("o2", ("A", 1))
    shop.run()
    head = shop.backend.events.head()
    stats = shop.run()
    assert (stats.commands, stats.events) == (0, 0)
    assert shop.backend.events.head() == head


def rewind(shop: Shop) -> None:
    """Hand the engine its commands again, as a log with at-least-once delivery may."""
    shop.backend.redelivers = True  # what such a backend declares
    if shop.kind == "memory":
        shop.backend.store.position = 0
    else:
        shop.backend.connection().execute("UPDATE engine SET position = 0")
    assert shop.backend.position() == 0


def test_a_second_cancel_changes_nothing(shop: Shop) -> None:
    shop.product("A", 5)
    shop.submit("o1", ("A", 2))
    shop.cancel("o1")
    shop.run(HOLD)
    shop.cancel("o1", "again")
    stats = shop.run(HOLD)
    assert (stats.commands, stats.events) == (1, 0)
    assert shop.statuses("o1") == [S.PENDING, S.CANCELLED]
    assert shop.level("A") == (5, 0)
    shop.assert_consistent()


def test_redelivered_commands_change_nothing(shop: Shop) -> None:
    shop.product("A", 5)
    shop.product("B", 0)
    shop.submit("held", ("A", 2))
    shop.submit("waits", ("B", 1))
    shop.submit("gone", ("A", 1))
    last = shop.cancel("gone")
    shop.run_until(shop.processed(last), HOLD)
    before = {o: shop.statuses(o) for o in ("held", "waits", "gone")}
    assert before["held"] == [S.PENDING, S.RESERVED]
    assert before["gone"] == [S.PENDING, S.CANCELLED]
    assert shop.level("A") == (5, 2)
    rewind(shop)
    stats = shop.run_until(shop.processed(last), HOLD)
    assert stats.commands == 4
    assert stats.events == 0
    assert {o: shop.statuses(o) for o in before} == before
    assert shop.level("A") == (5, 2)  # not reserved a second time
    shop.assert_consistent()


# -- memory bounds and batching ----------------------------------------------------


def test_actors_are_passivated_after_a_big_run(shop: Shop) -> None:
    shop.product("A", 6000)
    shop.product("B", 1200)
    orders = [
        Order(f"o{i:05}", f"c{i % 7}", (LineItem("A", 1), LineItem("B", 1 + i % 2)))
        for i in range(10_000)
    ]
    shop.submit_many(orders)
    stats = shop.run(batch_size=1000)
    assert stats.commands == 10_000
    assert stats.batches >= 10
    assert shop.engine is not None
    assert shop.engine.scheduler.actors == {}
    counts = shop.backend.orders.counts()
    assert counts["delivered"] + counts["backordered"] == 10_000
    assert counts["delivered"] > 0
    assert counts["backordered"] > 0
    shop.assert_consistent()


def test_actors_waiting_on_timers_stay_bounded(shop: Shop) -> None:
    shop.product("A", 10_000)
    shop.submit_many([Order(f"o{i:04}", "ada", (LineItem("A", 1),)) for i in range(600)])
    engine = shop.new_engine(Delays(pack=0.02), batch_size=50, max_live=100)
    peak = 0

    async def main() -> None:
        nonlocal peak
        task = asyncio.create_task(engine.run(until_idle=True))
        while not task.done():
            peak = max(peak, len(engine.scheduler.actors))
            await asyncio.sleep(0)
        await task

    asyncio.run(asyncio.wait_for(main(), 30))
    assert 0 < peak < 100 + 50  # the bound, overshot by at most one batch
    assert engine.scheduler.actors == {}
    assert shop.backend.orders.counts()["delivered"] == 600
    shop.assert_consistent()


def test_reservations_of_a_batch_go_to_the_inventory_together(shop: Shop) -> None:
    shop.product("A", 100)
    for i in range(30):
        shop.submit(f"o{i}", ("A", 1))
    calls: list[int] = []
    inventory = shop.backend.inventory
    original = inventory.reserve_many

    def spy(requests: Any) -> Any:
        calls.append(len(requests))
        return original(requests)

    inventory.reserve_many = spy
    shop.run()
    assert calls == [30]


# -- crashes at a commit ------------------------------------------------------------


class Crash(Exception):
    pass


def test_a_crash_at_commit_loses_only_the_uncommitted_batch(shop: Shop) -> None:
    shop.product("A", 40)
    shop.product("B", 10)
    orders = [
        Order(f"o{i:03}", "ada", (LineItem("A", 1),) + ((LineItem("B", 1),) if i % 3 else ()))
        for i in range(90)
    ]
    shop.submit_many(orders[:60])
    shop.restock("B", 5)
    shop.submit_many(orders[60:])
    backend = shop.backend
    real_commit = backend.commit
    commits = 0

    def crashing_commit(changes: Any) -> None:
        nonlocal commits
        commits += 1
        if commits == 3:
            raise Crash("power cut")
        real_commit(changes)

    backend.commit = crashing_commit
    with pytest.raises(Crash):
        shop.run(batch_size=20)
    assert 0 < backend.position() < 91
    backend.commit = real_commit
    shop.run(batch_size=20)
    assert backend.position() == 91
    counts = backend.orders.counts()
    assert sum(counts.values()) == 90
    assert counts["delivered"] + counts["backordered"] == 90
    shop.assert_consistent()  # no event twice, stock conserved


# -- one engine per store -------------------------------------------------------------


def test_a_second_engine_is_refused(shop: Shop, tmp_path: Path) -> None:
    other: Any
    if shop.kind == "memory":
        other = MemoryBackend(shop.backend.store)
    else:
        other = Client(tmp_path / "x.db").backend
    shop.backend.claim_engine()
    try:
        with pytest.raises(EngineBusyError):
            asyncio.run(Engine(other).run(until_idle=True))
    finally:
        shop.backend.release_engine()
    asyncio.run(Engine(other).run(until_idle=True))  # free again
    other.close()


# -- SQLite only -----------------------------------------------------------------------


def test_engine_info_reports_a_running_engine(sqlite_shop: Shop, tmp_path: Path) -> None:
    shop = sqlite_shop
    shop.product("A", 5)
    shop.submit("o1", ("A", 1))
    with Client(tmp_path / "x.db") as watcher:
        seen: list[Any] = []

        def running() -> bool:
            seen.append((watcher.engine_running(), watcher.engine_info()))
            return shop.status("o1") is S.DELIVERED

        shop.run_until(running)
        assert seen[-1][0] is True
        assert seen[-1][1].pid is not None
        assert watcher.engine_running() is False
        assert watcher.engine_info().pid is None
        assert watcher.engine_info().position == 1


def test_a_product_in_open_orders_cannot_be_removed(sqlite_shop: Shop) -> None:
    shop = sqlite_shop
    assert shop.client is not None
    shop.product("A", 5)
    shop.product("B", 0)
    shop.submit("o1", ("A", 1), ("B", 5))
    shop.run()
    assert shop.status("o1") is S.BACKORDERED
    with pytest.raises(RefusedError, match=r"'A' is in 1 open orders \(e.g. o1\)"):
        shop.client.remove_product("A")
    shop.restock("B", 10)
    shop.run()
    assert shop.status("o1") is S.DELIVERED
    shop.client.remove_product("A")  # nothing open refers to it any more
    shop.assert_consistent()


def test_a_backorder_whose_product_left_the_catalogue_is_rejected(shop: Shop) -> None:
    """The race the refusal above cannot close: removed between backorder and wake."""
    shop.product("A", 5)
    shop.product("B", 0)
    shop.submit("o1", ("A", 1), ("B", 5))
    shop.run()
    assert shop.status("o1") is S.BACKORDERED
    backend = shop.backend
    if shop.kind == "memory":
        backend.store.products.pop("A")
        backend.inventory.load()
    else:
        backend.connection().execute("DELETE FROM products WHERE product_id = 'A'")
    shop.restock("B", 10)
    shop.run()
    assert shop.status("o1") is S.REJECTED
    assert "left the catalogue" in (shop.state("o1").reason or "")


def test_re_adding_a_removed_product_sets_its_stock(sqlite_shop: Shop) -> None:
    shop = sqlite_shop
    assert shop.client is not None
    shop.product("A", 5)
    shop.client.remove_product("A")
    shop.product("A", 3)  # its old stock row survives: the level is set through the engine
    shop.run()
    assert shop.level("A") == (3, 0)
    shop.assert_consistent()


@pytest.mark.parametrize("quantity", [-3, 0])
def test_a_non_positive_quantity_never_reaches_the_engine(sqlite_shop: Shop, quantity: int) -> None:
    shop = sqlite_shop
    shop.product("A", 5)
    try:
        shop.submit("bad", ("A", quantity))
    except InputError:
        pass  # refused at the door: fine
    else:
        shop.run()
        assert shop.status("bad") is S.REJECTED  # DESIGN: invalid -> rejected
    assert shop.level("A") == (5, 0)


@pytest.mark.parametrize("batch_size", [1, 2000])
def test_stock_a_cancel_frees_goes_to_the_oldest_backorder_whatever_the_batch(
    shop: Shop, batch_size: int
) -> None:
    """A newer submission in the cancel's own batch must not take the freed units."""
    shop.product("P", 1)
    shop.submit("A", ("P", 1))
    shop.submit("B", ("P", 1))
    shop.run_until(shop.reaches("B", S.BACKORDERED), HOLD)
    assert shop.status("A") is S.RESERVED
    shop.submit("X", ("P", 1))  # newer than B, and in the same batch as the cancel
    shop.cancel("A")
    shop.run_until(shop.reaches("A", S.CANCELLED), HOLD, batch_size=batch_size)
    assert shop.status("B") is S.RESERVED
    assert shop.status("X") is S.BACKORDERED
    shop.assert_consistent()


def test_an_engine_start_offers_free_stock_to_waiting_orders(sqlite_shop: Shop) -> None:
    """Stock raised while no engine ran (init --inventory) still wakes backorders."""
    shop = sqlite_shop
    assert shop.client is not None
    shop.product("P", 0)
    shop.submit("W", ("P", 2))
    shop.run()
    assert shop.status("W") is S.BACKORDERED
    shop.client.load_inventory([ProductRow("P", "p", 1.0, 5)])
    shop.run()
    assert shop.status("W") is S.DELIVERED
    shop.assert_consistent()
