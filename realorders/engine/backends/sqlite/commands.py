"""The embedded command log: the ``commands`` table, appended by any process.

A partial unique index on ``order_id`` for submissions is the idempotency
ledger: the same id with the same content is a no-op, other content a conflict.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from realorders.domain import Order
from realorders.engine.backends.sqlite.schema import WriteTx, keep_backorders, select_in
from realorders.engine.ports import Command, CommandKind, IntakeOutcome, IntakeResult

__all__ = ["SqliteCommandLog"]

_KINDS = {k.value: k for k in CommandKind}
#: Commands that may free stock for backordered orders: the engine will look for them.
_WAKING = frozenset(
    {CommandKind.RESTOCK, CommandKind.SET_STOCK, CommandKind.WAKE, CommandKind.CANCEL}
)


class SqliteCommandLog:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def append_orders(self, orders: Sequence[Order]) -> list[IntakeResult]:
        if not orders:
            return []
        with WriteTx(self._conn) as conn:
            return self._append(conn, orders)

    def append_from_source(
        self, orders: Sequence[Order], source: str, offsets: Mapping[str, int]
    ) -> list[IntakeResult]:
        with WriteTx(self._conn) as conn:
            results = self._append(conn, orders) if orders else []
            conn.executemany(
                "INSERT OR IGNORE INTO sourced_orders (order_id, source) VALUES (?, ?)",
                [(order.id, source) for order in orders],
            )
            conn.executemany(
                "INSERT INTO source_offsets (source, part, next_offset) VALUES (?, ?, ?) "
                "ON CONFLICT (source, part) DO UPDATE SET next_offset = excluded.next_offset",
                [(source, part, offset) for part, offset in offsets.items()],
            )
        return results

    def source_offsets(self, source: str) -> dict[str, int]:
        return dict(
            self._conn.execute(
                "SELECT part, next_offset FROM source_offsets WHERE source = ?", (source,)
            ).fetchall()
        )

    def taken_from_source(self, order_ids: Sequence[str]) -> set[str]:
        return {
            row[0]
            for row in select_in(
                self._conn,
                "SELECT order_id FROM sourced_orders WHERE order_id IN ({marks})",
                order_ids,
            )
        }

    def _append(self, conn: sqlite3.Connection, orders: Sequence[Order]) -> list[IntakeResult]:
        """The submissions of one write transaction (the caller holds it)."""
        now = time.time()
        known = self.digests([o.id for o in orders])
        position = conn.execute("SELECT coalesce(max(position), 0) FROM commands").fetchone()[0]
        rows: list[tuple[Any, ...]] = []
        results: list[IntakeResult] = []
        for order in orders:
            digest = order.digest()
            seen = known.get(order.id)
            if seen is not None:
                outcome = IntakeOutcome.DUPLICATE if seen == digest else IntakeOutcome.CONFLICT
                results.append(IntakeResult(order.id, outcome))
                continue
            position += 1
            known[order.id] = digest
            rows.append((position, "submit", order.id, digest, orjson.dumps(order.to_dict()), now))
            results.append(IntakeResult(order.id, IntakeOutcome.ACCEPTED, position))
        conn.executemany(
            "INSERT INTO commands (position, kind, order_id, digest, body, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        return results

    def digests(self, order_ids: Sequence[str]) -> dict[str, bytes]:
        """Content digests of the given ids already submitted (the idempotency ledger)."""
        return dict(
            select_in(
                self._conn,
                "SELECT order_id, digest FROM commands "
                "WHERE kind = 'submit' AND order_id IN ({marks})",
                order_ids,
            )
        )

    def cancel_requests(self, order_ids: Sequence[str]) -> dict[str, str | None]:
        """Cancels in the log for these orders: order id -> reason of the first one."""
        found: dict[str, str | None] = {}
        for order_id, body in select_in(
            self._conn,
            "SELECT order_id, body FROM commands "
            "WHERE kind = 'cancel' AND order_id IN ({marks}) ORDER BY position",
            order_ids,
        ):
            found.setdefault(order_id, orjson.loads(body).get("reason"))
        return found

    def append(self, kind: CommandKind, order_id: str | None, body: dict[str, Any]) -> int:
        with WriteTx(self._conn) as conn:
            if kind in _WAKING:
                keep_backorders(conn)
            cursor = conn.execute(
                "INSERT INTO commands (position, kind, order_id, body, at) VALUES "
                "((SELECT coalesce(max(position), 0) + 1 FROM commands), ?, ?, ?, ?)",
                (kind.value, order_id, orjson.dumps(body), time.time()),
            )
            return int(cursor.lastrowid or 0)

    def read(self, after: int, limit: int) -> list[Command]:
        return [
            Command(position, _KINDS[kind], order_id, orjson.loads(body), at)
            for position, kind, order_id, body, at in self._conn.execute(
                "SELECT position, kind, order_id, body, at FROM commands "
                "WHERE position > ? ORDER BY position LIMIT ?",
                (after, limit),
            )
        ]

    def submitted(self, order_id: str) -> tuple[Order, float] | None:
        row = self._conn.execute(
            "SELECT body, at FROM commands WHERE kind = 'submit' AND order_id = ?", (order_id,)
        ).fetchone()
        return None if row is None else (Order.from_dict(orjson.loads(row[0])), row[1])

    def queued(
        self,
        after: int,
        limit: int,
        customer_id: str | None = None,
        *,
        oldest_first: bool = False,
        before: int | None = None,
    ) -> list[tuple[Order, int, float]]:
        """Submissions the engine has not processed yet, newest (or oldest) first."""
        sql = "SELECT position, body, at FROM commands WHERE kind = 'submit' AND position > ?"
        args: list[Any] = [after]
        if before is not None:
            sql += " AND position < ?"
            args.append(before)
        if customer_id is not None:
            sql += " AND json_extract(CAST(body AS TEXT), '$.customer_id') = ?"
            args.append(customer_id)
        sql += f" ORDER BY position {'ASC' if oldest_first else 'DESC'} LIMIT ?"
        args.append(limit)
        return [
            (Order.from_dict(orjson.loads(body)), position, at)
            for position, body, at in self._conn.execute(sql, args)
        ]
