"""Keyset pages of the order listing (``Client.page_orders``) on real SQLite and Kafka + Redis.

A page's cursor is an arrival (the submission's command position), so paging
from the first page to the end lists every order that existed when it started
exactly once, newest first, while new orders keep arriving and an engine keeps
turning queued submissions into processed orders.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from realorders import Client, Delays, LineItem, Order, OrderView, Status
from realorders.config import Config
from realorders.errors import UsageError

CUSTOMERS = ("ada", "bob", "cy")


@pytest.fixture(params=["sqlite", "kafka"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    """A fresh store on each backend in turn, with one well-stocked product."""
    if request.param == "sqlite":
        config = Config(db=tmp_path / "shop.db")
    else:
        config = request.getfixturevalue("kafka_store_config")
    with Client(config=config, create=True) as client:
        client.init_store()
        client.add_product("KB-01", "Keyboard", 89.0, 1_000_000)
    return config


@pytest.fixture
def shop(config: Config) -> Iterator[Client]:
    with Client(config=config, create=False) as client:
        yield client


def order(order_id: str, n: int) -> Order:
    return Order(order_id, CUSTOMERS[n % len(CUSTOMERS)], (LineItem("KB-01", 1),))


def run_until_idle(shop: Client) -> None:
    shop.run(until_idle=True, delays=Delays(), handle_signals=False)


def walk(
    shop: Client, limit: int, pause: float = 0.0, **filters: Any
) -> tuple[list[OrderView], int]:
    """Every page from the first to the end: the views in order, and how many pages."""
    views: list[OrderView] = []
    before: int | None = None
    pages = 0
    while True:
        page, cursor = shop.page_orders(limit=limit, before=before, **filters)
        pages += 1
        assert len(page) <= limit
        views += page
        if cursor is None:
            return views, pages
        assert len(page) == limit  # a page short of the limit is the last one
        assert cursor == page[-1].arrival
        before = cursor
        time.sleep(pause)


def ids(views: list[OrderView]) -> list[str]:
    return [v.id for v in views]


def assert_newest_first(views: list[OrderView]) -> None:
    arrivals = [v.arrival for v in views]
    assert arrivals == sorted(arrivals, reverse=True)
    assert len(set(arrivals)) == len(arrivals)


def test_pages_list_every_order_once_newest_first(shop: Client) -> None:
    processed = [order(f"P-{n:02}", n) for n in range(1, 16)]
    queued = [order(f"Q-{n:02}", n) for n in range(16, 24)]
    shop.submit_many(processed)
    run_until_idle(shop)
    shop.submit_many(queued)  # no engine: these stay queued
    newest = [o.id for o in reversed(processed + queued)]
    with shop.snapshot():
        assert ids(shop.list_orders(limit=100)) == newest
    for limit in (1, 2, 5, 7, 23, 24, 100):
        views, pages = walk(shop, limit)
        assert ids(views) == newest, limit
        assert pages == max(1, -(-len(newest) // limit))
        assert_newest_first(views)
        assert [v.queued for v in views] == [True] * len(queued) + [False] * len(processed)
    # the filters of list_orders, page by page
    for customer in CUSTOMERS:
        views, _ = walk(shop, 2, customer_id=customer)
        assert ids(views) == [
            o.id for o in reversed(processed + queued) if o.customer_id == customer
        ]
    assert ids(walk(shop, 3, status=Status.PENDING)[0]) == [o.id for o in reversed(queued)]
    assert ids(walk(shop, 4, status=Status.DELIVERED)[0]) == [o.id for o in reversed(processed)]
    assert walk(shop, 4, status=Status.CANCELLED)[0] == []
    assert ids(walk(shop, 2, id_prefix="Q-2")[0]) == ["Q-23", "Q-22", "Q-21", "Q-20"]
    assert ids(walk(shop, 2, id_prefix="P-0")[0]) == [f"P-0{n}" for n in range(9, 0, -1)]
    # a cursor from the middle, and nothing below the oldest order
    first, cursor = shop.page_orders(limit=8)
    assert (ids(first), cursor) == (newest[:8], first[-1].arrival)
    rest, end = shop.page_orders(limit=100, before=cursor)
    assert (ids(rest), end) == (newest[8:], None)
    assert shop.page_orders(before=rest[-1].arrival) == ([], None)
    with pytest.raises(UsageError, match="limit must be at least 1"):
        shop.page_orders(limit=0)


class Worker(threading.Thread):
    """A thread whose error, if any, is raised in the test's thread by :meth:`finish`."""

    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # handed to the test thread
            self.error = exc

    def finish(self) -> None:
        self.join(120)
        assert not self.is_alive(), "a background thread did not stop"
        if self.error is not None:
            raise self.error


