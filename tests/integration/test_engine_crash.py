"""Crash = restart: ``kill -9`` the real ``realorders run`` process mid-batch, then run again.

The engine runs as a subprocess through the installed console script, exactly
as an operator starts it. This test process only appends commands and polls
the committed position (reads); it never writes order state. After the kill,
``realorders run --until-idle`` must finish the work with every order
processed exactly once and stock conserved.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from waiting import wait_exit, wait_for

from realorders import Client, LineItem, Order, Status

pytestmark = pytest.mark.slow

S = Status
PRODUCTS = [f"SKU-{i:02}" for i in range(30)]
HAPPY = [S.PENDING, S.RESERVED, S.PACKED, S.SHIPPED, S.DELIVERED]
EXPECTED_HISTORY = {
    S.DELIVERED: HAPPY,
    S.BACKORDERED: [S.PENDING, S.BACKORDERED],
    S.REJECTED: [S.PENDING, S.REJECTED],
}


def console_script() -> str:
    script = Path(sys.executable).parent / "realorders"
    if script.exists():
        return str(script)
    found = shutil.which("realorders")
    if found is None:
        pytest.fail("the realorders console script is not installed (pip install -e '.[dev]')")
    return found


@dataclass
class Store:
    """A database plus what this test put into it, to balance against afterwards."""

    db: Path
    put_in: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    next_id: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def setup(self, stock_per_product: int) -> None:
        with Client(self.db) as client:
            for product_id in PRODUCTS:
                client.add_product(product_id, product_id.lower(), 4.0, stock_per_product)
                self.put_in[product_id] += stock_per_product

    def add_orders(self, count: int, restock_every: int = 5000) -> int:
        """Append ``count`` orders (1% for an unknown product) with restocks in between."""
        with Client(self.db) as client:
            for start in range(0, count, 1000):
                batch = []
                for _ in range(min(1000, count - start)):
                    self.next_id += 1
                    products = self.rng.sample(PRODUCTS, self.rng.randint(1, 3))
                    lines = [LineItem(p, self.rng.randint(1, 3)) for p in products]
                    if self.rng.random() < 0.01:
                        lines.append(LineItem("NO-SUCH-SKU", 1))
                    batch.append(Order(f"o{self.next_id:06}", "ada", tuple(lines)))
                results = client.backend.commands.append_orders(batch)
                self.accepted += sum(r.position is not None for r in results)
                if (start + 1000) % restock_every == 0:
                    for product_id in self.rng.sample(PRODUCTS, 5):
                        client.restock(product_id, 40)
                        self.put_in[product_id] += 40
            return client.engine_info().head

    def env(self) -> dict[str, str]:
        env = {**os.environ, "REALORDERS_DB": str(self.db), "NO_COLOR": "1"}
        env.pop("REALORDERS_DEBUG", None)
        return env

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        with (self.db.parent / "engine.log").open("ab") as log:  # the child keeps its copy
            return subprocess.Popen(
                [console_script(), "run", *args],
                env=self.env(),
                stdout=log,
                stderr=log,
                cwd=self.db.parent,
            )

    def run_until_idle(self, *args: str) -> None:
        """``run --until-idle``, waited for while it gets on (a minute at most without)."""
        proc = subprocess.Popen(
            [console_script(), "run", "--until-idle", *args],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.db.parent,
        )
        with Client(self.db) as watcher:  # reads only
            _, err = wait_exit(proc, lambda: engine_progress(watcher), what="run --until-idle")
        assert proc.returncode == 0, err.decode()[-2000:]

    def log(self) -> str:
        path = self.db.parent / "engine.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def engine_progress(watcher: Client) -> tuple[int, int]:
    """The engine's work so far: commands processed, events written (timers write some)."""
    return watcher.engine_info().position, watcher.head()


def kill_when(
    store: Store,
    proc: subprocess.Popen[bytes],
    ready: Callable[[Client], bool],
    idle_timeout: float = 30,
    feed: Callable[[], None] | None = None,
    poll: float = 0.002,
) -> bool:
    """SIGKILL the engine as soon as ``ready`` holds; False if it exited first.

    Waits for as long as the engine makes progress (:func:`engine_progress`), up to
    ``idle_timeout`` seconds without. ``feed``, if given, runs before each look (e.g.
    to keep orders arriving; that is not the engine's progress).
    """
    with Client(store.db) as watcher:  # reads only

        def look() -> tuple[str, tuple[int, int] | None]:
            if proc.poll() is not None:
                return "exited", None
            if feed is not None:
                feed()
            if ready(watcher):
                proc.send_signal(signal.SIGKILL)
                return "killed", None
            return "running", engine_progress(watcher)

        try:
            outcome, _ = wait_for(
                look,
                lambda seen: seen[0] != "running",
                progress=lambda seen: seen[1],
                idle_timeout=idle_timeout,
                interval=poll,
                what="the engine to reach the kill point",
            )
        except AssertionError as exc:
            proc.kill()
            proc.wait(10)
            message = f"engine never reached the kill point: {exc}\n{store.log()}"
            raise AssertionError(message) from None
    if outcome == "exited":
        return False
    proc.wait(10)
    return True


