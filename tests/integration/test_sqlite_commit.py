"""The engine's commit thread on SQLite: order, snapshots, read-your-writes, failure."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realorders.domain import Event, LineItem, Order, OrderState, Status, apply, pending_data
from realorders.engine.backends.sqlite.backend import SqliteBackend
from realorders.engine.backends.sqlite.commit import CommitWriter, encode, write
from realorders.engine.ports import Changes


def _pending(order_id: str, at: float, arrival: int, price: float | None = 2.5) -> Event:
    order = Order(order_id, "c1", (LineItem("A", 2),), "ünïcode note")
    prices = {} if price is None else {"A": price}  # no price: the event records None
    return Event(order_id, 1, Status.PENDING, at, pending_data(order, prices, at, arrival))


def _changes(position: int, *events: Event) -> Changes:
    changes = Changes(position=position)
    states: dict[str, OrderState] = {}
    for event in events:
        states[event.order_id] = apply(states.get(event.order_id), event)
        changes.events.append(event)
    changes.orders.update(states)
    return changes


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    SqliteBackend(path).close()
    return path


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_batches_commit_in_order_and_sync_waits_for_them(db: Path) -> None:
    writer = CommitWriter(db)
    try:
        for position in range(1, 21):
            order_id = f"O{position:03d}"
            at = 1_700_000_000.0 + position / 7
            writer.put(
                encode(
                    _changes(
                        position,
                        _pending(order_id, at, position),
                        Event(order_id, 2, Status.RESERVED, at + 0.1, None),
                    ),
                    [("A", 100, position * 2)],
                    [],
                )
            )
        writer.sync()
        # committed, and visible to any other connection
        assert _rows(db, "SELECT position FROM engine") == [(20,)]
        events = _rows(db, "SELECT cursor, order_id, seq, status FROM events ORDER BY cursor")
        assert [(e[1], e[2]) for e in events] == [
            (f"O{p:03d}", seq) for p in range(1, 21) for seq in (1, 2)
        ]
        assert _rows(db, "SELECT on_hand, reserved FROM stock WHERE product_id = 'A'") == [
            (100, 40)
        ]
    finally:
        writer.close()


def test_a_batch_is_a_snapshot_taken_when_encoded(db: Path) -> None:
    """The engine moves on at once: changing an order after handing it over changes nothing."""
    changes = _changes(1, _pending("O1", 10.0, 1))
    batch = encode(changes, [], [])
    state = changes.orders["O1"]
    apply(state, Event("O1", 2, Status.RESERVED, 11.0, None))  # the next batch's work
    write(sqlite3.connect(db, isolation_level=None), batch)
    assert _rows(db, "SELECT status, version FROM orders") == [("pending", 1)]


def test_the_first_failure_stops_the_writer_and_reaches_the_engine(db: Path) -> None:
    writer = CommitWriter(db)
    first = _changes(1, _pending("O1", 1.0, 1))
    writer.put(encode(first, [], []))
    writer.sync()
    writer.put(encode(_changes(2, _pending("O1", 2.0, 2)), [], []))  # seq 1 again: refused
    with pytest.raises(sqlite3.IntegrityError):
        writer.sync()
    with pytest.raises(sqlite3.IntegrityError):  # nothing more is taken
        writer.put(encode(_changes(3, _pending("O3", 3.0, 3)), [], []))
    writer.close()  # does not raise: the engine is already stopping with the error
    assert _rows(db, "SELECT position FROM engine") == [(1,)]
    assert _rows(db, "SELECT order_id FROM events") == [("O1",)]


def test_the_backend_reads_what_its_engine_handed_over(db: Path) -> None:
    backend = SqliteBackend(db)
    try:
        backend.claim_engine()
        for position in range(1, 51):
            backend.commit(_changes(position, _pending(f"O{position:03d}", 5.0, position)))
        # no wait in between: every read of engine-written state sees all 50
        assert backend.position() == 50
        assert len(backend.orders.get_many([f"O{p:03d}" for p in range(1, 51)])) == 50
        assert backend.events.head() == 50
    finally:
        backend.close()
    assert _rows(db, "SELECT count(*) FROM orders") == [(50,)]  # close committed everything


@settings(max_examples=40, deadline=None)
@given(
    at=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    price=st.one_of(st.none(), st.floats(min_value=0.01, max_value=1e6, allow_nan=False)),
)
def test_floats_and_text_come_back_exactly(
    tmp_path_factory: pytest.TempPathFactory, at: float, price: float | None
) -> None:
    db = tmp_path_factory.mktemp("floats") / "shop.db"
    backend = SqliteBackend(db)
    try:
        event = _pending("O1", at, 1, price)
        changes = _changes(1, event, Event("O1", 2, Status.BACKORDERED, at, {"reason": "none"}))
        backend.commit(changes)  # not claimed: written inline, by the same statements
        (state,) = backend.orders.get_many(["O1"]).values()
        assert state == changes.orders["O1"]
        assert backend.events.history("O1") == changes.events
    finally:
        backend.close()


def test_close_commits_what_was_handed_over(db: Path) -> None:
    writer = CommitWriter(db)
    started = time.monotonic()
    for position in range(1, 6):
        writer.put(encode(_changes(position, _pending(f"O{position}", 1.0, position)), [], []))
    writer.close()
    assert time.monotonic() - started < 30
    assert _rows(db, "SELECT count(*), max(position) FROM orders, engine") == [(5, 5)]
