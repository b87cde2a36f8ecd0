"""The engine's batch commits on SQLite, written by a thread beside the engine.

Writing a batch (its events, order rows, stock, ledger and command position,
one transaction) is about half of the engine's time, and it is SQLite's C
code: work a second core can do while the engine's actors run the next
batch. So a batch is encoded on the engine's thread into a few JSON arrays
(a snapshot: the engine may change the same orders right after) and handed
to a :class:`CommitWriter`, whose thread inserts each array with one
``INSERT … SELECT … FROM json_each(?)``. One statement per table matters: an
``executemany`` takes the GIL back for every row, and against a busy engine
thread each take waits out the interpreter's switch interval (measured: the
engine got slower, not faster). JSON carries every float exactly (checked:
800,000 doubles through ``orjson`` → ``json_each`` → SQLite REAL, no change).

Batches are committed one at a time in the order handed over, each in one
transaction, so a crash still leaves a whole number of batches: the engine
restarts after the last one committed. At most ``depth`` batches are in
flight; reads of what the engine wrote wait for them (``sync``).
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from realorders.engine.backends.sqlite.schema import connect
from realorders.engine.pipeline import InOrderCommits
from realorders.engine.ports import Changes

__all__ = ["Batch", "CommitWriter", "encode", "write"]

_EVENTS = (
    "INSERT INTO events (order_id, seq, status, at, data) "
    "SELECT value->>0, value->>1, value->>2, value->>3, CAST(value->>4 AS BLOB) FROM json_each(?)"
)
# WHERE true: an upsert's INSERT … SELECT needs one, or ON CONFLICT parses as a join's ON
_ORDERS = (
    "INSERT INTO orders (id, customer_id, status, items, total, notes, reason, "
    "version, arrival, created_at, updated_at, terminal_at) "
    "SELECT value->>0, value->>1, value->>2, CAST(value->>3 AS BLOB), value->>4, value->>5, "
    "value->>6, value->>7, value->>8, value->>9, value->>10, value->>11 "
    "FROM json_each(?) WHERE true ON CONFLICT (id) DO UPDATE SET "
    "status = excluded.status, reason = excluded.reason, version = excluded.version, "
    "updated_at = excluded.updated_at, terminal_at = excluded.terminal_at"
)
_STOCK = (
    "INSERT INTO stock (product_id, on_hand, reserved) "
    "SELECT value->>0, value->>1, value->>2 FROM json_each(?) WHERE true "
    "ON CONFLICT (product_id) DO UPDATE SET on_hand = excluded.on_hand, "
    "reserved = excluded.reserved"
)
_LEDGER = (
    "INSERT INTO stock_ledger (product_id, delta, kind, at) "
    "SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?)"
)


@dataclass(frozen=True, slots=True)
class Batch:
    """One engine batch, encoded: nothing in it changes after :func:`encode`."""

    position: int
    at: float
    events: bytes | None  # [[order_id, seq, status, at, data], …]
    orders: bytes | None  # [[id, customer_id, status, items, total, notes, reason, …], …]
    stock: bytes | None  # [[product_id, on_hand, reserved], …]
    ledger: bytes | None  # [[product_id, delta, kind, at], …]


def encode(
    changes: Changes,
    stock: Iterable[tuple[str, int, int]],
    ledger: Iterable[tuple[str, int, str, float]],
) -> Batch:
    stock_rows, ledger_rows = list(stock), list(ledger)
    return Batch(
        position=changes.position,
        at=time.time(),
        # a pending event's content goes once, in its order row (read back by read._event)
        events=orjson.dumps(
            [
                (order_id, seq, status, at, None if seq == 1 else data)
                for order_id, seq, status, at, data in changes.events
            ]
        )
        if changes.events
        else None,
        # tuples, not the dataclasses: orjson writes these 4x faster
        orders=orjson.dumps(
            [
                (
                    s.id,
                    s.customer_id,
                    s.status,
                    s.items,
                    s.total,
                    s.notes,
                    s.reason,
                    s.version,
                    s.arrival,
                    s.created_at,
                    s.updated_at,
                    s.terminal_at,
                )
                for s in changes.orders.values()
            ]
        )
        if changes.orders
        else None,
        stock=orjson.dumps(stock_rows) if stock_rows else None,
        ledger=orjson.dumps(ledger_rows) if ledger_rows else None,
    )


def write(conn: sqlite3.Connection, batch: Batch) -> None:
    """Commit one batch in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in (
            (_EVENTS, batch.events),
            (_ORDERS, batch.orders),
            (_STOCK, batch.stock),
            (_LEDGER, batch.ledger),
        ):
            if rows is not None:
                conn.execute(sql, (rows,))
        conn.execute("UPDATE engine SET position = ?, heartbeat_at = ?", (batch.position, batch.at))
    except BaseException:
        if conn.in_transaction:  # some errors (a full disk) have rolled it back already
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class CommitWriter:
    """Commits batches, in order, on a thread with a connection of its own.

    The rules (order, ``depth`` in flight, the first failure stops it and is
    raised in the engine's thread) are :class:`InOrderCommits`'; a restarted
    engine resumes after the last committed batch.
    """

    def __init__(self, path: str | Path, *, depth: int = 2) -> None:
        self._conn = connect(path)
        # checkpoint every 64 MiB of WAL, not 4 MiB, while the engine writes (see SqliteBackend)
        self._conn.execute("PRAGMA wal_autocheckpoint = 16384")
        self._commits = InOrderCommits(
            functools.partial(write, self._conn), depth=depth, name="realorders-commit"
        )
        self.put = self._commits.put
        self.sync = self._commits.sync

    def close(self) -> None:
        """Commit what was handed over (unless a batch failed), then stop the thread."""
        self._commits.close()
        self._conn.close()
