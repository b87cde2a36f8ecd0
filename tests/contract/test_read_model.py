"""EventLog and ReadModel contract: what readers see after the engine commits a batch.

The scenario commits two batches the way the engine would (events built with
``apply``, stock moved through the inventory port), then every query is
checked against it. ``check`` must find the result consistent on every backend.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from realorders.check import check
from realorders.domain import TERMINAL, LineItem, Order, Status, fold
from realorders.engine.ports import Backend, OrderFilter

S = Status

ORDERS = {
    "o1": Order("o1", "ada", (LineItem("A", 2),)),
    "o2": Order("o2", "bob", (LineItem("B", 9),), "call first"),
    "o3": Order("o3", "ada", (LineItem("ZZ", 1),)),
    "o4": Order("o4", "ada", (LineItem("A", 1), LineItem("B", 1))),
    "o5": Order("o5", "eve", (LineItem("B", 1),)),
    "o6": Order("o6", "bob", (LineItem("A", 1),)),
}
FINAL = {"o1": S.RESERVED, "o2": S.BACKORDERED, "o3": S.REJECTED, "o4": S.DELIVERED}
FINAL |= {"o5": S.SHIPPED, "o6": S.CANCELLED}
NEWEST_FIRST = ["o6", "o5", "o4", "o3", "o2", "o1"]


@pytest.fixture
def scenario(backend: Any, stock: Callable[..., None], timeline: Any) -> Any:
    stock("A", 5, price=10.0)
    stock("B", 3, price=1.5)
    results = backend.commands.append_orders(list(ORDERS.values()))
    assert [r.position for r in results] == [1, 2, 3, 4, 5, 6]
    backend.claim_engine()
    inventory = backend.inventory

    def reserve(order_id: str) -> None:
        (result,) = inventory.reserve_many([(order_id, ORDERS[order_id].items)])
        assert result.ok
        timeline.emit(order_id, S.RESERVED)

    def ship(order_id: str) -> None:
        timeline.emit(order_id, S.PACKED)
        inventory.consume(order_id, ORDERS[order_id].items)
        timeline.emit(order_id, S.SHIPPED)

    # batch 1: commands 1..3, read the way the engine reads them before committing
    assert [c.position for c in backend.commands.read(0, 3)] == [1, 2, 3]
    for order_id in ("o1", "o2", "o3"):
        timeline.submit(ORDERS[order_id])
    reserve("o1")
    timeline.emit("o2", S.BACKORDERED, {"reason": "out of stock: B needs 9, 3 available"})
    timeline.emit("o3", S.REJECTED, {"reason": "unknown product 'ZZ'"})
    timeline.commit(position=3)
    # batch 2: commands 4..6
    assert [c.position for c in backend.commands.read(3, 3)] == [4, 5, 6]
    for order_id in ("o4", "o5", "o6"):
        timeline.submit(ORDERS[order_id])
    reserve("o4")
    ship("o4")
    timeline.emit("o4", S.DELIVERED)
    reserve("o5")
    ship("o5")
    reserve("o6")
    inventory.release("o6", ORDERS["o6"].items)
    timeline.emit("o6", S.CANCELLED, {"reason": "customer asked"})
    timeline.commit(position=6)
    return backend


def ids(states: list[Any]) -> list[str]:
    return [s.id for s in states]


def test_the_scenario_passes_check(scenario: Any) -> None:
    report = check(scenario)
    assert report.ok, report.problems
    assert (report.orders, report.events) == (6, 2 + 2 + 2 + 5 + 4 + 3)


def test_get_is_the_fold_of_the_history(scenario: Any) -> None:
    for order_id, status in FINAL.items():
        state = scenario.orders.get(order_id)
        assert state is not None
        assert state.status is status
        folded = fold(scenario.events.history(order_id))
        assert folded is not None
        assert state.to_dict() == folded.to_dict()
        assert state.arrival == folded.arrival


def test_get_carries_the_submitted_content_priced(scenario: Any) -> None:
    state = scenario.orders.get("o4")
    assert state.customer_id == "ada"
    assert state.items == [
        {"product_id": "A", "quantity": 1, "price": 10.0},
        {"product_id": "B", "quantity": 1, "price": 1.5},
    ]
    assert state.total == 11.5
    assert (state.version, state.arrival) == (5, 4)
    assert state.terminal_at == state.updated_at
    unpriced = scenario.orders.get("o3")
    assert unpriced.total is None
    assert unpriced.items == [{"product_id": "ZZ", "quantity": 1, "price": None}]
    assert scenario.orders.get("o2").notes == "call first"


def test_reasons_and_terminal_times(scenario: Any) -> None:
    assert scenario.orders.get("o2").reason == "out of stock: B needs 9, 3 available"
    assert scenario.orders.get("o3").reason == "unknown product 'ZZ'"
    assert scenario.orders.get("o6").reason == "customer asked"
    assert scenario.orders.get("o1").reason is None
    for order_id, status in FINAL.items():
        state = scenario.orders.get(order_id)
        assert (state.terminal_at is not None) == (status in TERMINAL)


def test_get_unknown(scenario: Any) -> None:
    assert scenario.orders.get("nope") is None


def test_get_many_skips_unknown_ids(scenario: Any) -> None:
    found = scenario.orders.get_many(["o1", "nope", "o4"])
    assert set(found) == {"o1", "o4"}
    assert found["o4"].status is S.DELIVERED
    assert scenario.orders.get_many([]) == {}


def test_list_is_newest_first(scenario: Any) -> None:
    assert ids(scenario.orders.query(OrderFilter())) == NEWEST_FIRST
    assert ids(scenario.orders.query(OrderFilter(limit=None))) == NEWEST_FIRST
    assert ids(scenario.orders.query(OrderFilter(limit=2))) == ["o6", "o5"]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (OrderFilter(status=S.RESERVED), ["o1"]),
        (OrderFilter(status=S.PACKED), []),
        (OrderFilter(customer_id="ada"), ["o4", "o3", "o1"]),
        (OrderFilter(customer_id="ada", limit=2), ["o4", "o3"]),
        (OrderFilter(customer_id="bob", status=S.CANCELLED), ["o6"]),
        (OrderFilter(customer_id="nobody"), []),
        (OrderFilter(order_id_prefix="o"), NEWEST_FIRST),
        (OrderFilter(order_id_prefix="o5"), ["o5"]),
        (OrderFilter(order_id_prefix="x"), []),
        (OrderFilter(before="o4"), ["o3", "o2", "o1"]),
        (OrderFilter(before="o4", customer_id="ada"), ["o3", "o1"]),
        (OrderFilter(before="nope"), []),
        (OrderFilter(before_arrival=4), ["o3", "o2", "o1"]),
        (OrderFilter(before_arrival=4, limit=2), ["o3", "o2"]),
        (OrderFilter(before_arrival=4, customer_id="ada"), ["o3", "o1"]),
        (OrderFilter(before_arrival=6, status=S.SHIPPED), ["o5"]),
        (OrderFilter(before_arrival=5, status=S.SHIPPED), []),
        (OrderFilter(before_arrival=6, order_id_prefix="o"), NEWEST_FIRST[1:]),
        (OrderFilter(before_arrival=6, order_id_prefix="o", limit=2), ["o5", "o4"]),
        (OrderFilter(before_arrival=5, order_id_prefix="o6"), []),
        (OrderFilter(before_arrival=99), NEWEST_FIRST),
        (OrderFilter(before_arrival=1), []),
        (OrderFilter(before_arrival=5, before="o4"), ["o3", "o2", "o1"]),
        (OrderFilter(before_arrival=3, before="o5"), ["o2", "o1"]),
        (OrderFilter(before_arrival=3, before="nope"), []),
    ],
    ids=repr,
)
def test_list_filters(scenario: Any, flt: OrderFilter, expected: list[str]) -> None:
    assert ids(scenario.orders.query(flt)) == expected


@pytest.mark.parametrize("limit", [1, 2, 4])
@pytest.mark.parametrize(
    ("customer_id", "prefix"), [(None, None), ("ada", None), (None, "o")], ids=repr
)
def test_keyset_pages_by_arrival_list_each_order_once(
    scenario: Backend, limit: int, customer_id: str | None, prefix: str | None
) -> None:
    expected = ids(scenario.orders.query(OrderFilter(None, customer_id, prefix, None)))
    paged: list[str] = []
    below: int | None = None
    while page := scenario.orders.query(
        OrderFilter(None, customer_id, prefix, limit, before_arrival=below)
    ):
        assert len(page) <= limit
        paged += ids(page)
        below = page[-1].arrival
    assert paged == expected


def test_long_listings_are_read_whole_and_in_arrival_order(
    backend: Backend, stock: Callable[..., None], timeline: Any
) -> None:
    """More orders than one internal page of a backend (Redis reads an index 500 at a time)."""
    stock("A", 5)
    count = 1050
    backend.claim_engine()
    for i in range(1, count + 1):
        timeline.submit(Order(f"p{i:04}", "ada" if i % 3 == 0 else "bob", (LineItem("A", 1),)))
        if i % 2:
            timeline.emit(f"p{i:04}", S.REJECTED, {"reason": "test"})
    timeline.commit(position=count)
    newest = list(range(count, 0, -1))

    def arrivals(**options: Any) -> list[int]:
        return [s.arrival for s in backend.orders.query(OrderFilter(**options))]

    assert arrivals(limit=None) == newest
    assert arrivals(limit=None, status=S.PENDING, customer_id="ada") == [
        a for a in newest if a % 6 == 0
    ]
    assert (
        arrivals(limit=300, status=S.REJECTED, customer_id="bob", before_arrival=1001)
        == [a for a in newest if a < 1001 and a % 2 and a % 3][:300]
    )
    paged: list[int] = []
    below: int | None = None
    while page := arrivals(limit=400, before_arrival=below):
        paged += page
        below = page[-1]
    assert paged == newest


def test_history_is_in_seq_order(scenario: Any) -> None:
    history = scenario.events.history("o4")
    assert [e.seq for e in history] == [1, 2, 3, 4, 5]
    assert [e.status for e in history] == [S.PENDING, S.RESERVED, S.PACKED, S.SHIPPED, S.DELIVERED]
    assert [e.at for e in history] == sorted(e.at for e in history)
    assert history[0].data["customer_id"] == "ada"
    assert scenario.events.history("nope") == []


def test_tail_walks_every_event_in_commit_order(scenario: Any) -> None:
    everything = scenario.events.tail(0, 1000)
    cursors = [cursor for cursor, _ in everything]
    assert cursors == sorted(set(cursors))
    assert scenario.events.head() == cursors[-1]
    first_batch = {e.order_id for _, e in everything[:6]}
    assert first_batch == {"o1", "o2", "o3"}
    assert {e.order_id for _, e in everything[6:]} == {"o4", "o5", "o6"}
    # per order, the tail delivers events in seq order
    for order_id in ORDERS:
        seqs = [e.seq for _, e in everything if e.order_id == order_id]
        assert seqs == list(range(1, len(seqs) + 1))
    # paging from a cursor resumes exactly after it
    paged: list[Any] = []
    after = 0
    while page := scenario.events.tail(after, 4):
        assert len(page) <= 4
        paged += page
        after = page[-1][0]
    assert paged == everything
    assert scenario.events.tail(scenario.events.head(), 10) == []


def test_head_of_an_empty_log(backend: Any) -> None:
    assert backend.events.head() == 0
    assert backend.events.tail(0, 10) == []
    assert list(backend.events.scan()) == []


def test_scan_gives_each_order_its_whole_history(scenario: Any) -> None:
    groups = list(scenario.events.scan())
    assert sorted(g[0].order_id for g in groups) == sorted(ORDERS)
    for group in groups:
        assert {e.order_id for e in group} == {group[0].order_id}
        assert [e.seq for e in group] == list(range(1, len(group) + 1))
    assert sum(len(g) for g in groups) == len(scenario.events.tail(0, 1000))


def test_counts_name_every_status(scenario: Any) -> None:
    counts = scenario.orders.counts()
    assert set(counts) == {s.value for s in Status}
    assert counts == {s.value: (1 if s in FINAL.values() else 0) for s in Status}
    assert scenario.orders.count() == 6


def test_open_counts_are_the_non_terminal_part_of_counts(scenario: Any) -> None:
    counts = scenario.orders.counts()
    assert scenario.orders.open_counts() == {
        s.value: counts[s.value] for s in Status if s not in TERMINAL
    }


def test_open_counts_of_an_empty_store(backend: Any) -> None:
    assert backend.orders.open_counts() == {s.value: 0 for s in Status if s not in TERMINAL}


def test_stale_gives_open_orders_unchanged_longest_first(
    scenario: Any, timeline: Any, backend: Any
) -> None:
    o1 = backend.orders.get("o1")
    everything = timeline.now + 1
    assert ids(backend.orders.stale(S.RESERVED, everything, 10)) == ["o1"]
    assert ids(backend.orders.stale(S.BACKORDERED, everything, 10)) == ["o2"]
    # only what has waited since before the cut-off
    assert backend.orders.stale(S.RESERVED, o1.updated_at, 10) == []
    # terminal orders are never stuck
    assert backend.orders.stale(S.DELIVERED, everything, 10) == []
    # longest unchanged first, and the limit holds
    timeline.submit(Order("o7", "ada", (LineItem("A", 99),)))
    timeline.emit("o7", S.BACKORDERED, {"reason": "out of stock"})
    timeline.commit(position=7)
    assert ids(backend.orders.stale(S.BACKORDERED, timeline.now + 1, 10)) == ["o2", "o7"]
    assert ids(backend.orders.stale(S.BACKORDERED, timeline.now + 1, 1)) == ["o2"]
    # an order that moves on leaves the old state's list
    timeline.emit("o2", S.CANCELLED, {"reason": "gave up"})
    timeline.commit(position=8)
    assert ids(backend.orders.stale(S.BACKORDERED, timeline.now + 1, 10)) == ["o7"]


def test_backordered_in_arrival_order_and_by_product(
    scenario: Any, timeline: Any, backend: Any
) -> None:
    timeline.submit(Order("o7", "ada", (LineItem("A", 99),)))
    timeline.emit("o7", S.BACKORDERED, {"reason": "out of stock"})
    timeline.commit(position=6)
    assert ids(backend.orders.backordered(None, 0, 10)) == ["o2", "o7"]
    assert ids(backend.orders.backordered("B", 0, 10)) == ["o2"]
    assert ids(backend.orders.backordered("A", 0, 10)) == ["o7"]
    assert ids(backend.orders.backordered(None, 2, 10)) == ["o7"]
    assert ids(backend.orders.backordered(None, 0, 1)) == ["o2"]
    assert backend.orders.backordered("ZZ", 0, 10) == []


def test_in_flight_is_reserved_to_shipped_in_arrival_order(scenario: Any) -> None:
    assert ids(scenario.orders.in_flight()) == ["o1", "o5"]


def test_stats_keys_and_totals(scenario: Any) -> None:
    stats = scenario.orders.stats(60.0)
    assert set(stats) >= {
        "orders",
        "by_status",
        "in_flight",
        "finished",
        "throughput",
        "latency_seconds",
        "backlog",
    }
    assert set(stats["throughput"]) >= {
        "window_seconds",
        "orders_per_second",
        "events_per_second",
        "overall_orders_per_second",
    }
    assert set(stats["latency_seconds"]) >= {"p50", "p95", "p99", "max"}
    assert stats["orders"] == 6
    assert stats["finished"] == 3
    assert stats["in_flight"] == 3
    assert stats["by_status"] == scenario.orders.counts()
    assert stats["backlog"] == 0
    assert stats["latency_seconds"]["max"] > 0


def test_position_and_engine_info_after_commit(scenario: Any) -> None:
    assert scenario.position() == 6
    info = scenario.engine_info()
    assert (info.position, info.head, info.backlog) == (6, 6, 0)
    assert info.pid is not None  # claimed by the scenario
    scenario.release_engine()
    assert scenario.engine_info().pid is None


def test_a_later_commit_updates_the_row_in_place(scenario: Any, timeline: Any) -> None:
    scenario.inventory.restock("B", 10, 1.0)
    (result,) = scenario.inventory.reserve_many([("o2", ORDERS["o2"].items)])
    assert result.ok
    timeline.emit("o2", S.RESERVED)
    timeline.commit(position=6)
    state = scenario.orders.get("o2")
    assert (state.status, state.version, state.reason) == (S.RESERVED, 3, None)
    assert scenario.orders.count() == 6
    assert ids(scenario.orders.query(OrderFilter())) == NEWEST_FIRST  # arrival kept
    assert check(scenario).ok


def test_readers_get_copies(scenario: Any, timeline: Any) -> None:
    """The engine mutates the states it holds; what was committed must not move with them."""
    got = scenario.orders.get("o1")
    got.status = S.DELIVERED
    got.items.append({"product_id": "X", "quantity": 1, "price": None})
    assert scenario.orders.get("o1").status is S.RESERVED
    held = timeline.states["o1"]  # the very object that was committed
    held.status = S.PACKED
    held.version = 99
    assert scenario.orders.get("o1").status is S.RESERVED
    assert scenario.orders.get("o1").version == 2


def test_another_reader_sees_the_commits(scenario: Any, peer: Callable[[], Any]) -> None:
    assert scenario.position() == 6  # the engine's side: committed (waits for any in flight)
    other = peer()
    assert other.orders.get("o4").status is S.DELIVERED
    assert other.events.head() == scenario.events.head()
    assert other.position() == 6
    assert check(other).ok


def test_heartbeat_is_only_for_the_committed_position(scenario: Any) -> None:
    before = scenario.engine_info().heartbeat_at
    assert before is not None
    scenario.heartbeat(5)  # not the committed position: a stale engine must not look alive
    assert scenario.engine_info().heartbeat_at == before
    time.sleep(0.01)
    scenario.heartbeat(6)
    assert scenario.engine_info().heartbeat_at > before
