"""The benchmarks' orders: deterministic, seeded, with stock for every one of them."""

from __future__ import annotations

import random
from pathlib import Path

import orjson

__all__ = ["make_workload"]


def make_workload(
    directory: Path, n: int, products: int, seed: int, prefix: str = "B"
) -> tuple[Path, Path]:
    """``inventory.csv`` and ``orders.ndjson``: 1-3 lines of quantity 1-3 over ``products``."""
    rnd = random.Random(seed)
    inventory = directory / "inventory.csv"
    with inventory.open("w") as f:
        f.write("product_id,name,price,stock\n")
        for p in range(products):
            # an order takes at most 3 lines x 3 units of one product
            f.write(f"P{p:04d},Product {p},{rnd.randint(100, 9999) / 100},{n * 9}\n")
    orders = directory / "orders.ndjson"
    with orders.open("wb") as f:
        for i in range(n):
            items = [
                {"product_id": f"P{rnd.randrange(products):04d}", "quantity": rnd.randint(1, 3)}
                for _ in range(rnd.randint(1, 3))
            ]
            order = {
                "id": f"{prefix}{i:09d}",
                "customer_id": f"c{rnd.randrange(5000)}",
                "items": items,
            }
            f.write(orjson.dumps(order) + b"\n")
    return inventory, orders
