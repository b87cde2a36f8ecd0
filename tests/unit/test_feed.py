"""The dashboard's data feed (:mod:`realorders.tui.feed`) against a real SQLite store.

No Textual here: the engine runs in-process (``Client.run(until_idle=True)``)
between polls, and every figure a :class:`Frame` carries is checked against a
fresh read of the store.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from realorders import Client, LineItem
from realorders.domain import Status
from realorders.tui.feed import (
    DEFAULT_STUCK_AFTER,
    EngineState,
    Feed,
    ViewFilter,
    parse_duration,
    parse_stuck_after,
)

S = Status


class Clock:
    """Wall-clock time plus an offset the test moves forward (the engine stamps real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "x.db"


@pytest.fixture
def shop(db: Path) -> Iterator[Client]:
    """A store with one product in stock and one sold out."""
    with Client(db) as client:
        client.add_product("KB-01", "Keyboard", 89.0, 1000)
        client.add_product("OUT-1", "Sold out", 10.0, 0)
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def feed(db: Path, shop: Client, clock: Clock) -> Iterator[Feed]:
    source = Feed(db, window=100, clock=clock)
    yield source
    source.close()


def submit(client: Client, customer: str, product: str = "KB-01", quantity: int = 1) -> str:
    return client.submit(customer_id=customer, items=[LineItem(product, quantity)]).order_id


def process(client: Client) -> None:
    client.run(until_idle=True, handle_signals=False)


# -- ViewFilter -------------------------------------------------------------------


def test_filter_parse_empty_is_no_filter() -> None:
    assert ViewFilter.parse("") == ViewFilter()
    assert ViewFilter.parse("   ").describe() == ""


@pytest.mark.parametrize("word", ["backordered", "Backordered", "BACKORDERED"])
def test_filter_parse_bare_status_word(word: str) -> None:
    assert ViewFilter.parse(word) == ViewFilter(status=S.BACKORDERED)


def test_filter_parse_terms() -> None:
    parsed = ViewFilter.parse("status:Reserved customer:ada id:01AB")
    assert parsed == ViewFilter(status=S.RESERVED, customer_id="ada", id_prefix="01AB")
    assert parsed.describe() == "status:reserved customer:ada id:01AB"
    # the short keys, and the key itself is case-insensitive
    assert ViewFilter.parse("S:delivered C:bob order:X") == ViewFilter(
        status=S.DELIVERED, customer_id="bob", id_prefix="X"
    )


def test_filter_parse_free_word() -> None:
    parsed = ViewFilter.parse("ada")
    assert parsed == ViewFilter(word="ada")
    assert parsed.describe() == "ada"
    assert ViewFilter.parse("status:packed ada").describe() == "status:packed ada"


@pytest.mark.parametrize("text", ["status:lost", "s:", "status:deliver"])
def test_filter_parse_unknown_status(text: str) -> None:
    with pytest.raises(ValueError, match="unknown status"):
        ViewFilter.parse(text)


# -- durations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), (" 2M ", 120.0), ("0.5", 0.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "abc", "5d", "1.2.3s"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["0", "0s", "-5m"])
def test_parse_duration_must_be_positive(text: str) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        parse_duration(text)


@pytest.mark.parametrize("spec", [None, "", " , "])
def test_parse_stuck_after_defaults(spec: str | None) -> None:
    thresholds = parse_stuck_after(spec)
    assert thresholds == DEFAULT_STUCK_AFTER
    assert thresholds is not DEFAULT_STUCK_AFTER  # a copy: callers may change it


def test_parse_stuck_after_overrides() -> None:
    thresholds = parse_stuck_after("backordered=10m, Reserved=30s")
    assert thresholds == {**DEFAULT_STUCK_AFTER, S.BACKORDERED: 600.0, S.RESERVED: 30.0}
    assert DEFAULT_STUCK_AFTER[S.BACKORDERED] == 900.0  # the defaults are untouched


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lost=5m", "unknown state 'lost'"),
        ("delivered=5m", "non-terminal state"),
        ("reserved", "expected STATE=DURATION"),
        ("reserved=soon", "is not a duration"),
        ("reserved=0", "must be positive"),
    ],
)
def test_parse_stuck_after_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_stuck_after(spec)


