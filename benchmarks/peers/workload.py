"""The one workload every contender runs, and the outcome it must reach.

Stdlib only: contenders import it with ``sys.path.insert(0, <benchmarks/peers>)``
whatever their own dependencies.

The outcome must not depend on the order orders are processed in (huey and
DBOS workers run concurrently), yet some products must run out. So products
come in three classes, chosen from the seed:

- *empty* (~5%): stock 0. An order with such a line is backordered and, since
  a reservation is all-or-nothing, reserves nothing at all;
- *exact* (~10%): stock = the total quantity asked for by the orders that have
  no empty line, so they end at exactly 0: they run out;
- *ample* (the rest): that demand plus a margin of 1-50.

Every order without an empty line is then delivered whatever the processing
order, and every order with one is backordered.

>>> w = make(1000, seed=1)
>>> out = expected(w)
>>> sum(out.counts.values())
1000
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
    "Order",
    "Outcome",
    "Workload",
    "events_for",
    "expected",
    "iter_orders",
    "make",
    "outcome",
    "stock_for",
    "write_files",
    "write_inventory",
]

EMPTY_SHARE = 0.05
EXACT_SHARE = 0.10
CUSTOMERS = 5000
EVENTS_DELIVERED = 5  # pending, reserved, packed, shipped, delivered
EVENTS_BACKORDERED = 2  # pending, backordered


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


@dataclass(frozen=True, slots=True)
class Outcome:
    counts: dict[str, int]  # {"delivered": .., "backordered": ..}
    stock: dict[str, int]  # final available stock per sku


def sku_names(products: int) -> list[str]:
    width = max(3, len(str(products - 1)))
    return [f"SKU-{p:0{width}d}" for p in range(products)]


def _classes(seed: int, products: int) -> tuple[random.Random, set[str], set[str], dict[str, int]]:
    """Draw the product classes and margins first; the same generator then draws the orders."""
    rnd = random.Random(seed)
    skus = sku_names(products)
    shuffled = skus[:]
    rnd.shuffle(shuffled)
    n_empty = max(1, round(products * EMPTY_SHARE))
    n_exact = max(1, round(products * EXACT_SHARE))
    empty = set(shuffled[:n_empty])
    exact = set(shuffled[n_empty : n_empty + n_exact])
    margins = {sku: rnd.randint(1, 50) for sku in skus}
    return rnd, empty, exact, margins


def iter_orders(n: int, seed: int, products: int = 200) -> Iterator[Order]:
    """The orders one at a time, in submission order (memory-bounded, any ``n``)."""
    rnd, _, _, _ = _classes(seed, products)
    skus = sku_names(products)
    for i in range(n):
        picked = rnd.sample(skus, rnd.randint(1, 3))
        lines = tuple((sku, rnd.randint(1, 3)) for sku in picked)
        yield Order(f"O{i:08d}", f"c{rnd.randrange(CUSTOMERS)}", lines)


def stock_for(n: int, seed: int, products: int = 200) -> dict[str, int]:
    """Initial stock per sku, from one streaming pass over the orders."""
    _, empty, exact, margins = _classes(seed, products)
    demand = dict.fromkeys(sku_names(products), 0)
    for order in iter_orders(n, seed, products):
        if not any(sku in empty for sku, _ in order.lines):
            for sku, qty in order.lines:
                demand[sku] += qty
    return {
        sku: 0 if sku in empty else qty if sku in exact else qty + margins[sku]
        for sku, qty in demand.items()
    }


def make(n: int, seed: int, products: int = 200) -> Workload:
    """The whole workload in memory (fine up to ~100k orders; use iter_orders beyond)."""
    return Workload(n, seed, stock_for(n, seed, products), list(iter_orders(n, seed, products)))


def outcome(products: dict[str, int], orders: Iterator[Order] | list[Order]) -> Outcome:
    """What any correct contender ends with, whatever its processing order."""
    stock = dict(products)
    counts = {"delivered": 0, "backordered": 0}
    for order in orders:
        if all(products[sku] > 0 for sku, _ in order.lines):
            counts["delivered"] += 1
            for sku, qty in order.lines:
                stock[sku] -= qty
        else:
            counts["backordered"] += 1
    if any(level < 0 for level in stock.values()):  # a bug in the classes, not in a contender
        raise AssertionError("workload oversold a product")
    return Outcome(counts, stock)


def expected(w: Workload) -> Outcome:
    return outcome(w.products, w.orders)


def events_for(out: Outcome) -> int:
    """Event rows of a lifecycle that records every state change, pending included."""
    return (
        out.counts["delivered"] * EVENTS_DELIVERED + out.counts["backordered"] * EVENTS_BACKORDERED
    )


def write_files(w: Workload, directory: str | Path) -> tuple[Path, Path]:
    """orders.ndjson and inventory.csv, as ``realorders import`` and ``init --inventory`` read."""
    return write_files_for(w.n, w.seed, len(w.products), directory, w.products)


def write_files_for(
    n: int,
    seed: int,
    products: int,
    directory: str | Path,
    stock: dict[str, int] | None = None,
) -> tuple[Path, Path]:
    """:func:`write_files` without holding the orders in memory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    inventory = write_inventory(stock_for(n, seed, products) if stock is None else stock, directory)
    orders = directory / "orders.ndjson"
    with orders.open("w") as f:
        for order in iter_orders(n, seed, products):
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
