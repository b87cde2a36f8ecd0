"""Stock of the distributed mode, shared by every engine through Redis.

Each engine decides reservations with one Lua call per batch
(:data:`~realorders.engine.backends.lua.RESERVE`): all lines of an order
or none, idempotent per order id. Releases and consumptions of a batch are
buffered and handed over with the batch (:meth:`RedisInventory.take_settlements`),
sent in one call just before it commits to Kafka; holds stay provisional until
the batch's projection makes them definitive. The commit thread may still be
writing earlier batches: every read of stock first waits for them (``committed``),
and so does a reservation that must see a release of its own batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
import redis

from realorders.domain import LineItem
from realorders.engine.backends.distributed import lua
from realorders.engine.ports import Reservation

__all__ = ["RedisInventory", "flat_lines"]

_OK = Reservation(ok=True)


def flat_lines(lines: Iterable[LineItem]) -> list[Any]:
    """[pid, qty, pid, qty, …] with the quantities of one product added up."""
    needs: dict[str, int] = {}
    for line in lines:
        needs[line.product_id] = needs.get(line.product_id, 0) + line.quantity
    flat: list[Any] = []
    for pid, qty in needs.items():
        flat += [pid, qty]
    return flat


class RedisInventory:
    def __init__(self, r: redis.Redis, prefix: str, partition_of: Callable[[str], int]) -> None:
        self._r: Any = r  # redis-py types replies as bytes | str | Awaitable: checked here instead
        self._p = prefix
        self._partition_of = partition_of
        self._reserve = r.register_script(lua.RESERVE)
        self._settle = r.register_script(lua.SETTLE)
        self._stock = r.register_script(lua.STOCK)
        self._pending: list[list[Any]] = []
        #: Waits until every batch this process's engine handed over is written.
        self.committed: Callable[[], None] = lambda: None

    def reserve_many(self, requests: Sequence[tuple[str, Sequence[LineItem]]]) -> list[Reservation]:
        if self._pending:  # a release of this batch frees stock these requests may take
            self.flush()
        if not requests:
            return []
        wanted = [[oid, self._partition_of(oid), flat_lines(lines)] for oid, lines in requests]
        answers = self._reserve(args=[self._p, orjson.dumps(wanted)])
        results: list[Reservation] = []
        for answer in answers:
            if answer[0] == 1:
                results.append(_OK)
            elif answer[1] == b"u":
                results.append(
                    Reservation(ok=False, unknown=tuple(sorted(_s(x) for x in answer[2:])))
                )
            else:
                rest = answer[2:]
                results.append(
                    Reservation(
                        ok=False,
                        shortages=tuple(
                            (_s(rest[i]), int(rest[i + 1]), int(rest[i + 2]))
                            for i in range(0, len(rest), 3)
                        ),
                    )
                )
        return results

    def release(self, order_id: str, lines: Sequence[LineItem]) -> None:
        self._pending.append([order_id, self._partition_of(order_id), "F", flat_lines(lines)])

    def consume(self, order_id: str, lines: Sequence[LineItem]) -> None:
        self._pending.append([order_id, self._partition_of(order_id), "C", flat_lines(lines)])

    def flush(self) -> None:
        """Send the buffered releases and consumptions now, after the batches in flight."""
        self.committed()
        self.settle(self.take_settlements())

    def take_settlements(self) -> list[list[Any]]:
        """The batch's releases and consumptions, to be sent with it (:meth:`settle`)."""
        pending, self._pending = self._pending, []
        return pending

    def settle(self, settlements: list[list[Any]]) -> None:
        """Send a batch's releases and consumptions (one round trip)."""
        if settlements:
            self._settle(args=[self._p, orjson.dumps(settlements)])

    def restock(self, product_id: str, quantity: int, at: float, *, ref: str | None = None) -> None:
        self._change(product_id, "add", quantity, ref)

    def set_on_hand(
        self, product_id: str, quantity: int, at: float, *, ref: str | None = None
    ) -> str | None:
        return self._change(product_id, "set", quantity, ref)

    def _change(self, product_id: str, mode: str, quantity: int, ref: str | None) -> str | None:
        """Apply a stock change once per ``ref`` (a redelivered command changes nothing)."""
        self.flush()
        ok, detail = self._stock(args=[self._p, ref or "", product_id, mode, quantity])
        return None if ok == 1 else _s(detail)

    def available(self, product_id: str) -> int:
        self.flush()  # and waits for the batches in flight
        pipe = self._r.pipeline(transaction=False)
        pipe.hget(f"{self._p}onhand", product_id)
        pipe.hget(f"{self._p}held", product_id)
        on_hand, held = pipe.execute()
        return int(on_hand or 0) - int(held or 0)

    def prices(self, product_ids: Iterable[str]) -> dict[str, float]:
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return {}
        rows = self._r.hmget(f"{self._p}products", ids)
        return {pid: orjson.loads(raw)["price"] for pid, raw in zip(ids, rows, strict=True) if raw}


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