# -- Feed.poll --------------------------------------------------------------------------


def test_missing_database_is_unreachable_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.db"
    feed = Feed(path)
    try:
        for _ in range(2):  # it keeps retrying without creating anything
            frame = feed.poll()
            assert frame.engine is EngineState.UNREACHABLE
            assert frame.problem is not None
            assert "realorders init" in frame.problem
            assert str(path) in frame.problem
            assert not frame.empty  # a problem is not an empty store
            assert frame.orders == ()
            assert not path.exists()
    finally:
        feed.close()
    assert list(tmp_path.iterdir()) == []


def test_database_that_appears_later_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    feed = Feed(path)
    try:
        assert feed.poll().engine is EngineState.UNREACHABLE
        Client(path).close()
        frame = feed.poll()
        assert frame.problem is None
        assert frame.engine is EngineState.STOPPED
        assert frame.empty
    finally:
        feed.close()


def test_empty_store(feed: Feed, db: Path) -> None:
    frame = feed.poll()
    assert frame.problem is None
    assert frame.empty
    assert frame.engine is EngineState.STOPPED
    assert frame.engine_pid is None
    assert frame.backlog == 0
    assert frame.orders == ()
    assert frame.stuck == ()
    assert frame.in_flight == 0
    assert frame.store == str(db)
    assert [level.product_id for level in frame.levels] == ["KB-01", "OUT-1"]


def test_queued_orders_show_while_the_engine_is_stopped(feed: Feed, shop: Client) -> None:
    ids = [submit(shop, "ada"), submit(shop, "bob"), submit(shop, "cy")]
    frame = feed.poll()
    assert frame.engine is EngineState.STOPPED
    assert frame.backlog == 3
    assert not frame.empty
    assert [row.id for row in frame.orders] == ids[::-1]  # newest first
    assert all(row.queued and row.status is S.PENDING for row in frame.orders)
    assert all(row.total is None for row in frame.orders)
    assert [row.customer_id for row in frame.orders] == ["cy", "bob", "ada"]
    assert sum(frame.counts.values()) == 0  # nothing processed yet

    process(shop)
    frame = feed.poll()
    assert frame.backlog == 0
    assert [row.id for row in frame.orders] == ids[::-1]
    assert not any(row.queued for row in frame.orders)
    assert {row.status for row in frame.orders} == {S.DELIVERED}
    assert all(row.total == 89.0 for row in frame.orders)


def test_counts_follow_the_store_across_polls(feed: Feed, shop: Client) -> None:
    """Terminal totals are counted once, then advanced from the event tail."""
    first = feed.poll()
    assert first.counts == shop.backend.orders.counts()
    waiting: list[str] = []
    for round_ in range(4):
        for n in range(3):
            submit(shop, f"c{round_}-{n}")
        waiting.append(submit(shop, f"w{round_}", "OUT-1"))  # backordered
        submit(shop, f"r{round_}", "NO-SUCH-SKU")  # rejected
        if round_ % 2:
            shop.cancel(waiting.pop(0), "changed my mind")  # a backordered one: cancelled
        process(shop)
        frame = feed.poll()
        assert frame.counts == shop.backend.orders.counts(), round_
        assert frame.backlog == 0
        feed.poll()  # a poll without news changes nothing
        assert feed.poll().counts == shop.backend.orders.counts()

    counts = shop.backend.orders.counts()
    assert counts["delivered"] == 12
    assert counts["rejected"] == 4
    assert counts["cancelled"] == 2
    assert counts["backordered"] == 2
    assert feed.poll().in_flight == 2

    # a feed started on a busy store counts the same
    fresh = Feed(feed.db)
    try:
        assert fresh.poll().counts == counts
    finally:
        fresh.close()


