#!/usr/bin/env python3
"""huey with ``SqliteHuey``: one task per order, run by a consumer of thread workers.

The idiomatic design: the unit of work is the order, so one task does
reserve-or-backorder → pack → ship → deliver, one ``BEGIN IMMEDIATE`` transaction
per state change in an application SQLite database (the reservation reads and
decrements every line inside it, so it is all-or-nothing under concurrent
workers). Chaining a task per stage (``.then()``) would add an enqueue and a
dequeue commit per stage and buy nothing: huey deletes a task from its queue when
a worker *takes* it, so delivery is at most once either way and a crash mid-task
leaves the order where it stopped.

Restocks (``--workload restock``): a ``restock`` task, enqueued by the submitter
when it falls due (behind the orders before it in huey's FIFO queue), adds the
stock and, in the same transaction, lists the orders waiting for that product
(``waiting``, filled when ``fulfil`` backorders an order: the products it is
short of) and records one ``wakes`` row per order; after the commit it enqueues a
``wake`` task for each, in arrival order. ``wake`` retries the order
all-or-nothing (deleting its ``wakes`` row in that transaction); a woken order
goes backordered → reserved → packed → shipped → delivered, events 3-6. Workers
run concurrently, so an order enqueued just before a restock may be taken
after it and find the stock without waiting: fewer wakes than a log in strict
order would make, the same final state. Done means every order delivered or
backordered, every restock applied (a ``restocks`` row each) and no ``wakes``
row left, read in one snapshot.

The consumer is what ``huey_consumer huey_peer.huey -w 4 -k thread -d 0.01 -m 0.1``
would run, started as a child process (this script with ``--consume``) so its CPU
and memory are counted; the parent is the submitter. Both run the same ``tasks()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import workload

try:
    from huey import SqliteHuey
except ImportError:
    common.skip("not installed: huey")

MAX_N = 100_000
WORKLOADS = ("standard", "backorder", "restock")
WORKERS = int(os.environ.get("HUEY_PEER_WORKERS", "4"))  # thread workers
# Queue polling when idle: 10 ms, backing off to 100 ms (huey's defaults: 0.1 s up to 10 s,
# which would put seconds of idle wait into the latency of the first orders).
CONSUMER = {"initial_delay": 0.01, "max_delay": 0.1, "backoff": 1.15, "periodic": False}
SCHEMA = (
    "CREATE TABLE products (sku TEXT PRIMARY KEY, stock INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE orders (order_id TEXT PRIMARY KEY, status TEXT NOT NULL, lines TEXT NOT NULL)"
    " WITHOUT ROWID",
    "CREATE TABLE events (order_id TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,"
    " at REAL NOT NULL, PRIMARY KEY (order_id, seq)) WITHOUT ROWID",
    "CREATE TABLE waiting (sku TEXT NOT NULL, order_id TEXT NOT NULL, PRIMARY KEY (sku, order_id))"
    " WITHOUT ROWID",
    "CREATE TABLE restocks (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, quantity INTEGER NOT NULL,"
    " at REAL NOT NULL)",
    "CREATE TABLE wakes (id INTEGER PRIMARY KEY, order_id TEXT NOT NULL)",
)
# submit -> terminal: the pending event carries the submit time, the event of the order's
# final status the terminal one (a woken order has a backordered event before its delivered one)
LATENCY = (
    "(SELECT t.at - p.at AS s FROM orders o"
    " JOIN events t ON t.order_id = o.order_id AND t.status = o.status"
    " JOIN events p ON p.order_id = o.order_id AND p.seq = 1)"
)
DONE = (
    "SELECT (SELECT count(*) FROM orders WHERE status IN ('delivered', 'backordered')),"
    " (SELECT count(*) FROM restocks), (SELECT count(*) FROM wakes)"
)


def connect(path: Path) -> sqlite3.Connection:
    """The application database: WAL, fsync on every commit (as huey's own store)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction: the write lock first, so reads cannot go stale."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def change(conn: sqlite3.Connection, order_id: str, seq: int, status: str) -> None:
    with immediate(conn):
        conn.execute("UPDATE orders SET status = ? WHERE order_id = ?", (status, order_id))
        conn.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (order_id, seq, status, time.time()))


def short_of(conn: sqlite3.Connection, lines: Any) -> list[str]:
    """The products of ``lines`` without enough stock (inside the write transaction)."""
    return [
        sku
        for sku, qty in lines
        if conn.execute("SELECT stock FROM products WHERE sku = ?", (sku,)).fetchone()[0] < qty
    ]


