"""The product catalogue on SQLite: reference data, edited directly.

No order state depends on a write here (the engine reads prices per batch),
so catalogue commands need not go through the engine. Stock is different: a
stock row a running engine may hold in memory is only ever changed by the
engine (see :meth:`SqliteCatalogue.add`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from realorders.engine.backends.sqlite.schema import WriteTx
from realorders.errors import NotFoundError, RefusedError

__all__ = ["SqliteCatalogue"]


class SqliteCatalogue:
    """Products (reference data): edited directly, since no order state depends on a write here."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def list(self) -> list[dict[str, Any]]:
        return [
            {"product_id": pid, "name": name, "price": price}
            for pid, name, price in self._conn.execute(
                "SELECT product_id, name, price FROM products ORDER BY product_id"
            )
        ]

    def get(self, product_id: str) -> dict[str, Any]:
        row = self._conn.execute(
            "SELECT product_id, name, price FROM products WHERE product_id = ?", (product_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no product {product_id!r}")
        return {"product_id": row[0], "name": row[1], "price": row[2]}

    def add(self, product_id: str, name: str, price: float, stock: int = 0) -> bool:
        """Add a product; returns False when its stock row survives an earlier removal.

        A surviving stock row may be cached by a running engine, so its level is
        then set through the engine (a command), never written here.
        """
        with WriteTx(self._conn) as conn:
            if conn.execute(
                "SELECT 1 FROM products WHERE product_id = ?", (product_id,)
            ).fetchone():
                raise RefusedError(f"product {product_id!r} exists already (use products update)")
            conn.execute("INSERT INTO products VALUES (?, ?, ?)", (product_id, name, price))
            if conn.execute("SELECT 1 FROM stock WHERE product_id = ?", (product_id,)).fetchone():
                return False
            self._initial_stock(conn, product_id, stock)
            return True

    def _initial_stock(self, conn: sqlite3.Connection, product_id: str, stock: int) -> None:
        conn.execute(
            "INSERT INTO stock (product_id, on_hand, reserved) VALUES (?, ?, 0) "
            "ON CONFLICT (product_id) DO NOTHING",
            (product_id, stock),
        )
        conn.execute(
            "INSERT INTO stock_ledger (product_id, delta, kind, at) VALUES (?, ?, 'initial', ?)",
            (product_id, stock, time.time()),
        )

    def update(self, product_id: str, name: str | None, price: float | None) -> None:
        with WriteTx(self._conn) as conn:
            current = conn.execute(
                "SELECT name, price FROM products WHERE product_id = ?", (product_id,)
            ).fetchone()
            if current is None:
                raise NotFoundError(f"no product {product_id!r}")
            conn.execute(
                "UPDATE products SET name = ?, price = ? WHERE product_id = ?",
                (
                    current[0] if name is None else name,
                    current[1] if price is None else price,
                    product_id,
                ),
            )

    def remove(self, product_id: str) -> None:
        with WriteTx(self._conn) as conn:
            if not conn.execute(
                "SELECT 1 FROM products WHERE product_id = ?", (product_id,)
            ).fetchone():
                raise NotFoundError(f"no product {product_id!r}")
            waiting = conn.execute(
                "SELECT count(*), min(o.id) FROM orders o, json_each(o.items) j "
                "WHERE o.status IN ('pending', 'reserved', 'backordered', 'packed') "
                "AND o.status NOT IN ('delivered', 'rejected', 'cancelled') "
                "AND j.value ->> 'product_id' = ?",
                (product_id,),
            ).fetchone()
            if waiting[0]:
                raise RefusedError(
                    f"product {product_id!r} is in {waiting[0]} open orders (e.g. {waiting[1]}); "
                    "cancel them or let them ship first"
                )
            conn.execute("DELETE FROM products WHERE product_id = ?", (product_id,))

    def load(self, rows: Sequence[tuple[str, str, float, int]]) -> tuple[int, int]:
        """Upsert products and set stock from an inventory file; returns (added, updated).

        Only for products without reserved stock: setting on_hand under a
        running engine would race its in-memory levels, so ``init`` refuses
        when an engine is running (see :meth:`realorders.Client.init`).
        """
        added = updated = 0
        now = time.time()
        with WriteTx(self._conn) as conn:
            for product_id, name, price, stock in rows:
                existing = conn.execute(
                    "SELECT coalesce(s.on_hand, 0), coalesce(s.reserved, 0) FROM products p "
                    "LEFT JOIN stock s USING (product_id) WHERE p.product_id = ?",
                    (product_id,),
                ).fetchone()
                conn.execute(
                    "INSERT INTO products VALUES (?, ?, ?) ON CONFLICT (product_id) DO UPDATE "
                    "SET name = excluded.name, price = excluded.price",
                    (product_id, name, price),
                )
                if existing is None:
                    added += 1
                    self._initial_stock(conn, product_id, stock)
                    continue
                updated += 1
                on_hand, reserved = existing
                if stock < reserved:
                    raise RefusedError(
                        f"{product_id}: stock {stock} is below the {reserved} units reserved"
                    )
                conn.execute(
                    "INSERT INTO stock (product_id, on_hand, reserved) VALUES (?, ?, 0) "
                    "ON CONFLICT (product_id) DO UPDATE SET on_hand = excluded.on_hand",
                    (product_id, stock),
                )
                if stock != on_hand:
                    conn.execute(
                        "INSERT INTO stock_ledger (product_id, delta, kind, at) "
                        "VALUES (?, ?, 'set', ?)",
                        (product_id, stock - on_hand, now),
                    )
        return added, updated
