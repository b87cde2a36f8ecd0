"""SQLite schema v7: the backordered orders of each product, kept by triggers on ``orders``.

A restock reads one product's waiting list instead of every backorder's items; these
tests hold the list equal to "backordered orders with a line of that product" through
every way an order's status changes, from the first command that may free stock (before
it, nothing is kept and a wake reads the orders themselves), and through the upgrade of a
v6 store.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import orjson

from realorders.engine.backends.sqlite.backend import SqliteBackend
from realorders.engine.backends.sqlite.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    backorders_kept,
    connect,
)
from realorders.engine.ports import CommandKind

T0 = 1_764_000_000.0


def _upsert(conn: sqlite3.Connection, arrival: int, status: str, *products: str) -> None:
    """Write an order row as the engine's commit does: an insert, or an upsert of its status."""
    items = orjson.dumps([{"product_id": p, "quantity": 1, "price": 1.0} for p in products])
    conn.execute(
        "INSERT INTO orders (id, customer_id, status, items, version, arrival, created_at, "
        "updated_at) VALUES (?, 'c', ?, ?, 1, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status",
        (f"O{arrival}", status, items, arrival, T0, T0),
    )


def _waiting(conn: sqlite3.Connection) -> set[tuple[str, int]]:
    return set(conn.execute("SELECT product_id, arrival FROM backorders"))


def _derived(conn: sqlite3.Connection) -> set[tuple[str, int]]:
    """What the list must equal: read off the orders themselves, the slow way."""
    return set(
        conn.execute(
            "SELECT j.value ->> 'product_id', o.arrival FROM orders o, json_each(o.items) j "
            "WHERE o.status = 'backordered'"
        )
    )


def _restock(backend: SqliteBackend, product_id: str = "A") -> None:
    backend.commands.append(CommandKind.RESTOCK, None, {"product_id": product_id, "quantity": 1})


def test_nothing_is_kept_until_a_command_may_free_stock(tmp_path: Path) -> None:
    with closing(SqliteBackend(tmp_path / "r.db")) as backend:
        conn = backend.connection()
        _upsert(conn, 1, "backordered", "A", "B")
        _upsert(conn, 2, "backordered", "B")
        assert (backorders_kept(conn), _waiting(conn)) == (False, set())
        # a wake before then reads the orders themselves, with the same answer
        assert [s.arrival for s in backend.orders.backordered("B", 0, 10)] == [1, 2]
        assert [s.arrival for s in backend.orders.backordered("A", 0, 10)] == [1]
        conn.executemany("INSERT INTO products VALUES (?, ?, 1.0)", [("A", "a"), ("B", "b")])
        assert {lv.product_id: lv.backordered for lv in backend.orders.levels()} == {
            "A": 1,
            "B": 2,
        }
        backend.commands.append(CommandKind.CANCEL, "O2", {"reason": None})  # may free stock
        assert backorders_kept(conn)
        assert _waiting(conn) == {("A", 1), ("B", 1), ("B", 2)} == _derived(conn)
        _restock(backend)  # a second switch changes nothing
        assert _waiting(conn) == _derived(conn)


def test_the_waiting_list_follows_every_status_change(tmp_path: Path) -> None:
    with closing(SqliteBackend(tmp_path / "r.db")) as backend:
        _restock(backend)
        conn = backend.connection()
        _upsert(conn, 1, "backordered", "A", "B")  # backordered in the batch it arrived
        _upsert(conn, 2, "pending", "A")
        _upsert(conn, 3, "delivered", "A", "C")  # never waited
        assert _waiting(conn) == {("A", 1), ("B", 1)} == _derived(conn)
        _upsert(conn, 2, "backordered", "A")  # pending in one batch, backordered in the next
        assert _waiting(conn) == {("A", 1), ("B", 1), ("A", 2)} == _derived(conn)
        _upsert(conn, 1, "reserved", "A", "B")  # woken
        _upsert(conn, 2, "cancelled", "A")
        assert _waiting(conn) == set() == _derived(conn)
        _upsert(conn, 4, "backordered", "B")
        _upsert(conn, 4, "backordered", "B")  # the same status again changes nothing
        _upsert(conn, 4, "rejected", "B")  # its product left the catalogue while it waited
        assert _waiting(conn) == set() == _derived(conn)


def test_backordered_by_product_reads_its_list_in_arrival_order(tmp_path: Path) -> None:
    with closing(SqliteBackend(tmp_path / "r.db")) as backend:
        _restock(backend)
        conn = backend.connection()
        for arrival, products in [(5, "AB"), (2, "A"), (9, "B"), (7, "A")]:
            _upsert(conn, arrival, "backordered", *products)
        _upsert(conn, 8, "delivered", "A")
        waiting_for_a = backend.orders.backordered("A", 0, 10)
        assert [s.arrival for s in waiting_for_a] == [2, 5, 7]
        assert [s.arrival for s in backend.orders.backordered("A", 2, 1)] == [5]
        assert [s.arrival for s in backend.orders.backordered(None, 0, 10)] == [2, 5, 7, 9]
        plan = " ".join(
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT arrival FROM backorders "
                "WHERE product_id = ? AND arrival > ? ORDER BY arrival LIMIT ?",
                ("A", 0, 10),
            )
        )
        assert "USING PRIMARY KEY (product_id=? AND arrival>?)" in plan, plan
        conn.executemany("INSERT INTO products VALUES (?, ?, 1.0)", [("A", "a"), ("C", "c")])
        levels = {level.product_id: level.backordered for level in backend.orders.levels()}
        assert levels == {"A": 3, "C": 0}  # catalogue products only, B is not one


def test_a_v6_store_keeps_its_backorders_from_its_first_restock(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    with closing(connect(path)) as conn:
        for script in MIGRATIONS[:6]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 6")
        _upsert(conn, 1, "backordered", "A", "B")
        _upsert(conn, 2, "delivered", "A")
        _upsert(conn, 3, "backordered", "B")
        conn.commit()
    for _ in range(2):  # a second open changes nothing
        with closing(SqliteBackend(path, create=False)) as backend:
            conn = backend.connection()
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert [s.arrival for s in backend.orders.backordered("B", 0, 10)] == [1, 3]
    with closing(SqliteBackend(path, create=False)) as backend:
        _restock(backend, "B")
        conn = backend.connection()
        assert _waiting(conn) == {("A", 1), ("B", 1), ("B", 3)} == _derived(conn)
