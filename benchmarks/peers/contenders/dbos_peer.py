#!/usr/bin/env python3
"""DBOS Transact 3.x: one durable workflow per order, one datasource transaction per change.

Used as its authors intend: the workflow is the durable unit (its inputs and every
step's outcome are checkpointed in the SQLite *system* database), and each state
change is a datasource transaction (``SQLAlchemyDatasource.transaction``, 3.x's
replacement for ``@DBOS.transaction``) whose writes commit atomically with DBOS's
exactly-once record in the SQLite *application* database. Orders are enqueued on a
DBOS queue (``DBOS.register_queue``), the documented way to run many independent
workflows with bounded concurrency: ``DBOS.start_workflow`` would run each on its
own thread (the executor is unbounded by default).

Knobs (environment, for experiments; the harness uses the defaults):
``DBOS_PEER_WORKERS`` (queue worker_concurrency), ``DBOS_PEER_POLL_S`` (queue
polling interval), ``DBOS_PEER_WAL=1`` (both files in WAL instead of DBOS's default
rollback journal; synchronous stays FULL).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import workload

try:
    import sqlalchemy as sa
    from dbos import DBOS, DBOSConfig, SQLAlchemyDatasource
except ImportError:
    common.skip("not installed: dbos")

# ~45 orders/s here: 100k orders would take ~40 min, 1M about six hours.
MAX_N = 10_000
# SQLite has one writer per file: more concurrent workflows only wait on its lock (4 vs 8,
# 16 measured: equal or slower).
WORKERS = int(os.environ.get("DBOS_PEER_WORKERS", "4"))
# DBOS's default polling interval of 1 s would admit at most WORKERS workflows a second.
POLL_S = float(os.environ.get("DBOS_PEER_POLL_S", "0.01"))
WAL = bool(os.environ.get("DBOS_PEER_WAL"))

APP_SCHEMA = (
    "CREATE TABLE products (sku TEXT PRIMARY KEY, stock INTEGER NOT NULL)",
    "CREATE TABLE orders (order_id TEXT PRIMARY KEY, status TEXT NOT NULL)",
    "CREATE TABLE events (order_id TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,"
    " at REAL NOT NULL, PRIMARY KEY (order_id, seq))",
)
INSERT_EVENT = sa.text("INSERT INTO events VALUES (:o, :s, :st, :at)")
SELECT_STOCK = sa.text("SELECT sku, stock FROM products WHERE sku IN :skus").bindparams(
    sa.bindparam("skus", expanding=True)
)
TAKE_STOCK = sa.text("UPDATE products SET stock = stock - :q WHERE sku = :s")
INSERT_ORDER = sa.text("INSERT INTO orders VALUES (:o, :st)")
SET_STATUS = sa.text("UPDATE orders SET status = :st WHERE order_id = :o")
# submit -> terminal: the pending event carries the submit time, the last event the terminal one
LATENCY = (
    "(SELECT t.at - p.at AS s FROM events t JOIN events p ON p.order_id = t.order_id"
    " AND p.seq = 1 WHERE t.status IN ('delivered', 'backordered'))"
)


def build(ds: SQLAlchemyDatasource) -> Callable[..., str]:
    """Register the transactions and the workflow (before launch, as DBOS requires)."""

    @ds.transaction()
    def reserve(order_id: str, lines: list[list[Any]], submitted: float) -> str:
        """All lines or none; SQLite's single writer makes check-then-update atomic."""
        session = ds.sql_session()
        stock = dict(session.execute(SELECT_STOCK, {"skus": [sku for sku, _ in lines]}).all())
        status = "reserved" if all(stock[sku] >= qty for sku, qty in lines) else "backordered"
        if status == "reserved":
            session.execute(TAKE_STOCK, [{"s": sku, "q": qty} for sku, qty in lines])
        session.execute(INSERT_ORDER, {"o": order_id, "st": status})
        session.execute(
            INSERT_EVENT,
            [  # "pending" is durable since the enqueue (the workflow's inputs); its row lands here
                {"o": order_id, "s": 1, "st": "pending", "at": submitted},
                {"o": order_id, "s": 2, "st": status, "at": time.time()},
            ],
        )
        return status

    @ds.transaction()
    def advance(order_id: str, seq: int, status: str) -> None:
        session = ds.sql_session()
        session.execute(SET_STATUS, {"o": order_id, "st": status})
        session.execute(INSERT_EVENT, {"o": order_id, "s": seq, "st": status, "at": time.time()})

    @DBOS.workflow()
    def fulfil(order_id: str, lines: list[list[Any]], submitted: float) -> str:
        """Reserve-or-backorder, then pack, ship, deliver: four checkpointed transactions."""
        if reserve(order_id, lines, submitted) == "backordered":
            return "backordered"
        for seq, status in ((3, "packed"), (4, "shipped"), (5, "delivered")):
            advance(order_id, seq, status)
        return "delivered"

    return fulfil


