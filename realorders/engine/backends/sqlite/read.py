"""Read side on SQLite: the read model (``orders``) and the event log tail.

Readers never write, so ``list``, ``show``, ``watch`` and ``stats`` run
beside the engine on their own connections without taking the write lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from realorders.domain import TERMINAL, Event, OrderState, Status
from realorders.engine.backends.sqlite.schema import backorders_kept, select_in
from realorders.engine.ports import OrderFilter, StockLevel, stats_record

__all__ = ["SqliteEventLog", "SqliteReadModel"]

_ORDER_COLUMNS = (
    "id, customer_id, status, items, total, notes, reason, version, arrival, "
    "created_at, updated_at, terminal_at"
)
_STATUSES = {s.value: s for s in Status}
#: repeated in queries for open orders, so SQLite may use the partial index orders_open
_OPEN = "status NOT IN ('delivered', 'rejected', 'cancelled')"


def _order(row: tuple[Any, ...]) -> OrderState:
    (
        oid,
        customer,
        status,
        items,
        total,
        notes,
        reason,
        version,
        arrival,
        created,
        updated,
        terminal,
    ) = row
    return OrderState(
        id=oid,
        customer_id=customer,
        items=orjson.loads(items),
        notes=notes,
        status=_STATUSES[status],
        version=version,
        created_at=created,
        updated_at=updated,
        arrival=arrival,
        reason=reason,
        terminal_at=terminal,
        total=total,
    )


#: An event row with, for a pending event stored without its content, the order row's
#: content to rebuild it from (see :func:`_event`).
_EVENT_COLUMNS = (
    "e.order_id, e.seq, e.status, e.at, e.data, "
    "o.customer_id, o.items, o.created_at, o.arrival, o.notes"
)
_EVENT_FROM = "events e LEFT JOIN orders o ON e.seq = 1 AND e.data IS NULL AND o.id = e.order_id"


def _event(row: tuple[Any, ...]) -> Event:
    """An event from its row and, for a pending event, its order row's content.

    The engine writes a pending event's content (customer, items priced at
    acceptance, created_at, arrival, notes) once, in the order row of the
    same commit, where it never changes after, instead of a second time in
    the event (schema v7 on; earlier pending events keep theirs). The event
    read back is the one the engine made: the same dict, key for key.
    """
    order_id, seq, status, at, data, customer, items, created, arrival, notes = row
    if data is not None:
        content = orjson.loads(data)
    elif customer is not None:
        content = {
            "customer_id": customer,
            "items": orjson.loads(items),
            "created_at": created,
            "arrival": arrival,
        }
        if notes is not None:
            content["notes"] = notes
    else:
        content = None
    return Event(order_id, seq, _STATUSES[status], at, content)


class SqliteReadModel:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, order_id: str) -> OrderState | None:
        row = self._conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?", (order_id,)
        ).fetchone()
        return None if row is None else _order(row)

    def get_many(self, order_ids: Iterable[str]) -> dict[str, OrderState]:
        return {
            row[0]: _order(row)
            for row in select_in(
                self._conn,
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id IN ({{marks}})",
                order_ids,
            )
        }

    def query(self, flt: OrderFilter) -> list[OrderState]:
        where: list[str] = []
        args: list[Any] = []
        if flt.status is not None:
            where.append("status = ?")
            args.append(flt.status.value)
            if flt.status not in TERMINAL:
                where.append(_OPEN)
        if flt.customer_id is not None:
            where.append("customer_id = ?")
            args.append(flt.customer_id)
        if flt.order_id_prefix:
            where.append("id >= ? AND id < ?")
            args += [flt.order_id_prefix, flt.order_id_prefix + "\U0010ffff"]
        if flt.before is not None:
            where.append("arrival < (SELECT arrival FROM orders WHERE id = ?)")
            args.append(flt.before)
        if flt.before_arrival is not None:
            where.append("arrival < ?")
            args.append(flt.before_arrival)
        sql = f"SELECT {_ORDER_COLUMNS} FROM orders"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY arrival DESC"
        if flt.limit is not None:
            sql += " LIMIT ?"
            args.append(flt.limit)
        return [_order(row) for row in self._conn.execute(sql, args)]

    def backordered(
        self, product_id: str | None, after_arrival: int, limit: int
    ) -> list[OrderState]:
        if product_id is not None and backorders_kept(self._conn):
            # the waiting list of one product (schema v7), not every backorder's items
            sql = (
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE arrival IN "
                "(SELECT arrival FROM backorders WHERE product_id = ? AND arrival > ? "
                "ORDER BY arrival LIMIT ?) ORDER BY arrival"
            )
            return [
                _order(row) for row in self._conn.execute(sql, (product_id, after_arrival, limit))
            ]
        sql = (
            f"SELECT {_ORDER_COLUMNS} FROM orders "
            f"WHERE status = 'backordered' AND {_OPEN} AND arrival > ?"
        )
        args: list[Any] = [after_arrival]
        if product_id is not None:  # no list kept yet (no restock so far): read the orders
            sql += (
                " AND EXISTS (SELECT 1 FROM json_each(orders.items) "
                "WHERE json_each.value ->> 'product_id' = ?)"
            )
            args.append(product_id)
        sql += " ORDER BY arrival LIMIT ?"
        args.append(limit)
        return [_order(row) for row in self._conn.execute(sql, args)]

    def in_flight(self) -> list[OrderState]:
        return [
            _order(row)
            for row in self._conn.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders "
                f"WHERE status IN ('reserved', 'packed', 'shipped') AND {_OPEN} ORDER BY arrival"
            )
        ]

    def counts(self) -> dict[str, int]:
        """Orders per status (every status present, zero included)."""
        counts = {s.value: 0 for s in Status}
        counts.update(
            self._conn.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall()
        )
        return counts

    def open_counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status if s not in TERMINAL}
        counts.update(
            self._conn.execute(
                f"SELECT status, count(*) FROM orders WHERE {_OPEN} GROUP BY status"
            ).fetchall()
        )
        return counts

    def stale(self, status: Status, updated_before: float, limit: int) -> list[OrderState]:
        if status in TERMINAL:
            return []
        return [
            _order(row)
            for row in self._conn.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE status = ? AND {_OPEN} "
                "AND updated_at < ? ORDER BY updated_at LIMIT ?",
                (status.value, updated_before, limit),
            )
        ]

    def counts_between(self, ranges: list[tuple[int, int]]) -> dict[str, int]:
        """Orders per status among those that arrived in the given position ranges."""
        counts = {s.value: 0 for s in Status}
        for low, high in ranges:
            for status, count in self._conn.execute(
                "SELECT status, count(*) FROM orders WHERE arrival BETWEEN ? AND ? GROUP BY status",
                (low, high),
            ):
                counts[status] += count
        return counts

    def stats(self, window: float = 60.0) -> dict[str, Any]:
        conn = self._conn
        now = time.time()
        counts = self.counts()
        latencies = sorted(
            row[0]
            for row in conn.execute(
                "SELECT terminal_at - created_at FROM orders WHERE terminal_at IS NOT NULL"
            )
        )
        recent_orders = conn.execute(
            "SELECT count(*) FROM orders WHERE terminal_at >= ?", (now - window,)
        ).fetchone()[0]
        first, last = conn.execute(
            "SELECT min(created_at), max(terminal_at) FROM orders"
        ).fetchone()
        recent_events = _events_since(conn, now - window)
        head, position = conn.execute(
            "SELECT (SELECT coalesce(max(position), 0) FROM commands), position FROM engine"
        ).fetchone()
        span = (last - first) if first is not None and last is not None else 0.0
        return stats_record(
            counts,
            latencies,
            window=window,
            recent_orders=recent_orders,
            recent_events=recent_events,
            span=span,
            backlog=head - position,
        )

    def levels(self) -> list[StockLevel]:
        waiting = dict(
            self._conn.execute(
                "SELECT product_id, count(*) FROM backorders GROUP BY product_id"
                if backorders_kept(self._conn)
                else "SELECT j.value ->> 'product_id', count(DISTINCT o.id) FROM orders o, "
                "json_each(o.items) j WHERE o.status = 'backordered' GROUP BY 1"
            ).fetchall()
        )
        return [
            StockLevel(pid, name, price, on_hand, reserved, waiting.get(pid, 0))
            for pid, name, price, on_hand, reserved in self._conn.execute(
                "SELECT p.product_id, p.name, p.price, coalesce(s.on_hand, 0), "
                "coalesce(s.reserved, 0) FROM products p LEFT JOIN stock s USING (product_id) "
                "ORDER BY p.product_id"
            )
        ]

    def count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM orders").fetchone()[0])

    def ledger_totals(self) -> dict[str, int]:
        """Net stock put in per product (initial loads, restocks, sets): what shipping draws on."""
        return dict(
            self._conn.execute(
                "SELECT product_id, sum(delta) FROM stock_ledger GROUP BY product_id"
            ).fetchall()
        )

    def stock_rows(self) -> dict[str, tuple[int, int]]:
        """(on_hand, reserved) as stored, including products removed from the catalogue."""
        return {
            pid: (on_hand, reserved)
            for pid, on_hand, reserved in self._conn.execute(
                "SELECT product_id, on_hand, reserved FROM stock"
            )
        }


def _events_since(conn: sqlite3.Connection, since: float) -> int:
    """Events committed at or after ``since``, found by bisecting the cursor.

    Events are appended in time order, so a binary search over the integer
    primary key answers in ~25 point lookups instead of scanning millions.
    """
    head = conn.execute("SELECT coalesce(max(cursor), 0) FROM events").fetchone()[0]
    low, high = 1, head + 1
    while low < high:
        mid = (low + high) // 2
        row = conn.execute(
            "SELECT at FROM events WHERE cursor >= ? ORDER BY cursor LIMIT 1", (mid,)
        ).fetchone()
        if row is None or row[0] >= since:
            high = mid
        else:
            low = mid + 1
    return int(head - low + 1)


class SqliteEventLog:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def tail(self, after: int, limit: int) -> list[tuple[int, Event]]:
        return [
            (row[0], _event(row[1:]))
            for row in self._conn.execute(
                f"SELECT e.cursor, {_EVENT_COLUMNS} FROM {_EVENT_FROM} "
                "WHERE e.cursor > ? ORDER BY e.cursor LIMIT ?",
                (after, limit),
            )
        ]

    def head(self) -> int:
        return int(self._conn.execute("SELECT coalesce(max(cursor), 0) FROM events").fetchone()[0])

    def history(self, order_id: str) -> list[Event]:
        return [
            _event(row)
            for row in self._conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM {_EVENT_FROM} WHERE e.order_id = ? ORDER BY e.seq",
                (order_id,),
            )
        ]

    def scan(self) -> Iterator[list[Event]]:
        current: list[Event] = []
        for row in self._conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM {_EVENT_FROM} ORDER BY e.order_id, e.seq"
        ):
            if current and current[0].order_id != row[0]:
                yield current
                current = []
            current.append(_event(row))
        if current:
            yield current
