"""The read side of the distributed mode, in Redis: orders, history, tail, stats.

Rows are written only by :data:`realorders.engine.backends.lua.PROJECT`
after Kafka has committed the batch that made them, so everything here is
committed state. Layout (under the store's prefix):

``o:<id>`` order row (JSON) · ``ev:<id>`` its events (list) · ``all``,
``st:<status>``, ``cust:<customer>`` ids by arrival · ``ids`` ids by name
(prefix search) · ``upd:<status>`` open ids by last change · ``bo:<product>``
backorders by arrival · ``fin``/``lat`` finished ids by time / by latency ·
``counts`` orders per status · ``tail`` a capped stream of every event with
an integer cursor (entry ``<n>-1`` holds the chunk of events ending at cursor n:
``e`` the events, ``o`` their order ids) · ``onhand``/``held``/``ledger`` stock
per product. Events are stored as ``records.encode_event`` made them for the
events topic; stores projected before issue 16 hold positional arrays, read too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import redis

from realorders.domain import TERMINAL, Event, OrderState, Status
from realorders.engine.backends.distributed.records import stored_event
from realorders.engine.ports import OrderFilter, StockLevel

__all__ = [
    "RedisEventLog",
    "RedisReadModel",
    "decode_state",
    "encode_state",
    "stats_from_parts",
]

_STATUSES = {s.value: s for s in Status}
_OPEN = [s for s in Status if s not in TERMINAL]
_IN_FLIGHT = (Status.RESERVED, Status.PACKED, Status.SHIPPED)
_PAGE = 500
_COUNT_PAGE = 5000
_TAIL_ENTRIES = 20  # of up to 200 events each (the projection's chunk)


def encode_state(state: OrderState) -> bytes:
    return orjson.dumps({**state.to_dict(), "arrival": state.arrival})


def decode_state(raw: bytes) -> OrderState:
    d = orjson.loads(raw)
    return OrderState(
        id=d["id"],
        customer_id=d["customer_id"],
        items=d["items"],
        notes=d["notes"],
        status=_STATUSES[d["status"]],
        version=d["version"],
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        arrival=d["arrival"],
        reason=d["reason"],
        terminal_at=d["terminal_at"],
        total=d["total"],
    )


class RedisReadModel:
    """``ReadModel`` over the projection; ``owns`` narrows engine-side queries to its orders."""

    def __init__(
        self, r: redis.Redis, prefix: str, owns: Callable[[str], bool] | None = None
    ) -> None:
        self._r: Any = r  # redis-py types replies as bytes | str | Awaitable: checked here instead
        self._p = prefix
        self.owns = owns
        self.backlog: Callable[[], int] = lambda: 0  # the backend knows (Kafka group lag)
        #: Waits until what this process's engine handed over about these orders (None:
        #: about any) is projected, so that a read sees the engine's own writes.
        self.projected: Callable[[Iterable[str] | None], None] = lambda ids: None

    def _states(self, ids: list[Any]) -> list[OrderState]:
        if not ids:
            return []
        p = self._p
        keys = [f"{p}o:{i.decode() if isinstance(i, bytes) else i}" for i in ids]
        return [decode_state(raw) for raw in self._r.mget(keys) if raw is not None]

    def get(self, order_id: str) -> OrderState | None:
        self.projected((order_id,))
        raw = self._r.get(f"{self._p}o:{order_id}")
        return None if raw is None else decode_state(raw)

    def get_many(self, order_ids: Iterable[str]) -> dict[str, OrderState]:
        ids = list(dict.fromkeys(order_ids))
        self.projected(ids)
        return {s.id: s for s in self._states(ids)}

    def query(self, flt: OrderFilter) -> list[OrderState]:
        self.projected(None)
        p = self._p
        if flt.order_id_prefix and flt.status is None and flt.customer_id is None:
            return self._by_prefix(flt)
        index = (
            f"{p}st:{flt.status.value}"
            if flt.status is not None
            else (f"{p}cust:{flt.customer_id}" if flt.customer_id is not None else f"{p}all")
        )
        below = self._upper_bound(flt)
        if below is not None and below <= 1:
            return []  # arrivals start at 1
        top = "+inf" if below is None else f"({below}"
        found: list[OrderState] = []
        # keyset pages (below the lowest arrival seen), not offsets: orders the engine
        # projects meanwhile or moves between status indexes neither shift nor repeat a page
        while flt.limit is None or len(found) < flt.limit:
            page = self._r.zrevrangebyscore(index, top, "-inf", start=0, num=_PAGE, withscores=True)
            if not page:
                break
            found += [s for s in self._states([m for m, _ in page]) if _matches(s, flt)]
            if len(page) < _PAGE:
                break
            top = f"({int(page[-1][1])}"
        return found if flt.limit is None else found[: flt.limit]

    def _upper_bound(self, flt: OrderFilter) -> int | None:
        """The arrival every order listed is below (None: no bound; 0 for an unknown ``before``)."""
        bound = flt.before_arrival
        if flt.before is not None:
            anchor = self._r.zscore(f"{self._p}all", flt.before)
            arrival = 0 if anchor is None else int(anchor)
            bound = arrival if bound is None else min(bound, arrival)
        return bound

    def _by_prefix(self, flt: OrderFilter) -> list[OrderState]:
        assert flt.order_id_prefix is not None
        below = self._upper_bound(flt)
        if below is not None and below <= 1:
            return []
        ids = self._r.zrangebylex(f"{self._p}ids", f"[{flt.order_id_prefix}", "[\U0010ffff")
        states = [s for s in self._states(ids) if s.id.startswith(flt.order_id_prefix)]
        if below is not None:
            states = [s for s in states if s.arrival < below]
        states.sort(key=lambda s: s.arrival, reverse=True)
        return states if flt.limit is None else states[: flt.limit]

    def _owned(self, states: list[OrderState]) -> list[OrderState]:
        owns = self.owns
        return states if owns is None else [s for s in states if owns(s.id)]

    def backordered(
        self, product_id: str | None, after_arrival: int, limit: int
    ) -> list[OrderState]:
        self.projected(None)
        index = f"{self._p}{'st:backordered' if product_id is None else 'bo:' + product_id}"
        found: list[OrderState] = []
        low = after_arrival
        while len(found) < limit:
            ids = self._r.zrangebyscore(index, f"({low}", "+inf", start=0, num=_PAGE)
            if not ids:
                break
            page = self._states(ids)
            if not page:
                break
            low = max(s.arrival for s in page)
            found += self._owned([s for s in page if s.status is Status.BACKORDERED])
        return sorted(found, key=lambda s: s.arrival)[:limit]

    def in_flight(self) -> list[OrderState]:
        self.projected(None)
        ids: list[Any] = []
        for status in _IN_FLIGHT:
            ids += self._r.zrange(f"{self._p}st:{status.value}", 0, -1)
        return sorted(self._owned(self._states(ids)), key=lambda s: s.arrival)

    def open_ids(self) -> list[str]:
        """Every open order's id (a new partition owner reconciles their stock holds)."""
        self.projected(None)
        ids: list[Any] = []
        for status in _OPEN:
            ids += self._r.zrange(f"{self._p}st:{status.value}", 0, -1)
        return [i.decode() for i in ids]

    def counts(self) -> dict[str, int]:
        self.projected(None)
        counts = {s.value: 0 for s in Status}
        for status, n in self._r.hgetall(f"{self._p}counts").items():
            counts[status.decode()] = int(n)
        return counts

    def open_counts(self) -> dict[str, int]:
        self.projected(None)
        values = self._r.hmget(f"{self._p}counts", [s.value for s in _OPEN])
        return {s.value: int(v or 0) for s, v in zip(_OPEN, values, strict=True)}

    def stale(self, status: Status, updated_before: float, limit: int) -> list[OrderState]:
        self.projected(None)
        if status in TERMINAL:
            return []
        ids = self._r.zrangebyscore(
            f"{self._p}upd:{status.value}", "-inf", f"({updated_before}", start=0, num=limit
        )
        return self._states(ids)

    def counts_between(self, ranges: list[tuple[int, int]]) -> dict[str, int]:
        """From the arrival index and ``ver`` ("version:status"): no order row is decoded."""
        self.projected(None)
        counts = {s.value: 0 for s in Status}
        for low, high in ranges:
            offset = 0
            while True:
                ids = self._r.zrangebyscore(
                    f"{self._p}all", low, high, start=offset, num=_COUNT_PAGE
                )
                if not ids:
                    break
                offset += len(ids)
                for version in self._r.hmget(f"{self._p}ver", ids):
                    if version is not None:
                        counts[version.decode().partition(":")[2]] += 1
        return counts

    def latency_percentiles(self) -> dict[str, float | None]:
        """Submit→terminal percentiles ranked inside Redis (no list of every latency moves)."""
        self.projected(None)
        key = f"{self._p}lat"
        n = int(self._r.zcard(key))
        result: dict[str, float | None] = {}
        for name, fraction in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
            if n == 0:
                result[name] = None
                continue
            rank = min(n - 1, max(0, round(fraction * n) - 1))
            ((_, score),) = self._r.zrange(key, rank, rank, withscores=True)
            result[name] = float(score)
        return result

    def stats_parts(self, window: float) -> dict[str, Any]:
        """Counts, recent activity and latency percentiles for ``stats``."""
        self.projected(None)
        now = time.time()
        p = self._p
        pipe = self._r.pipeline(transaction=False)
        pipe.zcount(f"{p}fin", now - window, "+inf")
        pipe.hmget(f"{p}meta", ["first_created", "last_terminal"])
        seconds = range(int(now - window) + 1, int(now) + 1)
        pipe.mget([f"{p}evs:{s}" for s in seconds])
        recent_orders, (first, last), per_second = pipe.execute()
        span = float(last) - float(first) if first is not None and last is not None else 0.0
        return {
            "counts": self.counts(),
            "recent_orders": int(recent_orders),
            "recent_events": sum(int(v) for v in per_second if v is not None),
            "span": span,
            "latency": self.latency_percentiles(),
        }

    def stats(self, window: float = 60.0) -> dict[str, Any]:
        return stats_from_parts(self.stats_parts(window), window, self.backlog())

    def levels(self) -> list[StockLevel]:
        self.projected(None)
        p = self._p
        products = {k.decode(): orjson.loads(v) for k, v in self._r.hgetall(f"{p}products").items()}
        ids = sorted(products)
        if not ids:
            return []
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(f"{p}onhand", ids)
        pipe.hmget(f"{p}held", ids)
        for pid in ids:
            pipe.zcard(f"{p}bo:{pid}")
        on_hand, held, *waiting = pipe.execute()
        return [
            StockLevel(
                pid,
                products[pid]["name"],
                products[pid]["price"],
                int(on_hand[i] or 0),
                int(held[i] or 0),
                int(waiting[i]),
            )
            for i, pid in enumerate(ids)
        ]

    def count(self) -> int:
        self.projected(None)
        return int(self._r.zcard(f"{self._p}all"))

    def ledger_totals(self) -> dict[str, int]:
        self.projected(None)
        return {k.decode(): int(v) for k, v in self._r.hgetall(f"{self._p}ledger").items()}

    def stock_rows(self) -> dict[str, tuple[int, int]]:
        self.projected(None)
        p = self._p
        on_hand = {k.decode(): int(v) for k, v in self._r.hgetall(f"{p}onhand").items()}
        held = {k.decode(): int(v) for k, v in self._r.hgetall(f"{p}held").items()}
        return {pid: (on_hand.get(pid, 0), held.get(pid, 0)) for pid in on_hand.keys() | held}