def setup(directory: Path, products: dict[str, int]) -> tuple[Path, Path]:
    """The application tables and stock (untimed). Journal mode and ``synchronous`` stay
    at SQLite's defaults (rollback journal, FULL) unless WAL: DBOS sets neither."""
    app, system = directory / "app.sqlite", directory / "dbos_sys.sqlite"
    with sqlite3.connect(app) as conn:
        for ddl in APP_SCHEMA:
            conn.execute(ddl)
        conn.executemany("INSERT INTO products VALUES (?, ?)", products.items())
    if WAL:
        for path in (app, system):
            sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").close()
    return app, system


def pragmas(path: Path) -> str:
    conn = sqlite3.connect(path)
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
        conn.execute("PRAGMA synchronous").fetchone()[0]
    ]
    conn.close()
    return f"journal_mode={journal} synchronous={sync}"


def wait_terminal(path: Path, n: int) -> None:
    """Poll the application database until every order is delivered or backordered."""
    conn = sqlite3.connect(path, timeout=60)
    query = "SELECT count(*) FROM orders WHERE status IN ('delivered', 'backordered')"
    while conn.execute(query).fetchone()[0] < n:
        time.sleep(0.02)
    conn.close()


def main() -> int:
    args = common.parse_args(__doc__.splitlines()[0] if __doc__ else None)
    app, system = setup(args.dir, args.stock())

    ds = SQLAlchemyDatasource.create(f"sqlite:///{app}")
    fulfil = build(ds)
    DBOS(
        config=DBOSConfig(
            name="realorders-peer", system_database_url=f"sqlite:///{system}", log_level="WARNING"
        )
    )
    clock = common.Clock()
    pacer = common.Pacer(args.rate)
    try:
        DBOS.launch()
        queue = DBOS.register_queue(
            "orders", worker_concurrency=WORKERS, polling_interval_sec=POLL_S
        )

        def submit(chunk: list[workload.Order]) -> None:
            for order in chunk:
                lines = [list(line) for line in order.lines]
                queue.enqueue(fulfil, order.order_id, lines, time.time())

        pacer.run(args.orders(), submit, clock)
        wait_terminal(app, args.n)
        clock.stop()
        clock.stop_cpu()
    finally:
        DBOS.destroy()

    conn = sqlite3.connect(app)  # read back from the store
    counts = dict(conn.execute("SELECT status, count(*) FROM orders GROUP BY 1"))
    stock = dict(conn.execute("SELECT sku, stock FROM products"))
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    latency = common.percentiles_sql(conn, "s", LATENCY)
    conn.close()

    common.write_result(
        args,
        contender="dbos",
        durability=(
            f"system db {pragmas(system)}, app db {pragmas(app)}"
            f"{' (WAL set by us)' if WAL else ' (DBOS and SQLite defaults)'}; per transaction: "
            "app writes + exactly-once record in one app-db commit, then a step checkpoint "
            "commit in the system db; the enqueue, dequeue and completion commit too"
        ),
        versions=common.versions("dbos", "sqlalchemy"),
        clock=clock,
        events=events,
        counts=counts,
        stock=stock,
        latency=latency,
        notes=(
            f"one workflow per order on a DBOS queue (worker_concurrency={WORKERS}, "
            f"polling_interval_sec={POLL_S}); 4 datasource transactions per delivered order"
        ),
        pacer=pacer,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