def test_paging_while_orders_arrive_and_the_engine_runs_skips_and_repeats_nothing(
    config: Config, shop: Client
) -> None:
    shop.submit_many([order(f"A-{n:04}", n) for n in range(300)])
    run_until_idle(shop)  # 300 processed orders
    backlog = [order(f"B-{n:04}", n) for n in range(600)]
    shop.submit_many(backlog)  # 600 queued, for the engine to work through while we page
    submitted: list[str] = []  # ids whose submit has returned, in order
    lock = threading.Lock()
    feeding = threading.Event()
    feeding.set()

    def feed() -> None:
        with Client(config=config, create=False) as client:
            n = 0
            while feeding.is_set():
                order_id = f"N-{n:05}"
                client.submit(order(order_id, n))
                with lock:
                    submitted.append(order_id)
                n += 1
                time.sleep(0.002)

    stop_engine: list[Callable[[], object]] = []

    def run_engine() -> None:
        # small batches and short stage delays: many commits, orders keep moving
        with Client(config=config, create=False) as client:
            engine = client.engine(delays=Delays(pack=0.01, ship=0.01, deliver=0.01), batch_size=5)
            loop = asyncio.new_event_loop()
            stop_engine.append(lambda: loop.call_soon_threadsafe(engine.stop))
            try:
                loop.run_until_complete(engine.run())
            finally:
                loop.close()

    def processed() -> int:
        return sum(shop.counts().values())

    def walk_once() -> None:
        """One walk from the first page to the end, checked against the orders before it."""
        with lock:
            existing = [o.id for o in backlog] + submitted
        moved_before = processed()
        views, pages = walk(shop, 7, pause=0.002)
        assert processed() > moved_before  # the engine kept processing meanwhile
        listed = ids(views)
        assert len(listed) == len(set(listed)), "an order was listed twice"
        missing = set(existing) - set(listed)
        assert not missing, f"{len(missing)} orders skipped, e.g. {sorted(missing)[:5]}"
        assert_newest_first(views)
        assert pages > 100
        seen.extend(views)

    seen: list[OrderView] = []
    engine = Worker(run_engine)
    feeder = Worker(feed)
    engine.start()
    feeder.start()
    try:
        deadline = time.monotonic() + 90
        while processed() <= 300:  # the engine has started on the backlog
            assert engine.is_alive(), engine.error
            assert feeder.is_alive(), feeder.error
            assert time.monotonic() < deadline, "the engine processed nothing"
            time.sleep(0.05)
        # the pages go down from the newest while the engine works up from the oldest
        # queued order: walk again for as long as the backlog lasts, so that they meet
        # (queued orders turning processed as their page is read) more than once
        walks = 0
        while walks < 2 or (walks < 20 and shop.get(backlog[-1].id).queued):
            walk_once()
            walks += 1
    finally:
        feeding.clear()
        feeder.finish()
        # stop only once everything settled: no actor is left mid-way (nor a timer armed)
        deadline = time.monotonic() + 120
        while engine.is_alive() and not shop.quiet() and time.monotonic() < deadline:
            time.sleep(0.05)
        for stop in stop_engine:
            stop()
        engine.finish()

    assert any(v.queued for v in seen)
    assert any(not v.queued for v in seen)