def _matches(state: OrderState, flt: OrderFilter) -> bool:
    if flt.status is not None and state.status is not flt.status:
        return False
    if flt.customer_id is not None and state.customer_id != flt.customer_id:
        return False
    return not (flt.order_id_prefix and not state.id.startswith(flt.order_id_prefix))


def stats_from_parts(parts: dict[str, Any], window: float, backlog: int) -> dict[str, Any]:
    """The same record as :func:`realorders.engine.ports.stats_record`, from Redis figures."""
    counts = parts["counts"]
    finished = sum(counts.get(s.value, 0) for s in TERMINAL)
    total = sum(counts.values())
    span = parts["span"]
    return {
        "orders": total,
        "by_status": counts,
        "in_flight": total - finished,
        "finished": finished,
        "throughput": {
            "window_seconds": window,
            "orders_per_second": parts["recent_orders"] / window,
            "events_per_second": parts["recent_events"] / window,
            "overall_orders_per_second": finished / span if span > 0 else None,
        },
        "latency_seconds": parts["latency"],
        "backlog": max(0, backlog),
    }


class RedisEventLog:
    """History per order and the global tail, from the projection.

    ``scan`` (for ``check``) is given by the Kafka backend: it reads the events
    topic itself, the source of truth, not this copy.
    """

    def __init__(self, r: redis.Redis, prefix: str, scan: Callable[[], Iterator[list[Event]]]):
        self._r: Any = r  # redis-py types replies as bytes | str | Awaitable: checked here instead
        self._p = prefix
        self._scan = scan
        self.projected: Callable[[Iterable[str] | None], None] = lambda ids: None  # as above

    def tail(self, after: int, limit: int) -> list[tuple[int, Event]]:
        """Events after ``after``; entry ``<last>-1`` holds the chunk ending at cursor ``last``."""
        self.projected(None)
        found: list[tuple[int, Event]] = []
        start = after + 1
        while len(found) < limit:
            entries = self._r.xrange(f"{self._p}tail", f"{start}-0", "+", count=_TAIL_ENTRIES)
            for entry_id, fields in entries:
                last = int(entry_id.split(b"-")[0])
                chunk = orjson.loads(fields[b"e"])
                if chunk and isinstance(chunk[0], str):
                    chunk = [chunk]  # one event per entry: a store projected before chunking
                # ids beside the events since issue 16; before, each array held its own
                ids = orjson.loads(fields[b"o"]) if b"o" in fields else [""] * len(chunk)
                first = last - len(chunk) + 1
                for cursor, order_id, event_fields in zip(
                    range(first, last + 1), ids, chunk, strict=True
                ):
                    if cursor > after:
                        found.append((cursor, stored_event(order_id, event_fields)))
                        if len(found) == limit:
                            return found
                start = last + 1
            if len(entries) < _TAIL_ENTRIES:
                break
        return found

    def head(self) -> int:
        self.projected(None)
        return int(self._r.get(f"{self._p}tailseq") or 0)

    def history(self, order_id: str) -> list[Event]:
        self.projected((order_id,))
        raws = self._r.lrange(f"{self._p}ev:{order_id}", 0, -1)
        return [stored_event(order_id, orjson.loads(raw)) for raw in raws]

    def scan(self) -> Iterator[list[Event]]:
        self.projected(None)
        return self._scan()
