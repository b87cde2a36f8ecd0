"""The catalogue of the distributed mode: products in one Redis hash.

Reference data, written directly; stock itself changes only through the atomic
scripts of :mod:`~realorders.engine.backends.distributed.inventory`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis

from realorders.domain import Status
from realorders.errors import NotFoundError, RefusedError

__all__ = ["RedisCatalogue"]


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_ADD = r"""
local P, pid, product, stock = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('HEXISTS', P..'products', pid) == 1 then return -1 end
redis.call('HSET', P..'products', pid, product)
if redis.call('HEXISTS', P..'onhand', pid) == 1 then return 0 end
redis.call('HSET', P..'onhand', pid, stock)
redis.call('HINCRBY', P..'ledger', pid, stock)
return 1
"""

#: ARGV: prefix, JSON [[pid, product_json, stock], ...]; all rows or none.
_LOAD = r"""
local P = ARGV[1]
local rows = cjson.decode(ARGV[2])
for i = 1, #rows do
  local held = tonumber(redis.call('HGET', P..'held', rows[i][1]) or '0')
  if rows[i][3] < held then
    return {0, rows[i][1]..': stock '..rows[i][3]..' is below the '..held..' units reserved'}
  end
end
local added, updated = 0, 0
for i = 1, #rows do
  local pid, product, stock = rows[i][1], rows[i][2], rows[i][3]
  if redis.call('HEXISTS', P..'products', pid) == 1 then updated = updated + 1
  else added = added + 1 end
  redis.call('HSET', P..'products', pid, product)
  local on_hand = redis.call('HGET', P..'onhand', pid)
  local delta = stock - tonumber(on_hand or '0')
  redis.call('HSET', P..'onhand', pid, stock)
  if delta ~= 0 or not on_hand then redis.call('HINCRBY', P..'ledger', pid, delta) end
end
return {1, added, updated}
"""


class RedisCatalogue:
    """Products: reference data, written directly (stock writes are atomic scripts)."""

    def __init__(self, r: redis.Redis, prefix: str, open_orders: Callable[[], list[Any]]) -> None:
        self._r: Any = r  # redis-py types replies as bytes | str | Awaitable: checked here instead
        self._p = prefix
        self._open_orders = open_orders
        self._add = r.register_script(_ADD)
        self._load = r.register_script(_LOAD)

    def list(self) -> list[dict[str, Any]]:
        rows = self._r.hgetall(f"{self._p}products")
        return [
            {"product_id": pid.decode(), **orjson.loads(raw)} for pid, raw in sorted(rows.items())
        ]

    def get(self, product_id: str) -> dict[str, Any]:
        raw = self._r.hget(f"{self._p}products", product_id)
        if raw is None:
            raise NotFoundError(f"no product {product_id!r}")
        return {"product_id": product_id, **orjson.loads(raw)}

    def add(self, product_id: str, name: str, price: float, stock: int = 0) -> bool:
        body = orjson.dumps({"name": name, "price": price})
        outcome = self._add(args=[self._p, product_id, body, stock])
        if outcome == -1:
            raise RefusedError(f"product {product_id!r} exists already (use products update)")
        return bool(outcome == 1)

    def update(self, product_id: str, name: str | None, price: float | None) -> None:
        current = self.get(product_id)
        body = {
            "name": current["name"] if name is None else name,
            "price": current["price"] if price is None else price,
        }
        self._r.hset(f"{self._p}products", product_id, orjson.dumps(body))

    def remove(self, product_id: str) -> None:
        self.get(product_id)
        waiting = [
            state.id
            for state in self._open_orders()
            if state.status is not Status.SHIPPED
            and any(item["product_id"] == product_id for item in state.items)
        ]
        if waiting:
            raise RefusedError(
                f"product {product_id!r} is in {len(waiting)} open orders (e.g. {min(waiting)}); "
                "cancel them or let them ship first"
            )
        self._r.hdel(f"{self._p}products", product_id)

    def load(self, rows: Sequence[tuple[str, str, float, int]]) -> tuple[int, int]:
        payload = [
            [pid, orjson.dumps({"name": name, "price": price}).decode(), stock]
            for pid, name, price, stock in rows
        ]
        answer = self._load(args=[self._p, orjson.dumps(payload)])
        if answer[0] == 0:
            raise RefusedError(_s(answer[1]))
        return int(answer[1]), int(answer[2])