def reserve(conn: sqlite3.Connection, lines: Any) -> None:
    conn.executemany(
        "UPDATE products SET stock = stock - ? WHERE sku = ?", [(qty, sku) for sku, qty in lines]
    )


def add_stock(conn: sqlite3.Connection, sku: str, quantity: int) -> list[tuple[int, str]]:
    """The restock's transaction: the stock, and a ``wakes`` row per order waiting for it."""
    with immediate(conn):
        conn.execute("UPDATE products SET stock = stock + ? WHERE sku = ?", (quantity, sku))
        conn.execute(
            "INSERT INTO restocks (sku, quantity, at) VALUES (?, ?, ?)",
            (sku, quantity, time.time()),
        )
        waiting = conn.execute(
            "SELECT order_id FROM waiting WHERE sku = ? ORDER BY order_id", (sku,)
        ).fetchall()
        return [
            (conn.execute("INSERT INTO wakes (order_id) VALUES (?)", (oid,)).lastrowid, oid)
            for (oid,) in waiting
        ]


def retry(conn: sqlite3.Connection, wake_id: int, order_id: str) -> bool:
    """A woken order's transaction: reserved if it can be now (all lines or none)."""
    with immediate(conn):
        conn.execute("DELETE FROM wakes WHERE id = ?", (wake_id,))
        status, raw = conn.execute(
            "SELECT status, lines FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        if status != "backordered":  # woken already, by another restock
            return False
        lines = json.loads(raw)
        short = short_of(conn, lines)
        if short:  # still short of something: it waits for that too
            conn.executemany(
                "INSERT OR IGNORE INTO waiting VALUES (?, ?)", [(sku, order_id) for sku in short]
            )
            return False
        reserve(conn, lines)
        conn.execute("UPDATE orders SET status = 'reserved' WHERE order_id = ?", (order_id,))
        conn.execute("INSERT INTO events VALUES (?, 3, 'reserved', ?)", (order_id, time.time()))
        conn.executemany(
            "DELETE FROM waiting WHERE sku = ? AND order_id = ?",
            [(sku, order_id) for sku, _ in lines],
        )
        return True


def tasks(directory: Path) -> tuple[SqliteHuey, Callable[..., Any], Callable[..., Any]]:
    """The huey instance and its tasks, defined the same way in submitter and consumer.

    Returns ``(huey, fulfil, restock)``; ``wake`` is enqueued by ``restock`` only.
    """
    huey = SqliteHuey("orders", filename=str(directory / "huey.sqlite"))
    app = directory / "app.sqlite"
    local = threading.local()

    @huey.on_startup()
    def open_connection() -> None:  # once per worker thread, huey's hook for resources
        local.conn = connect(app)

    @huey.task(name="fulfil")
    def fulfil(order_id: str, lines: tuple[tuple[str, int], ...], submitted: float) -> None:
        conn: sqlite3.Connection = local.conn
        with immediate(conn):
            short = short_of(conn, lines)
            if not short:
                reserve(conn, lines)
            else:  # remembered under each product it waits for: a restock wakes it
                conn.executemany(
                    "INSERT INTO waiting VALUES (?, ?)", [(sku, order_id) for sku in short]
                )
            status = "backordered" if short else "reserved"
            conn.execute(
                "INSERT INTO orders VALUES (?, ?, ?)", (order_id, status, json.dumps(lines))
            )
            conn.executemany(  # "pending" is durable since the enqueue; its row lands here
                "INSERT INTO events VALUES (?, ?, ?, ?)",
                [(order_id, 1, "pending", submitted), (order_id, 2, status, time.time())],
            )
        if not short:
            for seq, stage in ((3, "packed"), (4, "shipped"), (5, "delivered")):
                change(conn, order_id, seq, stage)
        # returns None: huey stores no result, as with any fire-and-forget task

    @huey.task(name="restock")
    def restock(sku: str, quantity: int) -> None:
        for wake_id, order_id in add_stock(local.conn, sku, quantity):  # in arrival order
            wake(wake_id, order_id)

    @huey.task(name="wake")
    def wake(wake_id: int, order_id: str) -> None:
        conn: sqlite3.Connection = local.conn
        if retry(conn, wake_id, order_id):  # backordered -> reserved: its events go on
            for seq, stage in ((4, "packed"), (5, "shipped"), (6, "delivered")):
                change(conn, order_id, seq, stage)

    return huey, fulfil, restock


def consume(directory: Path) -> None:
    """The child: a huey consumer with thread workers until SIGINT (graceful stop)."""
    huey, _, _ = tasks(directory)

    @huey.on_startup()
    def ready() -> None:  # tells the submitter a worker is polling
        (directory / "consumer.ready").touch()

    huey.create_consumer(workers=WORKERS, worker_type="thread", **CONSUMER).run()


def setup(directory: Path, products: dict[str, int]) -> Path:
    app = directory / "app.sqlite"
    conn = connect(app)
    for ddl in SCHEMA:
        conn.execute(ddl)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO products VALUES (?, ?)", products.items())
    conn.execute("COMMIT")
    conn.close()
    return app


def wait_ready(marker: Path, consumer: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists():
        if consumer.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"huey consumer did not start (exit {consumer.poll()})")
        time.sleep(0.01)


def wait_terminal(app: Path, n: int, restocks: int, consumer: subprocess.Popen[bytes]) -> None:
    """Until every order is final: all delivered or backordered, restocked, none being woken."""
    conn = sqlite3.connect(app, timeout=60)
    while True:
        terminal, restocked, waking = conn.execute(DONE).fetchone()  # one snapshot
        if terminal >= n and restocked >= restocks and not waking:
            break
        if consumer.poll() is not None:
            raise SystemExit(f"huey consumer exited with {consumer.returncode}")
        time.sleep(0.02)
    conn.close()


def stop(consumer: subprocess.Popen[bytes]) -> None:
    """SIGINT is huey's graceful stop; kill only if it does not come down."""
    if consumer.poll() is None:
        consumer.send_signal(signal.SIGINT)
        try:
            consumer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            consumer.kill()
    consumer.wait()


def main() -> int:
    if sys.argv[1:2] == ["--consume"]:
        consume(Path(sys.argv[2]))
        return 0
    args = common.parse_args(__doc__.splitlines()[0] if __doc__ else None)
    app = setup(args.dir, args.stock())
    restocks = args.restocks()
    huey, fulfil, restock = tasks(args.dir)  # creates huey's tables before the consumer starts
    consumer = subprocess.Popen([sys.executable, __file__, "--consume", str(args.dir)])
    clock = common.Clock()
    pacer = common.Pacer(args.rate)
    try:
        wait_ready(args.dir / "consumer.ready", consumer)  # untimed: the consumer starting up

        def submit(chunk: list[workload.Order]) -> None:
            for order in chunk:
                fulfil(order.order_id, order.lines, time.time())

        def restock_due(r: workload.Restock) -> None:
            restock(r.sku, r.quantity)

        pacer.run(args.orders(), submit, clock, restocks=restocks, restock=restock_due)
        wait_terminal(app, args.n, len(restocks), consumer)
        clock.stop()
    finally:
        stop(consumer)
    clock.stop_cpu()  # the consumer is reaped: its CPU counts now

    conn = sqlite3.connect(app)  # read back from the store
    counts = dict(conn.execute("SELECT status, count(*) FROM orders GROUP BY 1"))
    stock = dict(conn.execute("SELECT sku, stock FROM products"))
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    latency = common.percentiles_sql(conn, "s", LATENCY)
    conn.close()
    huey_sync = ("OFF", "NORMAL", "FULL", "EXTRA")[
        huey.storage.conn.execute("PRAGMA synchronous").fetchone()[0]
    ]
    huey_journal = huey.storage.conn.execute("PRAGMA journal_mode").fetchone()[0]

    common.write_result(
        args,
        contender="huey",
        durability=(
            f"huey queue: SqliteHuey journal_mode={huey_journal} synchronous={huey_sync} "
            "(its defaults), a commit per enqueue and per dequeue (task deleted when taken: "
            "at most once); app db: WAL synchronous=FULL, one BEGIN IMMEDIATE transaction "
            "per state change"
        ),
        versions=common.versions("huey"),
        clock=clock,
        events=events,
        counts=counts,
        stock=stock,
        latency=latency,
        notes=(
            f"one task per order; consumer child process, {WORKERS} thread workers, "
            f"polling {CONSUMER['initial_delay']}-{CONSUMER['max_delay']} s when idle"
        ),
        pacer=pacer,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
