"""Ten thousand orders fighting over scarce stock on a real SQLite file.

Total demand is about ten times the stock, so most orders wait; the engine
must never sell a unit twice, and a restock of everything must drain the
backorders it left.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from realorders import Client, LineItem, Order, Status
from realorders.domain import TERMINAL
from realorders.engine.ports import OrderFilter

pytestmark = pytest.mark.slow

ORDERS = 10_000
PRODUCTS = [f"P{i:02}" for i in range(50)]
INITIAL = {p: 20 + 3 * i for i, p in enumerate(PRODUCTS)}  # 20..167 units, 4,675 in all
CANCELS = 300


def make_orders(rng: random.Random) -> list[Order]:
    orders = []
    for i in range(ORDERS):
        products = rng.sample(PRODUCTS, rng.randint(1, 3))
        lines = tuple(LineItem(p, rng.randint(1, 4)) for p in products)
        orders.append(Order(f"ord-{i:05}", f"cust-{rng.randrange(400)}", lines))
    return orders


def shipped_per_product(client: Client) -> Counter[str]:
    shipped: Counter[str] = Counter()
    for status in (Status.SHIPPED, Status.DELIVERED):
        for state in client.backend.orders.query(OrderFilter(status=status, limit=None)):
            for item in state.items:
                shipped[item["product_id"]] += item["quantity"]
    return shipped


def assert_never_oversold(client: Client, put_in: dict[str, int]) -> None:
    shipped = shipped_per_product(client)
    for level in client.levels():
        assert level.on_hand >= 0, level
        assert 0 <= level.reserved <= level.on_hand, level
        assert shipped[level.product_id] <= put_in[level.product_id], level
        assert level.on_hand == put_in[level.product_id] - shipped[level.product_id], level


def test_ten_thousand_orders_never_oversell(tmp_path: Path) -> None:
    rng = random.Random(20240607)
    orders = make_orders(rng)
    demand: Counter[str] = Counter()
    for order in orders:
        for line in order.items:
            demand[line.product_id] += line.quantity
    assert sum(demand.values()) > 8 * sum(INITIAL.values())

    with Client(tmp_path / "scale.db") as client:
        for product_id, stock in INITIAL.items():
            client.add_product(product_id, f"product {product_id}", 9.5, stock)
        accepted = 0
        for start in range(0, ORDERS, 1000):
            results = client.backend.commands.append_orders(orders[start : start + 1000])
            accepted += sum(r.position is not None for r in results)
        assert accepted == ORDERS
        cancelled_ids = [o.id for o in rng.sample(orders, CANCELS)]
        for order_id in cancelled_ids:
            client.cancel(order_id, "load test")

        stats = client.run(until_idle=True, batch_size=500, handle_signals=False)
        assert stats.commands == ORDERS + CANCELS
        counts = client.backend.orders.counts()
        assert sum(counts.values()) == ORDERS
        settled = {s.value for s in TERMINAL} | {"backordered"}
        assert {k for k, v in counts.items() if v} <= settled
        assert counts["delivered"] > 0
        assert counts["backordered"] > ORDERS // 2
        assert counts["cancelled"] > 0  # the cancels that found their order still waiting
        assert_never_oversold(client, INITIAL)
        report = client.check()
        assert report.ok, report.problems
        assert report.orders == ORDERS

        # restock every product by what its backorders still want
        waiting: Counter[str] = Counter()
        for state in client.backend.orders.query(
            OrderFilter(status=Status.BACKORDERED, limit=None)
        ):
            for item in state.items:
                waiting[item["product_id"]] += item["quantity"]
        put_in = dict(INITIAL)
        for product_id in PRODUCTS:
            if waiting[product_id]:
                client.restock(product_id, waiting[product_id])
                put_in[product_id] += waiting[product_id]
        before = counts
        client.run(until_idle=True, batch_size=500, handle_signals=False)
        counts = client.backend.orders.counts()
        assert counts["backordered"] == 0
        assert counts["delivered"] == before["delivered"] + before["backordered"]
        assert counts["cancelled"] == before["cancelled"]
        assert all(level.reserved == 0 for level in client.levels())
        assert_never_oversold(client, put_in)
        assert sum(level.on_hand for level in client.levels()) == 0  # restocked exactly
        report = client.check()
        assert report.ok, report.problems
        assert client.engine_info().backlog == 0