def test_filter_limits_rows(feed: Feed, shop: Client) -> None:
    ada = [submit(shop, "ada"), submit(shop, "ada")]
    bob = submit(shop, "bob", "OUT-1")
    process(shop)
    queued = submit(shop, "ada")  # after the engine ran: still queued

    feed.filter = ViewFilter.parse("customer:ada")
    assert [row.id for row in feed.poll().orders] == [queued, *ada[::-1]]

    feed.filter = ViewFilter.parse("backordered")
    rows = feed.poll().orders
    assert [(row.id, row.status) for row in rows] == [(bob, S.BACKORDERED)]

    feed.filter = ViewFilter.parse("status:delivered")
    rows = feed.poll().orders
    assert [row.id for row in rows] == ada[::-1]  # the queued order is not delivered
    assert {row.status for row in rows} == {S.DELIVERED}

    feed.filter = ViewFilter.parse("status:pending customer:ada")
    rows = feed.poll().orders
    assert [(row.id, row.queued) for row in rows] == [(queued, True)]

    feed.filter = ViewFilter.parse(f"id:{bob}")
    assert [row.id for row in feed.poll().orders] == [bob]

    feed.filter = ViewFilter.parse("bob")  # a word: customer or id prefix
    assert [row.id for row in feed.poll().orders] == [bob]
    feed.filter = ViewFilter.parse(ada[0])
    assert [row.id for row in feed.poll().orders] == [ada[0]]

    feed.filter = ViewFilter.parse("customer:nobody")
    frame = feed.poll()
    assert frame.orders == ()
    assert not frame.empty  # the store has orders, the filter shows none

    feed.filter = ViewFilter()
    assert len(feed.poll().orders) == 4


def test_window_caps_rows(db: Path, shop: Client) -> None:
    ids = [submit(shop, f"c{n}") for n in range(5)]
    process(shop)
    more = [submit(shop, f"q{n}") for n in range(2)]
    feed = Feed(db, window=3)
    try:
        frame = feed.poll()
        assert [row.id for row in frame.orders] == [*more[::-1], ids[-1]]
        assert [row.queued for row in frame.orders] == [True, True, False]
    finally:
        feed.close()


def test_stuck_orders_with_tiny_thresholds(db: Path, shop: Client, clock: Clock) -> None:
    late = submit(shop, "ada", "OUT-1")
    submit(shop, "bob")  # delivered: never stuck
    process(shop)

    default = Feed(db, clock=clock)
    tiny = Feed(db, stuck_after=parse_stuck_after("backordered=0.01s"), clock=clock)
    try:
        assert default.poll().stuck == ()
        clock.offset = 0.05  # the order has waited longer than 0.01 s
        assert default.poll().stuck == ()
        frame = tiny.poll()
        assert [(s.row.id, s.row.status, s.threshold) for s in frame.stuck] == [
            (late, S.BACKORDERED, 0.01)
        ]
        clock.offset = DEFAULT_STUCK_AFTER[S.BACKORDERED] + 1  # the default limit is passed too
        assert [s.row.id for s in default.poll().stuck] == [late]

        shop.restock("OUT-1", 5)  # woken and delivered: no longer stuck
        process(shop)
        assert shop.get(late).status is S.DELIVERED
        assert tiny.poll().stuck == ()
    finally:
        default.close()
        tiny.close()


def test_latency_and_rates_after_orders_finish_between_polls(feed: Feed, shop: Client) -> None:
    before = feed.poll()
    assert before.latency_p50 is None
    assert before.latency_p95 is None
    assert before.events_per_second == 0.0

    for n in range(20):
        submit(shop, f"c{n}")
    process(shop)
    frame = feed.poll()
    assert frame.latency_p50 is not None
    assert frame.latency_p95 is not None
    assert 0.0 <= frame.latency_p50 <= frame.latency_p95
    assert frame.latency_p95 < 60.0
    assert frame.events_per_second > 0
    assert frame.orders_per_second > 0
    assert frame.head > before.head
    assert frame.head == shop.backend.events.head()
    assert frame.newest_event_at is not None
    assert frame.engine is EngineState.STOPPED  # the in-process engine has returned


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    feed = Feed(path)
    try:
        frame = feed.poll()
        assert frame.engine is EngineState.UNREACHABLE
        assert frame.problem is not None
        assert "not a realorders database" in frame.problem
        assert "realorders init" not in frame.problem  # the file exists
    finally:
        feed.close()
