"""Inventory on SQLite: decided in memory by the one engine, written at each group commit.

The engine process is the only writer of stock (every other process appends a
command), so keeping levels in memory is exact; what :meth:`take_changes`
returns goes into the engine's commit transaction, so stock and the events
that moved it are durable together or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from realorders.domain import HOLDS_STOCK, LineItem
from realorders.engine.backends.sqlite.schema import select_in
from realorders.engine.ports import Reservation

__all__ = ["SqliteInventory"]


def _needs(lines: Sequence[LineItem]) -> dict[str, int]:
    needs: dict[str, int] = {}
    for line in lines:
        needs[line.product_id] = needs.get(line.product_id, 0) + line.quantity
    return needs


class SqliteInventory:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._stock: dict[str, list[int]] = {}  # product_id -> [on_hand, reserved]
        self._holding: set[str] = set()
        self._dirty: set[str] = set()
        self._ledger: list[tuple[str, int, str, float]] = []
        self._loaded = False

    # -- engine side ----------------------------------------------------------

    def load(self) -> None:
        """Read levels and which orders hold stock; called when an engine starts."""
        self._stock = {
            pid: [on_hand, reserved]
            for pid, on_hand, reserved in self._conn.execute(
                "SELECT p.product_id, coalesce(s.on_hand, 0), coalesce(s.reserved, 0) "
                "FROM products p LEFT JOIN stock s USING (product_id)"
            )
        }
        marks = ",".join("?" * len(HOLDS_STOCK))
        self._holding = {
            row[0]
            for row in self._conn.execute(
                f"SELECT id FROM orders WHERE status IN ({marks}) "
                "AND status NOT IN ('delivered', 'rejected', 'cancelled')",  # uses orders_open
                [s.value for s in HOLDS_STOCK],
            )
        }
        self._dirty.clear()
        self._ledger.clear()
        self._loaded = True

    def _level(self, product_id: str) -> list[int] | None:
        level = self._stock.get(product_id)
        if level is None:
            # a product added since the engine started
            row = self._conn.execute(
                "SELECT coalesce(s.on_hand, 0), coalesce(s.reserved, 0) FROM products p "
                "LEFT JOIN stock s USING (product_id) WHERE p.product_id = ?",
                (product_id,),
            ).fetchone()
            if row is None:
                return None
            level = self._stock[product_id] = [row[0], row[1]]
        return level

    def reserve_many(self, requests: Sequence[tuple[str, Sequence[LineItem]]]) -> list[Reservation]:
        results: list[Reservation] = []
        ok = Reservation(ok=True)
        stock, holding, dirty = self._stock, self._holding, self._dirty
        for order_id, lines in requests:
            if order_id in holding:
                results.append(ok)
                continue
            needs = _needs(lines)
            fits = True
            for pid, qty in needs.items():
                level = stock.get(pid) or self._level(pid)
                if level is None or level[0] - level[1] < qty:
                    fits = False
                    break
            if not fits:
                results.append(self._refusal(needs))
                continue
            for pid, qty in needs.items():
                stock[pid][1] += qty
                dirty.add(pid)
            holding.add(order_id)
            results.append(ok)
        return results

    def _refusal(self, needs: dict[str, int]) -> Reservation:
        """Say what is missing (the slow path, taken only when a reservation fails)."""
        levels = {pid: self._level(pid) for pid in needs}
        unknown = tuple(sorted(pid for pid, level in levels.items() if level is None))
        if unknown:
            return Reservation(ok=False, unknown=unknown)
        return Reservation(
            ok=False,
            shortages=tuple(
                (pid, qty, level[0] - level[1])
                for pid, qty in needs.items()
                if (level := levels[pid]) is not None and level[0] - level[1] < qty
            ),
        )

    def release(self, order_id: str, lines: Sequence[LineItem]) -> None:
        self._settle(order_id, lines, shipped=False)

    def consume(self, order_id: str, lines: Sequence[LineItem]) -> None:
        self._settle(order_id, lines, shipped=True)

    def _settle(self, order_id: str, lines: Sequence[LineItem], *, shipped: bool) -> None:
        """End a hold: the units leave reserved, and on_hand too when they shipped."""
        if order_id not in self._holding:
            return
        self._holding.discard(order_id)
        for pid, qty in _needs(lines).items():
            level = self._level(pid)
            if level is not None:
                if shipped:
                    level[0] -= qty
                level[1] -= qty
                self._dirty.add(pid)

    def restock(self, product_id: str, quantity: int, at: float, *, ref: str | None = None) -> None:
        level = self._level(product_id)
        if level is None:
            return
        level[0] += quantity
        self._dirty.add(product_id)
        self._ledger.append((product_id, quantity, "restock", at))

    def set_on_hand(
        self, product_id: str, quantity: int, at: float, *, ref: str | None = None
    ) -> str | None:
        level = self._level(product_id)
        if level is None:
            return f"unknown product {product_id!r}"
        if quantity < level[1]:
            return f"{product_id}: cannot set on hand to {quantity}, {level[1]} reserved"
        self._ledger.append((product_id, quantity - level[0], "set", at))
        level[0] = quantity
        self._dirty.add(product_id)
        return None

    def available(self, product_id: str) -> int:
        level = self._level(product_id)
        return 0 if level is None else level[0] - level[1]

    def prices(self, product_ids: Iterable[str]) -> dict[str, float]:
        return dict(
            select_in(
                self._conn,
                "SELECT product_id, price FROM products WHERE product_id IN ({marks})",
                product_ids,
            )
        )

    def take_changes(self) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, str, float]]]:
        """Changed levels (product, on hand, reserved) and ledger entries since the last call.

        Copied, not referenced: the batch they belong to may be written while
        the engine already changes the levels again.
        """
        stock = self._stock
        levels = [(pid, stock[pid][0], stock[pid][1]) for pid in self._dirty]
        ledger = self._ledger
        self._dirty.clear()
        self._ledger = []
        return levels, ledger
