"""The outbox of webhook deliveries on SQLite: ``deliveries``, ``delivery_scan`` and
``delivery_lease`` (schema v4; v5 adds the waiting/ready split and the lease).

Written directly, like the endpoints: no order state depends on a delivery.
Every write is one ``BEGIN IMMEDIATE`` transaction, so :meth:`enqueue` puts the
new rows and the scan cursor they came from in together (a crash keeps both
or neither), and any number of ``notify`` processes may share the file.

Only an order's lowest pending ``seq`` per endpoint may be due: that row, its
*head*, has ``head = 1``. Every write that changes which rows are pending sets
the flags of the orders it touched again (:data:`_REHEAD`, in the same
transaction). A head is *waiting* (``ready = 0``, by ``next_at`` in
``deliveries_waiting``) or *ready* (``ready = 1``, by cursor in
``deliveries_ready``), as in Redis's two sets: :meth:`SqliteDeliveries.due`
first makes ready the waiting heads whose time has come (:data:`_WAKE`), then
walks the ready ones (:data:`DUE`); a claim or a retry makes a head wait again.
A call reads what it returns and what became due, not the backlog, nor the
heads held by claims or retries, nor the later events waiting behind them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from realorders.deliveries import Delivery, DeliveryStatus, Recorded, check_new, checked_outcome
from realorders.engine.backends.sqlite.schema import WriteTx

__all__ = ["SqliteDeliveries"]

_COLUMNS = (
    "endpoint_id, order_id, seq, cursor, msg_id, status, attempts, next_at, created_at, "
    "updated_at, last_code, last_error, last_latency_ms, response_excerpt"
)
_SETTLED = "('delivered', 'failed')"
#: ?1 now: the waiting heads whose time has come become ready
_WAKE = (
    "UPDATE deliveries INDEXED BY deliveries_waiting SET ready = 1 "
    "WHERE head = 1 AND ready = 0 AND next_at <= ?1"
)
#: ?1 now, ?2 limit: the ready heads, oldest cursor first (one made ready by another
#: process's later clock is passed over, as on Redis). INDEXED BY: without statistics
#: the planner might rather sort than walk the index in the order asked.
DUE = (
    f"SELECT {_COLUMNS} FROM deliveries INDEXED BY deliveries_ready "
    "WHERE head = 1 AND ready = 1 AND next_at <= ?1 "
    "ORDER BY cursor, endpoint_id, order_id, seq LIMIT ?2"
)
#: ?1 endpoint, ?2 order: flip the flags that are wrong (an order has few rows)
_REHEAD = (
    "UPDATE deliveries SET head = 1 - head, ready = 0 "
    "WHERE endpoint_id = ?1 AND order_id = ?2 AND status = 'pending' AND head != (seq = ("
    "  SELECT min(seq) FROM deliveries "
    "  WHERE endpoint_id = ?1 AND order_id = ?2 AND status = 'pending'))"
)
#: ?1 status … ?8 excerpt, ?9 endpoint, ?10 order, ?11 seq: an attempt's outcome
_RECORD = (
    "UPDATE deliveries SET status = ?1, ready = 0, "
    "head = CASE WHEN ?1 = 'pending' THEN head ELSE 0 END, attempts = ?2, "
    "next_at = ?3, updated_at = ?4, last_code = ?5, last_error = ?6, "
    "last_latency_ms = ?7, response_excerpt = ?8 "
    "WHERE endpoint_id = ?9 AND order_id = ?10 AND seq = ?11"
)
_NEWEST_FIRST = "updated_at DESC, cursor DESC, endpoint_id DESC, order_id DESC, seq DESC"


def _delivery(row: tuple[Any, ...]) -> Delivery:
    (endpoint_id, order_id, seq, cursor, msg_id, status, attempts, next_at, created_at,
     updated_at, last_code, last_error, last_latency_ms, excerpt) = row  # fmt: skip
    return Delivery(
        endpoint_id=endpoint_id,
        order_id=order_id,
        seq=seq,
        cursor=cursor,
        msg_id=msg_id,
        status=DeliveryStatus(status),
        attempts=attempts,
        next_at=next_at,
        created_at=created_at,
        updated_at=updated_at,
        last_code=last_code,
        last_error=last_error,
        last_latency_ms=last_latency_ms,
        response_excerpt=excerpt,
    )


def _row(d: Delivery) -> tuple[Any, ...]:
    return (
        d.endpoint_id, d.order_id, d.seq, d.cursor, d.msg_id, d.status.value, d.attempts,
        d.next_at, d.created_at, d.updated_at, d.last_code, d.last_error, d.last_latency_ms,
        d.response_excerpt,
    )  # fmt: skip


class SqliteDeliveries:
    """Deliveries and the scan cursor; see the module docstring."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def scan_cursor(self) -> int:
        return int(self._conn.execute("SELECT cursor FROM delivery_scan").fetchone()[0])

    def enqueue(self, deliveries: Sequence[Delivery], scan_cursor: int) -> int:
        rows = [_row(check_new(d)) for d in deliveries]
        orders = dict.fromkeys((d.endpoint_id, d.order_id) for d in deliveries)
        with WriteTx(self._conn) as conn:
            added = conn.executemany(
                f"INSERT INTO deliveries ({_COLUMNS}) VALUES ({', '.join('?' * 14)}) "
                "ON CONFLICT (endpoint_id, order_id, seq) DO NOTHING",
                rows,
            ).rowcount
            conn.executemany(_REHEAD, orders)
            conn.execute("UPDATE delivery_scan SET cursor = max(cursor, ?)", (scan_cursor,))
        return max(0, added)

    def due(self, now: float, limit: int, *, hold: float = 0.0) -> list[Delivery]:
        until = now + hold
        with WriteTx(self._conn) as conn:
            conn.execute(_WAKE, (now,))
            found = [_delivery(row) for row in conn.execute(DUE, (now, max(0, limit)))]
            if hold > 0:
                conn.executemany(
                    "UPDATE deliveries SET next_at = ?, ready = 0 "
                    "WHERE endpoint_id = ? AND order_id = ? AND seq = ?",
                    [(until, d.endpoint_id, d.order_id, d.seq) for d in found],
                )
        return [replace(d, next_at=until) for d in found] if hold > 0 else found

    def record(
        self,
        endpoint_id: str,
        order_id: str,
        seq: int,
        *,
        status: DeliveryStatus,
        attempts: int,
        next_at: float | None,
        last_code: int | None,
        last_error: str | None,
        last_latency_ms: float | None,
        response_excerpt: str | None,
        at: float,
    ) -> bool:
        outcome = Recorded(
            *(endpoint_id, order_id, seq, status, attempts, next_at, last_code, last_error),
            *(last_latency_ms, response_excerpt, at),
        )
        return self.record_many([outcome]) == 1

    def record_many(self, outcomes: Sequence[Recorded]) -> int:
        rows = [_outcome_row(o) for o in outcomes]  # checked before the transaction
        with WriteTx(self._conn) as conn:
            changed = 0
            for row in rows:
                changed += conn.execute(_RECORD, row).rowcount
                conn.execute(_REHEAD, row[-3:-1])
        return changed

    def _count(self, status: DeliveryStatus, endpoint_id: str | None) -> int:
        # the status as a literal: only then may the planner use its partial index
        sql = f"SELECT count(*) FROM deliveries WHERE status = '{status.value}'"
        if endpoint_id is None:
            return int(self._conn.execute(sql).fetchone()[0])
        sql += " AND endpoint_id = ?"
        return int(self._conn.execute(sql, (endpoint_id,)).fetchone()[0])

    def pending_count(self, endpoint_id: str | None = None) -> int:
        return self._count(DeliveryStatus.PENDING, endpoint_id)

    def failed_count(self, endpoint_id: str | None = None) -> int:
        return self._count(DeliveryStatus.FAILED, endpoint_id)

    def history(
        self,
        endpoint_id: str | None = None,
        *,
        order_id: str | None = None,
        failed_only: bool = False,
        limit: int = 100,
    ) -> list[Delivery]:
        where, args = _filters(endpoint_id, order_id, None, failed_only)
        # failed ones are few among many delivered: read them from their own index
        # (an order's rows are fewer still: its index then)
        hint = "INDEXED BY deliveries_failed" if failed_only and order_id is None else ""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM deliveries {hint} WHERE {where} "
            f"ORDER BY {_NEWEST_FIRST} LIMIT ?",
            (*args, max(0, limit)),
        )
        return [_delivery(row) for row in rows]

    def requeue(
        self,
        endpoint_id: str,
        *,
        order_id: str | None = None,
        since: float | None = None,
        failed_only: bool = False,
        now: float,
    ) -> int:
        where, args = _filters(endpoint_id, order_id, since, failed_only)
        where += f" AND status IN {_SETTLED}"
        with WriteTx(self._conn) as conn:
            orders = conn.execute(
                f"SELECT DISTINCT endpoint_id, order_id FROM deliveries WHERE {where}", args
            ).fetchall()
            requeued: int = conn.execute(
                "UPDATE deliveries SET status = 'pending', ready = 0, attempts = 0, "
                f"next_at = ?, updated_at = ? WHERE {where}",
                (now, now, *args),
            ).rowcount
            conn.executemany(_REHEAD, orders)
        return requeued

    def forget_endpoint(self, endpoint_id: str) -> int:
        with WriteTx(self._conn) as conn:
            return conn.execute(
                "DELETE FROM deliveries WHERE endpoint_id = ?", (endpoint_id,)
            ).rowcount

    def take_lease(self, owner: str, ttl: float, now: float) -> str | None:
        with WriteTx(self._conn) as conn:
            row = conn.execute("SELECT owner, until FROM delivery_lease").fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return str(row[0])
            conn.execute(
                "INSERT INTO delivery_lease (id, owner, until) VALUES (1, ?1, ?2) "
                "ON CONFLICT (id) DO UPDATE SET owner = ?1, until = ?2",
                (owner, now + ttl),
            )
        return None

    def release_lease(self, owner: str) -> bool:
        with WriteTx(self._conn) as conn:
            return (
                conn.execute("DELETE FROM delivery_lease WHERE owner = ?", (owner,)).rowcount == 1
            )


def _outcome_row(o: Recorded) -> tuple[Any, ...]:
    """The arguments of :data:`_RECORD`; the outcome checked (``checked_outcome``)."""
    status, next_at, last_error, excerpt = checked_outcome(
        o.status, o.next_at, o.last_error, o.response_excerpt
    )
    return (
        *(status.value, o.attempts, next_at, o.at, o.last_code, last_error),
        *(o.last_latency_ms, excerpt, o.endpoint_id, o.order_id, o.seq),
    )


def _filters(
    endpoint_id: str | None, order_id: str | None, since: float | None, failed_only: bool
) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause (``1`` for none) and its arguments."""
    terms: list[str] = ["1"]
    args: list[Any] = []
    if endpoint_id is not None:
        terms.append("endpoint_id = ?")
        args.append(endpoint_id)
    if order_id is not None:
        terms.append("order_id = ?")
        args.append(order_id)
    if since is not None:  # when enqueued: see DeliveryStore.requeue
        terms.append("created_at >= ?")
        args.append(since)
    if failed_only:
        terms.append("status = 'failed'")
    return " AND ".join(terms), args