def assert_exactly_once(store: Store, *, settled: set[Status]) -> Counter[str]:
    """Every accepted order processed once, histories exact, stock balanced; returns counts."""
    with Client(store.db) as client:
        info = client.engine_info()
        assert info.position == info.head
        assert info.pid is None
        report = client.check()
        assert report.ok, report.problems
        assert report.orders == store.accepted
        assert client.backend.orders.count() == store.accepted
        statuses: Counter[str] = Counter()
        shipped: Counter[str] = Counter()
        for events in client.backend.events.scan():
            final = events[-1].status
            statuses[final.value] += 1
            assert final in settled, events
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            history = [e.status for e in events]
            if final is S.DELIVERED and S.BACKORDERED in history:
                assert history == [S.PENDING, S.BACKORDERED, *HAPPY[1:]], events
            else:
                assert history == EXPECTED_HISTORY[final], events
            if final is S.DELIVERED:
                submitted = events[0].data  # the pending event carries the order's items
                assert submitted is not None
                for item in submitted["items"]:
                    shipped[item["product_id"]] += item["quantity"]
        assert sum(statuses.values()) == store.accepted
        put_in = client.backend.orders.ledger_totals()
        assert {p: put_in[p] for p in PRODUCTS} == {p: store.put_in[p] for p in PRODUCTS}
        for level in client.levels():
            assert level.reserved == 0
            assert level.on_hand == store.put_in[level.product_id] - shipped[level.product_id]
            assert level.on_hand >= 0
        return statuses


def test_kill_9_mid_batch_then_restart(tmp_path: Path) -> None:
    """Two kills at different depths (the second one of an engine that itself recovered)."""
    store = Store(tmp_path / "crash.db")
    store.setup(stock_per_product=300)
    head = store.add_orders(30_000)
    kills: list[int] = []
    for depth in (0.3, 0.7):
        for _attempt in range(4):
            proc = store.start("--batch-size", "500")

            def deep_enough(watcher: Client, depth: float = depth, head: int = head) -> bool:
                return depth * head <= watcher.engine_info().position < head

            if kill_when(store, proc, deep_enough):
                break
            assert proc.returncode == 0, store.log()
            head = store.add_orders(30_000)  # the engine was too quick: give it more to do
        else:
            pytest.fail("the engine always finished before it could be killed")
        assert proc.returncode == -signal.SIGKILL
        with Client(store.db) as client:
            kills.append(client.engine_info().position)
    assert 0 < kills[0] < kills[1] < head

    store.run_until_idle()
    statuses = assert_exactly_once(store, settled={S.DELIVERED, S.BACKORDERED, S.REJECTED})
    assert statuses["delivered"] > 0
    assert statuses["backordered"] > 0
    assert statuses["rejected"] > 0

    store.run_until_idle()  # and once more: nothing left, nothing redone
    assert assert_exactly_once(store, settled=set(EXPECTED_HISTORY)) == statuses


def test_kill_9_with_orders_mid_flight_then_restart(tmp_path: Path) -> None:
    """Orders keep arriving while the engine runs, so every stage is occupied at the kill."""
    delays = ("--delays", "pack=0.2,ship=0.2,deliver=0.2")
    store = Store(tmp_path / "flight.db")
    store.setup(stock_per_product=150)
    store.add_orders(1000, restock_every=1000)
    proc = store.start(*delays)

    def more_orders() -> None:
        # intake beside the running engine: a wave every 0.1 s look, once it has caught up
        # with the last one. Faster than the engine can go, waves only pile up a backlog
        # (on a slow machine, without end) and the timers of the orders in flight starve.
        with Client(store.db) as reader:
            if reader.engine_info().backlog > 0:
                return
        store.add_orders(150, restock_every=150)

    def mid_flight(watcher: Client) -> bool:
        counts = watcher.backend.orders.counts()
        return counts["delivered"] > 0 and counts["reserved"] + counts["packed"] > 0

    assert kill_when(store, proc, mid_flight, feed=more_orders, poll=0.1), store.log()
    with Client(store.db) as client:
        counts = client.backend.orders.counts()
        in_flight = counts["reserved"] + counts["packed"] + counts["shipped"]
    assert in_flight > 0

    started = time.monotonic()
    store.run_until_idle(*delays)
    assert time.monotonic() - started < 20
    statuses = assert_exactly_once(store, settled={S.DELIVERED, S.BACKORDERED, S.REJECTED})
    assert statuses["delivered"] >= counts["delivered"] + in_flight
    with Client(store.db) as client:
        # the restarted engine honoured what was left of each delay, never less
        for events in client.backend.events.scan():
            if events[-1].status is S.DELIVERED:
                stages = [e.at for e in events[-4:]]  # reserved, packed, shipped, delivered
                gaps = [b - a for a, b in itertools.pairwise(stages)]
                assert min(gaps) >= 0.19, (events[0].order_id, gaps)
