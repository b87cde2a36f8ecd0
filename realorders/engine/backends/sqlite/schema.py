"""SQLite schema, its version and migrations, and the connection settings.

The version lives in ``PRAGMA user_version``; each migration is a script run
in one transaction, so a database is always at a whole version. Add a
migration by appending to ``MIGRATIONS``; never edit a released one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "WriteTx",
    "backorders_kept",
    "connect",
    "keep_backorders",
    "migrate",
    "select_in",
]

_V1 = """
CREATE TABLE commands (
    position INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    order_id TEXT,
    digest BLOB,
    body BLOB NOT NULL,
    at REAL NOT NULL
);
-- the intake's idempotency ledger: one submission per order id
CREATE UNIQUE INDEX commands_submit ON commands(order_id) WHERE kind = 'submit';
-- cancels already in the log win over a submission the engine has not reached yet
CREATE INDEX commands_cancel ON commands(order_id) WHERE kind = 'cancel';

CREATE TABLE events (
    cursor INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    at REAL NOT NULL,
    data BLOB
);
CREATE UNIQUE INDEX events_order_seq ON events(order_id, seq);

-- rowid = arrival (the submission's command position): newest-first listing and
-- FIFO backorders walk the table itself, no extra index to maintain per insert
CREATE TABLE orders (
    arrival INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    items BLOB NOT NULL,
    total REAL,
    notes TEXT,
    reason TEXT,
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    terminal_at REAL
);
-- only open orders: the engine and `list --status` ask for those; finished ones,
-- the vast majority, are found by walking arrival order (list --status delivered)
CREATE INDEX orders_open ON orders(status, arrival)
    WHERE status NOT IN ('delivered', 'rejected', 'cancelled');
CREATE INDEX orders_customer ON orders(customer_id, arrival);

CREATE TABLE products (
    product_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE stock (
    product_id TEXT PRIMARY KEY,
    on_hand INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- every change to on_hand other than shipping: what `check` balances stock against
CREATE TABLE stock_ledger (
    id INTEGER PRIMARY KEY,
    product_id TEXT NOT NULL,
    delta INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL
);

CREATE TABLE engine (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    pid INTEGER,
    started_at REAL,
    heartbeat_at REAL
);
INSERT INTO engine (id, position) VALUES (1, 0);
"""

# Bearer tokens of the HTTP server: the digest of the secret, never the secret. One
# active token per name (revoked ones keep theirs, for the audit trail); rowid = creation
# order, so the listing is oldest first without an index.
_V2 = """
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    token_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    digest TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_active_name ON tokens(name) WHERE revoked_at IS NULL;
"""

# Webhook endpoints. The secrets are kept as such (signing needs them, not a digest),
# in columns no listing reads; events: comma-separated statuses, NULL for every status.
# rowid = creation order, so the listing is oldest first without an index.
_V3 = """
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY,
    endpoint_id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    events TEXT,
    customer_id TEXT,
    description TEXT,
    enabled INTEGER NOT NULL,
    disabled_reason TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_until REAL
);
"""

# The outbox of webhook deliveries: one row per (endpoint, order, seq), the key, so an
# enqueue is idempotent by ON CONFLICT DO NOTHING. `head` = 1 marks an order's lowest
# pending seq per endpoint, the only delivery of the order that may be due; `due` walks
# the heads in cursor order in `deliveries_due` (next_at in it: no row is read until one
# is due), so neither a backlog nor the later events waiting behind a retry are scanned.
# Partial indexes hold only heads, pending or failed rows: delivered ones, the bulk of
# the table in time, are in the key and the history indexes alone. `delivery_scan`: the
# event-log cursor enqueued up to, moved in the same transaction as the rows it made.
_V4 = """
CREATE TABLE IF NOT EXISTS deliveries (
    endpoint_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    cursor INTEGER NOT NULL,
    msg_id TEXT NOT NULL,
    status TEXT NOT NULL,
    head INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL,
    next_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_code INTEGER,
    last_error TEXT,
    last_latency_ms REAL,
    response_excerpt TEXT,
    PRIMARY KEY (endpoint_id, order_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(cursor, next_at, head) WHERE head = 1;
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(endpoint_id, status)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_failed ON deliveries(endpoint_id, updated_at, status)
    WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS deliveries_recent ON deliveries(updated_at, cursor);
CREATE INDEX IF NOT EXISTS deliveries_endpoint ON deliveries(endpoint_id, updated_at, cursor);
CREATE INDEX IF NOT EXISTS deliveries_order ON deliveries(order_id);

CREATE TABLE IF NOT EXISTS delivery_scan (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor INTEGER NOT NULL
);
INSERT OR IGNORE INTO delivery_scan (id, cursor) VALUES (1, 0);
"""

# v5: heads split in two, like Redis's wait and ready sets: `ready` = 0 (waiting, in
# `deliveries_waiting` by next_at) or 1 (due, in `deliveries_ready` by cursor). `due` first
# moves the waiting heads whose time has come, then walks ready: it reads what it returns
# and what became due, never the heads held by a claim or a retry (v4's `deliveries_due`
# walked them all). And the deliverer's lease (one `notify` sends at a time).
_V5 = """
ALTER TABLE deliveries ADD COLUMN ready INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS deliveries_due;
CREATE INDEX IF NOT EXISTS deliveries_waiting ON deliveries(next_at)
    WHERE head = 1 AND ready = 0;
CREATE INDEX IF NOT EXISTS deliveries_ready ON deliveries(cursor, endpoint_id, order_id, seq)
    WHERE head = 1 AND ready = 1;
CREATE TABLE IF NOT EXISTS delivery_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    owner TEXT NOT NULL,
    until REAL NOT NULL
);
"""

# v6: how far each outside source (the bridge's Kafka topic partitions) has been taken in,
# written in the same transaction as the submissions it brought, and which orders came
# that way (the bridge does not publish them back to where they came from).
_V6 = """
CREATE TABLE IF NOT EXISTS source_offsets (
    source TEXT NOT NULL,
    part TEXT NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (source, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sourced_orders (
    order_id TEXT PRIMARY KEY,
    source TEXT NOT NULL
) WITHOUT ROWID;
"""

# v7: backordered orders by product, so that a restock finds the orders waiting for it
# in arrival order without reading every backorder's items (v6 ran json_each over all of
# them for each page of a wake: seconds with a million orders waiting); the same job as the
# Redis read model's bo:<product> sets. Kept by triggers on `orders`, inside the commit
# that changes the status, so whatever writes an order keeps it true. Every line's product
# is listed, not only the short ones: stock of any of them may be what was missing.
# Kept only once a store has a use for them (`backorders_kept`, switched on with the first
# restock, stock level, cancel or wake appended: keep_backorders): a shop that never restocks
# pays nothing per backorder (measured: 0.36 s of the writer thread's 2.5 s for 100k
# orders, 63% of them backordered); until then a wake reads the orders themselves.
_V7 = """
CREATE TABLE IF NOT EXISTS backorders (
    product_id TEXT NOT NULL,
    arrival INTEGER NOT NULL,
    PRIMARY KEY (product_id, arrival)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS backorders_kept (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    kept INTEGER NOT NULL
);
INSERT OR IGNORE INTO backorders_kept (id, kept) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS backorders_made AFTER INSERT ON orders
    WHEN new.status = 'backordered' AND (SELECT kept FROM backorders_kept)
BEGIN
    INSERT OR IGNORE INTO backorders (product_id, arrival)
        SELECT value ->> 'product_id', new.arrival FROM json_each(new.items);
END;
CREATE TRIGGER IF NOT EXISTS backorders_moved AFTER UPDATE OF status ON orders
    WHEN (old.status = 'backordered') != (new.status = 'backordered')
        AND (SELECT kept FROM backorders_kept)
BEGIN
    DELETE FROM backorders WHERE old.status = 'backordered' AND arrival = old.arrival
        AND product_id IN (SELECT value ->> 'product_id' FROM json_each(old.items));
    INSERT OR IGNORE INTO backorders (product_id, arrival)
        SELECT value ->> 'product_id', new.arrival FROM json_each(new.items)
        WHERE new.status = 'backordered';
END;
"""


def keep_backorders(conn: sqlite3.Connection) -> None:
    """Start keeping the waiting lists (v7), inside the caller's write transaction.

    The switch, then the lists of the orders waiting now; the triggers keep
    them from this commit on. A no-op once they are kept.
    """
    if conn.execute("UPDATE backorders_kept SET kept = 1 WHERE kept = 0").rowcount:
        conn.execute(
            "INSERT OR IGNORE INTO backorders (product_id, arrival) "
            "SELECT j.value ->> 'product_id', o.arrival FROM orders o, json_each(o.items) j "
            "WHERE o.status = 'backordered'"
        )


def backorders_kept(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT kept FROM backorders_kept").fetchone()[0])


MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5, _V6, _V7]
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open with the settings every realorders process shares.

    WAL lets readers (``watch``, ``list``) run beside the one writer at a time;
    a long busy timeout plus ``BEGIN IMMEDIATE`` for every write means
    concurrent ``import``/``run``/``cancel`` wait their turn instead of
    failing with "database is locked". ``synchronous=NORMAL`` in WAL mode
    keeps every commit atomic and consistent after a crash of the process;
    only an OS crash or power loss may lose the last commits.
    """
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 60000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA cache_size = -16384")  # 16 MiB: bounded memory, measured no slower
    return conn


def current_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; safe to call on every start."""
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        from realorders.errors import RealordersError

        raise RealordersError(
            f"database schema version {version} is newer than this realorders "
            f"understands ({SCHEMA_VERSION}); upgrade realorders"
        )
    while version < SCHEMA_VERSION:
        script = MIGRATIONS[version]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if current_version(conn) == version:  # another process may have migrated meanwhile
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = current_version(conn)
    return version


def _statements(script: str) -> list[str]:
    """Split a migration into statements (a trigger's body keeps its own ';')."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    statements: list[str] = []
    pending = ""
    for part in "\n".join(lines).split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        statements.append(pending.strip())
    return statements


class WriteTx:
    """``with WriteTx(conn):`` — a write transaction that waits its turn instead of failing."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def select_in(
    conn: sqlite3.Connection, sql: str, keys: Iterable[str], chunk: int = 500
) -> Iterator[Any]:
    """Rows of ``sql`` for every key, its ``{marks}`` an ``IN`` list filled in chunks.

    SQLite caps bound parameters per statement, and a batch may ask about
    thousands of ids: the same chunked query everywhere, written once.
    """
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), chunk):
        part = unique[start : start + chunk]
        yield from conn.execute(sql.format(marks=",".join("?" * len(part))), part)
