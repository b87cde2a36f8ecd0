"""The Client's catalogue and stock methods: what orders draw on.

A part of :class:`realorders.Client` kept in its own module; every rule about
prices and stock limits is checked here, for every front.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from realorders.catalogue_file import MAX_STOCK, ProductRow, check_price, read_inventory
from realorders.engine.ports import Backend, CommandKind, StockLevel
from realorders.errors import InputError, RefusedError, UsageError

__all__ = ["StockMixin"]


class StockMixin:
    """Catalogue and stock, over the ``backend`` of the :class:`~realorders.Client`."""

    backend: Backend

    def init(self, inventory: str | Path | None = None) -> tuple[int, int]:
        """Load catalogue and stock from a CSV or JSON inventory file.

        Opening the Client already created the store (idempotently). Returns
        (products added, products updated).
        """
        if inventory is None:
            return (0, 0)
        return self.load_inventory(read_inventory(str(inventory)))

    def load_inventory(self, rows: Sequence[ProductRow]) -> tuple[int, int]:
        """Upsert products and set their stock (refused while an engine runs)."""
        if self.backend.engine_running():
            raise RefusedError(
                "an engine is running on this database; stop it before "
                "loading an inventory file (or use `inventory set`)"
            )
        return self.backend.catalogue.load([(r.product_id, r.name, r.price, r.stock) for r in rows])

    def products(self) -> list[dict[str, Any]]:
        return self.backend.catalogue.list()

    def product(self, product_id: str) -> dict[str, Any]:
        return self.backend.catalogue.get(product_id)

    def add_product(self, product_id: str, name: str, price: float, stock: int = 0) -> None:
        check_price(price)
        if stock < 0:
            raise InputError("price and stock cannot be negative")
        if stock > MAX_STOCK:
            raise InputError(f"stock must be at most {MAX_STOCK:,}, got {stock}")
        if not self.backend.catalogue.add(product_id, name, price, stock):
            # back after a removal: its old stock row may be cached by a running engine
            self.backend.commands.append(
                CommandKind.SET_STOCK, None, {"product_id": product_id, "quantity": stock}
            )

    def update_product(
        self, product_id: str, *, name: str | None = None, price: float | None = None
    ) -> None:
        if name is None and price is None:
            raise UsageError("nothing to update: pass --name and/or --price")
        if price is not None:
            check_price(price)
        self.backend.catalogue.update(product_id, name, price)

    def remove_product(self, product_id: str) -> None:
        self.backend.catalogue.remove(product_id)

    # -- inventory ------------------------------------------------------------

    def levels(self) -> list[StockLevel]:
        return self.backend.orders.levels()

    def level(self, product_id: str) -> StockLevel | None:
        """One product's stock (None for a product without a stock row)."""
        return next((lv for lv in self.levels() if lv.product_id == product_id), None)

    def restock(self, product_id: str, quantity: int) -> int:
        """Queue a restock (the engine applies it and wakes backorders); returns its position."""
        return self.restock_many([(product_id, quantity)])[0]

    def restock_many(self, arrivals: Sequence[tuple[str, int]]) -> list[int]:
        """Queue the restocks of one delivery, in order; their positions.

        Every product and quantity is checked before any is queued, so a bad
        line queues nothing.
        """
        for product_id, quantity in arrivals:
            self.product(product_id)
            if not 1 <= quantity <= MAX_STOCK:
                raise InputError(
                    f"restock quantity must be from 1 to {MAX_STOCK:,}, "
                    f"got {quantity} for {product_id}"
                )
        return [
            self.backend.commands.append(
                CommandKind.RESTOCK, None, {"product_id": product_id, "quantity": quantity}
            )
            for product_id, quantity in arrivals
        ]

    def set_stock(self, product_id: str, quantity: int) -> int:
        """Queue an absolute on-hand level; refused now if it is below what is reserved."""
        self.product(product_id)
        if not 0 <= quantity <= MAX_STOCK:
            raise InputError(f"stock must be from 0 to {MAX_STOCK:,}, got {quantity}")
        level = self.level(product_id)
        if level is not None and quantity < level.reserved:
            raise RefusedError(
                f"{product_id}: {level.reserved} units are reserved by open "
                f"orders; on hand cannot go below that (asked {quantity})"
            )
        return self.backend.commands.append(
            CommandKind.SET_STOCK, None, {"product_id": product_id, "quantity": quantity}
        )
