"""The workloads every contender runs, and the outcome each must reach.

Stdlib only: contenders import it with ``sys.path.insert(0, <benchmarks/peers>)``
whatever their own dependencies.

The outcome must not depend on the order orders are processed in (huey and
DBOS workers run concurrently), yet some products must run out. So products
come in classes, chosen from the seed:

- *empty*: stock 0, never restocked. An order with such a line is backordered
  and, since a reservation is all-or-nothing, reserves nothing at all;
- *restocked*: stock 0 at the start; mid-run a restock brings each the total
  quantity asked for by the orders that have no empty line. Those orders that
  came before it wait backordered and are woken by it; later ones go through;
- *exact*: stock = that same demand, so they end at exactly 0: they run out;
- *ample* (the rest): that demand plus a margin of 1-50.

Every order without an empty line is then delivered whatever the processing
order, and every order with one is backordered. A :class:`Shape` sets the
shares; :data:`SHAPES` holds the three the harness runs:

- ``standard``: 5% empty: ~10% of orders backordered, most run the whole path;
- ``backorder``: 42% empty, 15% exact: ~63% of orders end backordered;
- ``restock``: 35% empty, 10% restocked in three waves (after a quarter, half
  and three quarters of the orders), 15% exact: ~66% of orders are backordered
  when they arrive or wait for a restock, ~55% stay so.

>>> w = make(1000, seed=1)
>>> out = expected(w)
>>> sum(out.counts.values())
1000
>>> b = make(10000, seed=1, shape="backorder")
>>> 0.6 < expected(b).counts["backordered"] / 10000 < 0.7
True
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "SHAPES",
    "Order",
    "Outcome",
    "Restock",
    "Shape",
    "Workload",
    "events_for",
    "expected",
    "iter_orders",
    "make",
    "outcome",
    "restocks_for",
    "stock_for",
    "write_files",
    "write_inventory",
]

CUSTOMERS = 5000
EVENTS_DELIVERED = 5  # pending, reserved, packed, shipped, delivered
EVENTS_BACKORDERED = 2  # pending, backordered


class Shape(NamedTuple):
    empty: float  # share of products with no stock, ever
    exact: float  # share stocked for exactly their demand
    restocked: float = 0.0  # share with no stock until a restock mid-run
    waves: int = 3  # restocks come after 1/(waves+1), 2/(waves+1), … of the orders


SHAPES = {
    "standard": Shape(empty=0.05, exact=0.10),
    "backorder": Shape(empty=0.42, exact=0.15),
    "restock": Shape(empty=0.35, exact=0.15, restocked=0.10),
}


class Restock(NamedTuple):
    after: int  # submitted once this many orders have been submitted
    sku: str
    quantity: int


class Order(NamedTuple):
    order_id: str
    customer: str
    lines: tuple[tuple[str, int], ...]  # (sku, quantity), distinct skus


@dataclass(frozen=True, slots=True)
class Workload:
    n: int
    seed: int
    products: dict[str, int]  # sku -> initial stock
    orders: list[Order]
    restocks: list[Restock]
    shape: str = "standard"


@dataclass(frozen=True, slots=True)
class Outcome:
    counts: dict[str, int]  # {"delivered": .., "backordered": ..}
    stock: dict[str, int]  # final available stock per sku


def sku_names(products: int) -> list[str]:
    width = max(3, len(str(products - 1)))
    return [f"SKU-{p:0{width}d}" for p in range(products)]


class _Classes(NamedTuple):
    rnd: random.Random
    empty: set[str]
    exact: set[str]
    restocked: list[str]  # in the order of their waves
    margins: dict[str, int]


def _classes(seed: int, products: int, shape: str) -> _Classes:
    """Draw the product classes and margins first; the same generator then draws the orders.

    The standard shape draws exactly what the single workload of issue 6 drew,
    so its figures stay comparable with the results recorded then.
    """
    share = SHAPES[shape]
    rnd = random.Random(seed)
    skus = sku_names(products)
    shuffled = skus[:]
    rnd.shuffle(shuffled)
    n_empty = max(1, round(products * share.empty))
    n_exact = max(1, round(products * share.exact))
    n_restocked = round(products * share.restocked)
    empty = set(shuffled[:n_empty])
    exact = set(shuffled[n_empty : n_empty + n_exact])
    restocked = shuffled[n_empty + n_exact : n_empty + n_exact + n_restocked]
    margins = {sku: rnd.randint(1, 50) for sku in skus}
    return _Classes(rnd, empty, exact, restocked, margins)


def iter_orders(n: int, seed: int, products: int = 200, shape: str = "standard") -> Iterator[Order]:
    """The orders one at a time, in submission order (memory-bounded, any ``n``)."""
    rnd = _classes(seed, products, shape).rnd
    skus = sku_names(products)
    for i in range(n):
        picked = rnd.sample(skus, rnd.randint(1, 3))
        lines = tuple((sku, rnd.randint(1, 3)) for sku in picked)
        yield Order(f"O{i:08d}", f"c{rnd.randrange(CUSTOMERS)}", lines)


def _demand(n: int, seed: int, products: int, shape: str, empty: set[str]) -> dict[str, int]:
    """Quantity per sku asked for by the orders that can be delivered (no empty line)."""
    demand = dict.fromkeys(sku_names(products), 0)
    for order in iter_orders(n, seed, products, shape):
        if not any(sku in empty for sku, _ in order.lines):
            for sku, qty in order.lines:
                demand[sku] += qty
    return demand


def stock_for(n: int, seed: int, products: int = 200, shape: str = "standard") -> dict[str, int]:
    """Initial stock per sku, from one streaming pass over the orders."""
    classes = _classes(seed, products, shape)
    waiting = set(classes.restocked)
    demand = _demand(n, seed, products, shape, classes.empty)
    return {
        sku: 0
        if sku in classes.empty or sku in waiting
        else qty
        if sku in classes.exact
        else qty + classes.margins[sku]
        for sku, qty in demand.items()
    }


def restocks_for(n: int, seed: int, products: int = 200, shape: str = "standard") -> list[Restock]:
    """The restocks to submit between the orders, by ``after``; none for most shapes.

    Products whose demand is zero get no restock (every order asking for them
    has an empty line): a restock of nothing is not a restock.
    """
    classes = _classes(seed, products, shape)
    if not classes.restocked:
        return []
    demand = _demand(n, seed, products, shape, classes.empty)
    waves = SHAPES[shape].waves
    out = []
    for i, sku in enumerate(classes.restocked):
        wave = i % waves + 1
        if demand[sku]:
            out.append(Restock(n * wave // (waves + 1), sku, demand[sku]))
    return sorted(out)


def make(n: int, seed: int, products: int = 200, shape: str = "standard") -> Workload:
    """The whole workload in memory (fine up to ~100k orders; use iter_orders beyond)."""
    return Workload(
        n,
        seed,
        stock_for(n, seed, products, shape),
        list(iter_orders(n, seed, products, shape)),
        restocks_for(n, seed, products, shape),
        shape,
    )


def outcome(
    products: dict[str, int],
    orders: Iterator[Order] | list[Order],
    restocks: list[Restock] | tuple[Restock, ...] = (),
) -> Outcome:
    """What any correct contender ends with, whatever its processing order."""
    stock = dict(products)
    for restock in restocks:
        stock[restock.sku] += restock.quantity
    # the classes, as the stock shows them: empty products are the ones nothing ever fills
    available = {sku for sku, level in stock.items() if level > 0}
    counts = {"delivered": 0, "backordered": 0}
    for order in orders:
        if all(sku in available for sku, _ in order.lines):
            counts["delivered"] += 1
            for sku, qty in order.lines:
                stock[sku] -= qty
        else:
            counts["backordered"] += 1
    if any(level < 0 for level in stock.values()):  # a bug in the classes, not in a contender
        raise AssertionError("workload oversold a product")
    return Outcome(counts, stock)


def expected(w: Workload) -> Outcome:
    return outcome(w.products, w.orders, w.restocks)


def events_for(out: Outcome) -> int:
    """Event rows of a lifecycle that records every state change, pending included."""
    return (
        out.counts["delivered"] * EVENTS_DELIVERED + out.counts["backordered"] * EVENTS_BACKORDERED
    )


def write_files(w: Workload, directory: str | Path) -> tuple[Path, Path]:
    """orders.ndjson and inventory.csv, as ``realorders import`` and ``init --inventory`` read."""
    return write_files_for(w.n, w.seed, len(w.products), directory, w.products, w.shape)


def write_files_for(
    n: int,
    seed: int,
    products: int,
    directory: str | Path,
    stock: dict[str, int] | None = None,
    shape: str = "standard",
) -> tuple[Path, Path]:
    """:func:`write_files` without holding the orders in memory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if stock is None:
        stock = stock_for(n, seed, products, shape)
    inventory = write_inventory(stock, directory)
    orders = directory / "orders.ndjson"
    with orders.open("w") as f:
        for order in iter_orders(n, seed, products, shape):
            f.write(json.dumps(order_json(order), separators=(",", ":")) + "\n")
    return orders, inventory


def write_inventory(stock: dict[str, int], directory: str | Path) -> Path:
    """inventory.csv (``product_id,name,price,stock``) for ``realorders init --inventory``."""
    inventory = Path(directory) / "inventory.csv"
    with inventory.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["product_id", "name", "price", "stock"])
        for i, (sku, level) in enumerate(stock.items()):
            out.writerow([sku, f"Product {i}", f"{i % 97 + 1}.99", level])
    return inventory


def order_json(order: Order) -> dict[str, object]:
    """The order as realorders' input formats spell it."""
    return {
        "id": order.order_id,
        "customer_id": order.customer,
        "items": [{"product_id": sku, "quantity": qty} for sku, qty in order.lines],
    }
