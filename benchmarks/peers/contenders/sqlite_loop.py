"""The hand-rolled loop most teams write first: sqlite3, one transaction per state change.

Tables ``orders``, ``stock`` and ``events``. A submitter thread inserts each
order as ``pending`` (with its first event) on its own connection; the worker
(main thread, second connection) polls for new orders in arrival order and
walks each one through reserve-or-backorder → packed → shipped → delivered,
each step one ``BEGIN IMMEDIATE`` … ``COMMIT`` with its event row. The
reservation reads and decrements every line's stock inside the write
transaction, so it is all-or-nothing. ``synchronous=FULL`` in WAL: each commit
is fsynced, durable even against power loss.

The two threads take turns at writing through one ``threading.Lock``: left to
SQLite's busy handler, a writer that finds the database locked sleeps 1, 2,
5, … up to 100 ms before retrying, and at 1,000 orders/s that alone made the
loop's p99 latency 0.3-0.5 s (measured): the first thing a team would fix.

``run_loop`` is shared with ``sqlite_group.py`` (commit every 1,000 orders) and
``sqlite_loop_normal.py`` (``synchronous=NORMAL``, realorders' setting).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import workload

SCHEMA = """
CREATE TABLE orders (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    customer TEXT NOT NULL,
    lines TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE UNIQUE INDEX events_order_seq ON events(order_id, seq);
"""
# ~800-1,400 orders/s here: 1M orders would take 15-20 min; 10k and 100k show its per-order
# cost is flat (one fsync per state change).
MAX_N = 100_000
IDLE_SLEEP = 0.002  # the worker's poll interval when it has caught up with the submitter
PAGE = 1000  # orders read per poll
WRITE_LOCK = threading.Lock()  # one writer at a time, without the busy handler's sleeps
STAGES = (("packed", 3), ("shipped", 4), ("delivered", 5))


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA busy_timeout = 60000")
    return conn


class Worker:
    """Processes orders in arrival order; commits every ``commit_every`` orders (1: per change)."""

    def __init__(self, conn: sqlite3.Connection, commit_every: int) -> None:
        self.conn = conn
        self.commit_every = commit_every
        self.after = 0  # the last order (rowid) processed
        self.processed = 0

    def step(self) -> int:
        """Process the orders that arrived since the last step; how many."""
        conn = self.conn
        rows = conn.execute(
            "SELECT seq, id, lines FROM orders WHERE seq > ? ORDER BY seq LIMIT ?",
            (self.after, PAGE),
        ).fetchall()
        if not rows:
            return 0
        per_change = self.commit_every == 1
        for start in range(0, len(rows), self.commit_every):
            group = rows[start : start + self.commit_every]
            if not per_change:
                WRITE_LOCK.acquire()
                conn.execute("BEGIN IMMEDIATE")
            for seq, order_id, lines in group:
                self._process(seq, order_id, json.loads(lines), per_change)
            if not per_change:
                conn.execute("COMMIT")
                WRITE_LOCK.release()
            self.after = group[-1][0]
            self.processed += len(group)
        return len(rows)

    def _process(self, seq: int, order_id: str, lines: list[list], per_change: bool) -> None:
        conn = self.conn
        if per_change:
            WRITE_LOCK.acquire()
            conn.execute("BEGIN IMMEDIATE")
        ok = all(
            conn.execute("SELECT available FROM stock WHERE sku = ?", (sku,)).fetchone()[0] >= qty
            for sku, qty in lines
        )
        if ok:
            conn.executemany(
                "UPDATE stock SET available = available - ? WHERE sku = ?",
                [(qty, sku) for sku, qty in lines],
            )
        self._change(seq, order_id, "reserved" if ok else "backordered", 2)
        if per_change:
            conn.execute("COMMIT")
            WRITE_LOCK.release()
        if not ok:
            return
        for status, number in STAGES:
            if per_change:
                WRITE_LOCK.acquire()
                conn.execute("BEGIN IMMEDIATE")
            self._change(seq, order_id, status, number)
            if per_change:
                conn.execute("COMMIT")
                WRITE_LOCK.release()

    def _change(self, seq: int, order_id: str, status: str, number: int) -> None:
        now = time.time()
        self.conn.execute(
            "UPDATE orders SET status = ?, updated_at = ? WHERE seq = ?", (status, now, seq)
        )
        self.conn.execute(
            "INSERT INTO events (order_id, seq, status, at) VALUES (?, ?, ?, ?)",
            (order_id, number, status, now),
        )


def run_loop(name: str, commit_every: int, synchronous: str, durability: str) -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    path = args.dir / f"{name}.db"
    setup = connect(path, synchronous)
    setup.executescript(SCHEMA)
    stock = workload.stock_for(args.n, args.seed, args.products)
    setup.execute("BEGIN")
    setup.executemany("INSERT INTO stock VALUES (?, ?)", stock.items())
    setup.execute("COMMIT")
    setup.close()

    submit_conn = connect(path, synchronous)

    def submit(batch: list[workload.Order]) -> None:
        # One transaction per submit call: per order, or per 1,000 when grouping.
        now = time.time()
        WRITE_LOCK.acquire()
        submit_conn.execute("BEGIN IMMEDIATE")
        for order in batch:
            submit_conn.execute(
                "INSERT INTO orders (id, customer, lines, status, submitted_at, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?, ?)",
                (order.order_id, order.customer, json.dumps(order.lines), now, now),
            )
            submit_conn.execute(
                "INSERT INTO events (order_id, seq, status, at) VALUES (?, 1, 'pending', ?)",
                (order.order_id, now),
            )
        submit_conn.execute("COMMIT")
        WRITE_LOCK.release()

    clock = common.Clock()
    pacer = common.Pacer(args.rate, batch=commit_every)
    orders = workload.iter_orders(args.n, args.seed, args.products)
    failure: list[BaseException] = []

    def submitter() -> None:
        try:
            pacer.run(orders, submit)
        except BaseException as exc:  # surfaced by the main thread
            failure.append(exc)

    worker = Worker(connect(path, synchronous), commit_every)
    clock.start()
    thread = threading.Thread(target=submitter, name="submitter")
    thread.start()
    while worker.processed < args.n and not failure:
        if not worker.step():
            time.sleep(IDLE_SLEEP)
    clock.stop()
    thread.join()
    clock.stop_cpu()
    if failure:
        raise failure[0]
    submit_conn.close()
    worker.conn.close()

    conn = sqlite3.connect(path)
    write = {
        "counts": dict(conn.execute("SELECT status, count(*) FROM orders GROUP BY status")),
        "stock": dict(conn.execute("SELECT sku, available FROM stock")),
        "events": conn.execute("SELECT count(*) FROM events").fetchone()[0],
        "latency": common.percentiles_sql(conn, "updated_at - submitted_at", "orders"),
    }
    conn.close()
    common.write_result(
        args,
        contender=name,
        durability=durability,
        versions=common.versions(),
        clock=clock,
        pacer=pacer,
        notes=(
            f"submitter thread + worker thread on two connections, writing in turns (a lock); "
            f"worker polls every "
            f"{IDLE_SLEEP * 1000:g} ms when idle; latency = terminal updated_at - submitted_at"
        ),
        **write,
    )


if __name__ == "__main__":
    run_loop(
        "sqlite_loop",
        commit_every=1,
        synchronous="FULL",
        durability="SQLite synchronous=FULL, WAL, one transaction per state change",
    )
