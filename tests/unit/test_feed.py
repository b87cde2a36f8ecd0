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
from realorders.engine.backends.sqlite.read import SqliteReadModel
from realorders.tui import feed as feed_module
from realorders.tui.feed import (
    DEFAULT_STUCK_AFTER,
    EngineState,
    Feed,
    ViewFilter,
    parse_duration,
    parse_stuck_after,
)
from realorders.tui.widgets import stuck_count

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
    assert feed.db is not None  # a SQLite store
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


# -- recounts ---------------------------------------------------------------------------


def test_counts_stay_exact_when_the_tail_is_too_long_to_read(
    feed: Feed, shop: Client, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More events than ``_MAX_TAIL`` between two polls: the feed recounts, and stays exact."""
    monkeypatch.setattr(feed_module, "_MAX_TAIL", 5)
    recounts = []
    counts = SqliteReadModel.counts

    def counting(self: SqliteReadModel) -> dict[str, int]:
        recounts.append(1)
        return counts(self)

    monkeypatch.setattr(SqliteReadModel, "counts", counting)
    for n in range(3):  # finished before the feed started: not "finished per second"
        submit(shop, f"old{n}")
    process(shop)

    frames = [feed.poll()]
    assert frames[0].counts == shop.backend.orders.counts()
    assert frames[0].counts["delivered"] == 3
    waiting = []
    for round_ in range(3):
        before = shop.backend.events.head()
        for n in range(4):
            submit(shop, f"c{round_}-{n}")
        waiting.append(submit(shop, f"w{round_}", "OUT-1"))  # backordered
        submit(shop, f"r{round_}", "NO-SUCH-SKU")  # rejected
        process(shop)
        assert shop.backend.events.head() - before > 5  # the tail is too long: a recount
        clock.offset += 1.0  # a new whole second: the throughput history takes a point
        recounted = len(recounts)
        frames.append(feed.poll())
        assert len(recounts) > recounted, round_
        assert frames[-1].counts == shop.backend.orders.counts(), round_
        assert frames[-1].head == shop.backend.events.head()

        # a short tail is still read event by event, and agrees with the recount
        shop.cancel(waiting.pop(0), "changed my mind")  # one event: backordered -> cancelled
        process(shop)
        recounted = len(recounts)
        frames.append(feed.poll())
        assert len(recounts) == recounted, round_
        assert frames[-1].counts == shop.backend.orders.counts(), round_

    counts_now = shop.backend.orders.counts()
    assert counts_now["delivered"] == 3 + 12
    assert counts_now["rejected"] == 3
    assert counts_now["cancelled"] == 3
    for frame in frames:
        assert frame.orders_per_second >= 0.0
        assert frame.events_per_second >= 0.0
        assert min(frame.throughput) >= 0.0
    # every order finished after the first poll is in the throughput history, once
    clock.offset += 1.0  # (the last cancellation's second has to end first)
    frames.append(feed.poll())
    assert sum(frames[-1].throughput) == pytest.approx(12 + 3 + 3)
    assert frames[-1].counts == counts_now


def replace_store(db: Path, orders: list[tuple[str, str]]) -> tuple[list[str], dict[str, int]]:
    """Delete the store's files and build another one at the same path; its ids and counts."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with Client(db) as client:
        client.add_product("MS-02", "Mouse", 24.5, 10)
        ids = [submit(client, customer, product) for customer, product in orders]
        process(client)
        return ids, client.backend.orders.counts()


def test_a_store_replaced_at_the_same_path_is_read_afresh(
    db: Path, shop: Client, clock: Clock
) -> None:
    """A new demo or a restore replaces the file: the feed follows the new one (its inode).

    The feed keeps the old file open, so the new one cannot reuse its inode. The
    first replacement has more events than the old store (reading its tail from the
    old cursor would count the wrong events), the second fewer.
    """
    submit(shop, "old", "KB-01")
    submit(shop, "stuck", "OUT-1")
    process(shop)
    shop.close()  # whoever wrote the old store is gone; the feed still has it open
    feed = Feed(db, window=100, clock=clock)
    try:
        first = feed.poll()
        assert first.counts["delivered"] == 1
        assert first.counts["backordered"] == 1
        stores = [
            [(f"c{n}", "MS-02") for n in range(8)] + [("x", "NO-SUCH-SKU")],  # more events
            [("ada", "MS-02"), ("bob", "OUT-1")],  # fewer events
        ]
        head = first.head
        for orders in stores:
            ids, expected = replace_store(db, orders)
            with Client(db, create=False) as check:
                new_head = check.backend.events.head()
            assert (new_head > head) == (orders is stores[0])
            for _ in range(2):  # the replacement is picked up, and then stays put
                clock.offset += 1.0
                frame = feed.poll()
                assert frame.problem is None
                assert frame.counts == expected
                assert frame.head == new_head
                assert [row.id for row in frame.orders] == ids[::-1]
                assert [level.product_id for level in frame.levels] == ["MS-02"]
                assert frame.orders_per_second >= 0.0
                assert frame.events_per_second >= 0.0
                assert min(frame.throughput) >= 0.0
            head = new_head
        assert expected["delivered"] == 1
        assert expected["rejected"] == 1  # "bob" wants a product this store does not have

        # the feed keeps following the new store
        with Client(db, create=False) as writer:
            later = submit(writer, "cy", "MS-02")
        frame = feed.poll()
        assert frame.orders[0].id == later
        assert frame.orders[0].queued
        assert frame.backlog == 1
    finally:
        feed.close()
    with Client(db, create=False) as check:  # closing the old connections harmed nothing
        assert check.backend.orders.counts() == expected
        assert check.get(later).queued
        assert [state.id for state in check.orders()] == ids[::-1]


# -- stuck ------------------------------------------------------------------------------


def test_queued_submissions_are_stuck_oldest_first(db: Path, shop: Client, clock: Clock) -> None:
    """No engine: submissions older than the pending limit are the longest-waiting orders."""
    ids = [submit(shop, f"c{n:02d}") for n in range(12)]
    feed = Feed(db, window=10, clock=clock)
    try:
        frame = feed.poll()
        assert frame.engine is EngineState.STOPPED
        assert frame.stuck == ()  # not waited long enough yet
        assert not frame.stuck_more

        clock.offset = DEFAULT_STUCK_AFTER[S.PENDING] + 1
        frame = feed.poll()
        assert [s.row.id for s in frame.stuck] == ids[:10]  # capped at the window
        assert frame.stuck_more
        assert stuck_count(frame) == "10+"
        for stuck in frame.stuck:
            assert stuck.row.queued
            assert stuck.row.status is S.PENDING
            assert stuck.row.total is None
            assert stuck.threshold == DEFAULT_STUCK_AFTER[S.PENDING]
        sinces = [s.row.since for s in frame.stuck]
        assert sinces == sorted(sinces)
        assert [s.row.customer_id for s in frame.stuck] == [f"c{n:02d}" for n in range(10)]
        with shop.snapshot():
            queued = {order.id: at for order, _, at in shop.queued(20)}
        assert sinces == [queued[oid] for oid in ids[:10]]

        # exactly as many stuck as the window holds: no "more"
        process(shop)  # the engine takes them all: nothing queued is left
        clock.offset = 0.0
        assert feed.poll().stuck == ()
        late = [submit(shop, f"d{n}") for n in range(10)]
        frame = feed.poll()  # the new ones have not waited long enough
        assert frame.stuck == ()
        clock.offset = DEFAULT_STUCK_AFTER[S.PENDING] + 1
        frame = feed.poll()
        assert [s.row.id for s in frame.stuck] == late
        assert not frame.stuck_more
        assert stuck_count(frame) == "10"
    finally:
        feed.close()


def test_stuck_mixes_queued_and_processed_orders_by_time_waited(
    db: Path, shop: Client, clock: Clock
) -> None:
    waiting = [submit(shop, f"w{n}", "OUT-1") for n in range(3)]
    process(shop)  # backordered first, so they have waited longest
    queued = [submit(shop, f"q{n:02d}") for n in range(9)]
    thresholds = parse_stuck_after("backordered=1s")
    feed = Feed(db, window=10, stuck_after=thresholds, clock=clock)
    try:
        clock.offset = 2.0  # past the backorder limit, not the pending one
        frame = feed.poll()
        assert [s.row.id for s in frame.stuck] == waiting
        assert not frame.stuck_more
        assert all(not s.row.queued and s.threshold == 1.0 for s in frame.stuck)

        clock.offset = thresholds[S.PENDING] + 1
        frame = feed.poll()
        assert len(queued) + len(waiting) > feed.window
        assert [s.row.id for s in frame.stuck] == [*waiting, *queued[:7]]
        assert frame.stuck_more
        assert [s.row.queued for s in frame.stuck] == [False] * 3 + [True] * 7
        assert [s.row.status for s in frame.stuck] == [S.BACKORDERED] * 3 + [S.PENDING] * 7
        sinces = [s.row.since for s in frame.stuck]
        assert sinces == sorted(sinces)
    finally:
        feed.close()
