"""The delivery record's rules (pure), the Redis key helpers, and the SQLite schema v4:
a store from before deliveries gets them, and an enqueue that fails half-way leaves
neither rows nor a moved cursor."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from realorders.deliveries import (
    MAX_ERROR,
    MAX_EXCERPT,
    Delivery,
    DeliveryStatus,
    check_new,
    checked_outcome,
    error_text,
    excerpt_text,
)
from realorders.delivery import new_delivery, webhook_id
from realorders.engine.backends.distributed.deliveries import _key, _opt, _rank, _split
from realorders.engine.backends.sqlite.backend import SqliteBackend
from realorders.engine.backends.sqlite.deliveries import _WAKE, DUE
from realorders.engine.backends.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, connect
from realorders.webhooks import WebhookSecrets

T0 = 1_764_000_000.123456
PENDING, DELIVERED, FAILED = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED


# -- the record ----------------------------------------------------------------------------


def test_a_new_delivery_is_pending_due_at_once_with_its_webhook_id() -> None:
    d = new_delivery("we_000000000001", "A-1", 3, 42, T0)
    assert d == Delivery(
        endpoint_id="we_000000000001",
        order_id="A-1",
        seq=3,
        cursor=42,
        msg_id=webhook_id("we_000000000001", "A-1", 3),
        status=PENDING,
        attempts=0,
        next_at=T0,
        created_at=T0,
        updated_at=T0,
    )
    assert d.key == ("we_000000000001", "A-1", 3)
    assert not d.settled
    assert replace(d, status=FAILED).settled
    assert check_new(d) is d


def test_to_dict_is_the_machine_readable_record() -> None:
    d = replace(new_delivery("we_1", "A", 1, 7, T0), last_code=503, attempts=2)
    assert d.to_dict() == {
        "endpoint_id": "we_1",
        "order_id": "A",
        "seq": 1,
        "cursor": 7,
        "msg_id": d.msg_id,
        "status": "pending",
        "attempts": 2,
        "next_at": "2025-11-24T16:00:00.123Z",
        "created_at": "2025-11-24T16:00:00.123Z",
        "updated_at": "2025-11-24T16:00:00.123Z",
        "last_code": 503,
        "last_error": None,
        "last_latency_ms": None,
        "response_excerpt": None,
    }
    assert replace(d, status=DELIVERED, next_at=None).to_dict()["next_at"] is None


def test_only_a_pending_delivery_with_a_time_is_enqueued() -> None:
    d = new_delivery("we_1", "A", 1, 7, T0)
    for status in (DELIVERED, FAILED):
        with pytest.raises(ValueError, match=f"must be pending, not {status.value}"):
            check_new(replace(d, status=status))
    with pytest.raises(ValueError, match="needs next_at"):
        check_new(replace(d, next_at=None))


def test_an_outcome_drops_next_at_once_settled_and_bounds_its_texts() -> None:
    assert checked_outcome(PENDING, T0, None, None) == (PENDING, T0, None, None)
    assert checked_outcome(DELIVERED, T0, "", "ok") == (DELIVERED, None, "", "ok")
    assert checked_outcome(FAILED, None, "gone", None) == (FAILED, None, "gone", None)
    status, *_ = checked_outcome("failed", None, None, None)  # type: ignore[arg-type]
    assert status is FAILED
    with pytest.raises(ValueError, match="needs next_at"):
        checked_outcome(PENDING, None, None, None)
    with pytest.raises(ValueError, match="'lost' is not a valid DeliveryStatus"):
        checked_outcome("lost", None, None, None)  # type: ignore[arg-type]


def test_texts_are_cut_and_made_storable() -> None:
    assert error_text(None) is None
    assert error_text("x" * MAX_ERROR) == "x" * MAX_ERROR
    cut = error_text("é" * (MAX_ERROR + 1))
    assert cut == "é" * (MAX_ERROR - 1) + "…"
    assert excerpt_text(None) is None
    assert excerpt_text("") == ""
    assert excerpt_text("☃" * 1000) == "☃" * MAX_EXCERPT
    # a receiver's bytes decoded with surrogateescape: stored as U+FFFD, the rest as is
    raw = b"bad \xff byte".decode("utf-8", "surrogateescape")
    assert excerpt_text(raw) == "bad \ufffd byte"
    assert error_text(raw) == "bad \ufffd byte"
    stored = excerpt_text("\udcff" * 300)
    assert stored == "\ufffd" * MAX_EXCERPT
    assert stored.encode("utf-8")


# -- the Redis keys ------------------------------------------------------------------------


@pytest.mark.parametrize("order_id", ["A", "ordre n°2 ☃", "with spaces and a\ttab", "9", "-"])
def test_a_redis_key_splits_back_into_endpoint_order_and_seq(order_id: str) -> None:
    key = _key("we_000000000001", order_id, 12)
    assert _split(key) == ("we_000000000001", order_id, 12)
    assert _rank(42, key) == "00000000000000000042\0" + key
    assert _rank(42, key)[21:] == key


def test_redis_ranks_sort_by_cursor_then_key() -> None:
    ranked = [_rank(c, _key(e, "A", 1)) for c, e in [(10, "we_2"), (9, "we_3"), (10, "we_1")]]
    assert sorted(r.encode() for r in ranked) == [
        _rank(9, _key("we_3", "A", 1)).encode(),
        _rank(10, _key("we_1", "A", 1)).encode(),
        _rank(10, _key("we_2", "A", 1)).encode(),
    ]
    assert _rank(2**53, "k") > _rank(999, "k")


def test_redis_optional_values_keep_an_empty_text_apart_from_none() -> None:
    assert _opt(None) == ""
    assert _opt("") == "="
    assert _opt(T0) == f"={T0!r}"
    assert float(_opt(T0)[1:]) == T0
    assert _opt(503) == "=503"


# -- the SQLite schema ---------------------------------------------------------------------


def test_a_database_from_before_deliveries_gets_them_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    with closing(connect(path)) as conn:  # schema v3, as the release with webhooks left it
        for script in MIGRATIONS[:3]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 3")
        conn.execute(
            "INSERT INTO webhooks (endpoint_id, url, enabled, created_at, updated_at, secret) "
            "VALUES ('we_000000000001', 'https://a.example/', 1, 1.5, 1.5, 'whsec_a')"
        )
    for _ in range(2):  # idempotent: a second open changes nothing
        with closing(SqliteBackend(path, create=False)) as backend:
            found = backend.webhooks.get("we_000000000001")
            assert found is not None
            assert found[1] == WebhookSecrets("whsec_a")
            assert backend.deliveries.scan_cursor() == 0
            assert backend.deliveries.pending_count() == 0
    with closing(SqliteBackend(path, create=False)) as backend:
        d = new_delivery("we_000000000001", "A", 1, 5, T0)
        assert backend.deliveries.enqueue([d], 5) == 1
        assert backend.deliveries.due(T0, 10) == [d]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {
            "deliveries_ready",
            "deliveries_waiting",
            "deliveries_pending",
            "delivery_scan",
            "delivery_lease",
        } <= indexes


def test_a_failed_enqueue_leaves_neither_rows_nor_cursor(tmp_path: Path) -> None:
    with closing(SqliteBackend(tmp_path / "crash.db")) as backend:
        store = backend.deliveries
        store.enqueue([new_delivery("we_1", "A", 1, 1, T0)], 1)
        conn = backend.connection()
        # the cursor's update fails after the rows went in: the transaction takes both back
        conn.execute(
            "CREATE TRIGGER stop BEFORE UPDATE ON delivery_scan "
            "BEGIN SELECT RAISE(ABORT, 'crash between rows and cursor'); END"
        )
        batch = [new_delivery("we_1", order, 1, 2, T0) for order in ("B", "C")]
        with pytest.raises(sqlite3.IntegrityError, match="crash between rows and cursor"):
            store.enqueue(batch, 2)
        assert store.scan_cursor() == 1
        assert [d.order_id for d in store.history()] == ["A"]
        conn.execute("DROP TRIGGER stop")
        assert store.enqueue(batch, 2) == 2
        assert store.scan_cursor() == 2


def test_due_walks_the_heads_in_cursor_order(tmp_path: Path) -> None:
    with closing(SqliteBackend(tmp_path / "plan.db")) as backend:
        conn = backend.connection()
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {DUE}", (T0, 10)))
        assert "INDEX deliveries_ready" in plan, plan
        assert "TEMP B-TREE FOR ORDER BY" not in plan, plan  # walked in order, never sorted
        wake = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {_WAKE}", (T0,)))
        assert "INDEX deliveries_waiting (next_at<?)" in wake, wake  # only what became due


def test_a_v4_outbox_keeps_its_pending_deliveries_through_v5(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    with closing(connect(path)) as conn:
        for script in MIGRATIONS[:4]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 4")
        conn.execute(
            "INSERT INTO deliveries (endpoint_id, order_id, seq, cursor, msg_id, status, head, "
            "attempts, next_at, created_at, updated_at) "
            "VALUES ('we_1', 'A', 1, 7, 'msg_a', 'pending', 1, 2, ?1, ?1, ?1)",
            (T0,),
        )
        conn.commit()
    with closing(SqliteBackend(path, create=False)) as backend:
        (due,) = backend.deliveries.due(T0, 10)
        assert (due.key, due.attempts, due.cursor) == (("we_1", "A", 1), 2, 7)
