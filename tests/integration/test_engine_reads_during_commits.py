"""The engine's next batch runs while earlier ones are still being written, on both backends.

The writes themselves are slowed down (each waits 0.8 s before writing for
real), so that the engine goes on while they run: what it reads meanwhile
must still be what it did. Orders that end backordered are dropped from memory
as soon as their batch is handed over; cancels of them arrive in the next
batches and must find them (on Kafka through a read that waits for the batch
in flight, on SQLite through reads that wait for the writer), and a restock
mid-stream must see every backorder made before it. The stores, broker and
Redis are real; only the pace of our own write function is changed.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from realorders import Client, Delays, LineItem, Order, Status
from realorders.config import Config
from realorders.engine.engine import Engine, EngineStats

ROUNDS = 7
PER_ROUND = 10  # orders per round: half can be delivered, half wait for stock
#: longer than the engine waits on Kafka for the commit in flight before it reads a batch
#: that is not full (0.5 s), so that it goes on while the batch before is being written
WRITE_DELAY = 0.8
RESTOCKED = 4
_PRODUCT = ("IN", "OUT")  # even order numbers can be delivered, odd ones wait


@pytest.fixture
def config(backend_config: Config) -> Config:
    """A store with one product in stock and one sold out (on each backend in turn)."""
    with Client(config=backend_config, create=True) as client:
        client.add_product("IN", "In stock", 5.0, 10_000)
        client.add_product("OUT", "Sold out", 7.0, 0)
    return backend_config


def _slowed(write: Callable[..., None], calls: list[int]) -> Callable[..., None]:
    @functools.wraps(write)
    def slow(*args: Any) -> None:
        calls.append(1)
        time.sleep(WRITE_DELAY)
        write(*args)

    return slow


class _EngineThread:
    """An engine on a handle of its own, in a thread, stopped like SIGTERM stops one."""

    def __init__(self, config: Config) -> None:
        self.client = Client(config=config)
        self.engine = Engine(self.client.backend, delays=Delays(), batch_size=PER_ROUND)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self.engine.run())
        except BaseException as exc:  # raised again in the test's thread
            self.error = exc

    def stop(self) -> EngineStats:
        self.engine.stop()
        self._thread.join(60)
        self.client.close()
        if self.error is not None:
            raise self.error
        return self.engine.stats


def _caught_up(shop: Client) -> None:
    """Until the engine has processed everything, including what it queued itself on
    Kafka meanwhile (a restock's wake-ups, one per partition, take log positions when
    the restock commits)."""
    head = -1
    while head != (head := shop.engine_info().head):
        assert shop.wait_processed(head, timeout=60)


def test_reads_during_writes_in_flight_see_the_engines_own_batches(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []  # each slowed write, counted
    if config.backend == "kafka":
        from realorders.engine.backends.distributed.backend import KafkaBackend

        monkeypatch.setattr(KafkaBackend, "_write", _slowed(KafkaBackend._write, writes))
    else:
        from realorders.engine.backends.sqlite import commit

        monkeypatch.setattr(commit, "write", _slowed(commit.write, writes))

    engine = _EngineThread(config)
    cancelled_ids: list[str] = []
    with Client(config=config) as shop:
        try:
            # the engine has joined and runs (its first order is through) before round 0
            shop.submit_many([Order("W-0", "c0", (LineItem("IN", 1),))])
            assert shop.wait(["W-0"], timeout=60)["W-0"].status is Status.DELIVERED
            for r in range(ROUNDS):
                cancelling = r % 3 == 0  # between, rounds of submissions alone
                if cancelling:  # the engine has caught up with the rounds before
                    _caught_up(shop)
                shop.submit_many(
                    [
                        Order(f"R{r:02}-{i}", f"c{i}", (LineItem(_PRODUCT[i % 2], 1),))
                        for i in range(PER_ROUND)
                    ]
                )
                if cancelling:
                    # the engine reads the round (within a poll), leaves its odd orders
                    # backordered and hands the batch over; while it is being written,
                    # cancels of them arrive: the engine no longer holds them in memory
                    time.sleep(WRITE_DELAY / 3)
                    for i in (1, 3):
                        shop.cancel(f"R{r:02}-{i}")
                        cancelled_ids.append(f"R{r:02}-{i}")
                if r == ROUNDS // 2:
                    shop.restock("OUT", RESTOCKED)
            _caught_up(shop)
            states = {s.id: s for s in shop.list_orders(limit=ROUNDS * PER_ROUND + 1)}
        finally:
            stats = engine.stop()
        assert len(states) == ROUNDS * PER_ROUND + 1
        assert stats.batches > ROUNDS
        assert len(writes) >= stats.batches  # wake-ups of the restock commit on their own
        # every cancel found its order, although the engine had already dropped it from memory
        # (the restock comes after them in the log, so none can have been delivered first)
        for order_id in cancelled_ids:
            assert states[order_id].status is Status.CANCELLED, order_id
            history = [e.status for e in shop.backend.events.history(order_id)]
            assert history == [Status.PENDING, Status.BACKORDERED, Status.CANCELLED], order_id
        in_stock = [s for s in states.values() if s.id[-1] in "02468"]
        assert all(s.status is Status.DELIVERED for s in in_stock)
        sold_out = [s for s in states.values() if s.id[-1] in "13579"]
        assert sum(1 for s in sold_out if s.status is Status.DELIVERED) == RESTOCKED
        level = shop.level("OUT")
        assert level is not None
        assert level.available == 0
        assert level.backordered == sum(1 for s in sold_out if s.status is Status.BACKORDERED)
        report = shop.check()
        assert report.ok, report
