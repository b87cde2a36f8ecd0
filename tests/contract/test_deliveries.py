"""DeliveryStore contract: the outbox of webhook deliveries.

Enqueued once per (endpoint, order, seq) together with the scan cursor; due oldest cursor
first, an order's later event only once its earlier one is settled (per endpoint); every
attempt's outcome kept (retries, delivered, failed); counts, history newest first, replays
and forgetting an endpoint; every handle on the store sees each write at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest

from realorders.deliveries import MAX_ERROR, MAX_EXCERPT, Delivery, DeliveryStatus, Recorded
from realorders.delivery import new_delivery, webhook_id
from realorders.engine.ports import Backend, DeliveryStore

#: epoch seconds with microseconds: times must come back exactly as stored
T0 = 1_764_000_000.123456
E1 = "we_000000000001"
E2 = "we_000000000002"
PENDING, DELIVERED, FAILED = DeliveryStatus.PENDING, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED


def owed(endpoint_id: str, order_id: str, seq: int, cursor: int, at: float = T0) -> Delivery:
    return new_delivery(endpoint_id, order_id, seq, cursor, at)


def attempt(
    store: DeliveryStore,
    d: Delivery,
    status: DeliveryStatus,
    at: float,
    *,
    next_at: float | None = None,
    code: int | None = None,
    error: str | None = None,
    latency: float | None = None,
    excerpt: str | None = None,
    attempts: int | None = None,
) -> bool:
    """Record one more attempt of ``d`` (as the deliverer will)."""
    return store.record(
        d.endpoint_id,
        d.order_id,
        d.seq,
        status=status,
        attempts=d.attempts + 1 if attempts is None else attempts,
        next_at=next_at,
        last_code=code,
        last_error=error,
        last_latency_ms=latency,
        response_excerpt=excerpt,
        at=at,
    )


def keys(deliveries: Sequence[Delivery]) -> list[tuple[str, str, int]]:
    return [d.key for d in deliveries]


def one(store: DeliveryStore, endpoint_id: str, order_id: str, seq: int) -> Delivery:
    (found,) = [d for d in store.history(endpoint_id, order_id=order_id) if d.seq == seq]
    return found


def test_a_new_store_owes_nothing(backend: Backend) -> None:
    store = backend.deliveries
    assert store.scan_cursor() == 0
    assert store.due(T0 + 1e6, 100) == []
    assert (store.pending_count(), store.failed_count()) == (0, 0)
    assert (store.pending_count(E1), store.failed_count(E1)) == (0, 0)
    assert store.history() == []
    assert store.history(E1, order_id="A", failed_only=True) == []
    assert store.requeue(E1, now=T0) == 0
    assert store.forget_endpoint(E1) == 0
    assert attempt(store, owed(E1, "A", 1, 1), DELIVERED, T0) is False
    assert store.history() == []


def test_a_delivery_comes_back_exactly(backend: Backend) -> None:
    store = backend.deliveries
    made = [
        owed(E1, "A-1", 1, 7),
        owed(E2, "A-1", 1, 7, T0 + 0.000001),
        owed(E1, "ordre ☃ n°2, with spaces", 3, 9, T0 + 2.5),
    ]
    assert store.enqueue(made, 9) == 3
    assert store.scan_cursor() == 9
    assert made[0].msg_id == webhook_id(E1, "A-1", 1)
    assert sorted(store.history(), key=lambda d: d.key) == sorted(made, key=lambda d: d.key)
    assert store.due(T0 + 3, 10) == [made[0], made[1], made[2]]


def test_enqueue_is_idempotent_per_endpoint_order_and_seq(backend: Backend) -> None:
    store = backend.deliveries
    first = owed(E1, "A", 1, 1)
    assert store.enqueue([first, owed(E1, "A", 2, 2)], 2) == 2
    assert attempt(store, first, DELIVERED, T0 + 1, code=200)
    settled = one(store, E1, "A", 1)
    # the same event again (a rescan after a crash): no double, and no reset of its outcome
    again = [owed(E1, "A", 1, 1, T0 + 5), owed(E1, "A", 2, 2, T0 + 5), owed(E1, "A", 3, 3)]
    assert store.enqueue([*again, again[2]], 3) == 1
    assert one(store, E1, "A", 1) == settled
    assert one(store, E1, "A", 2) == owed(E1, "A", 2, 2)
    assert store.pending_count() == 2
    assert len(store.history()) == 3


def test_the_scan_cursor_moves_with_the_rows_and_only_forward(backend: Backend) -> None:
    store = backend.deliveries
    assert store.enqueue([], 40) == 0  # events no endpoint wants still move the scan on
    assert store.scan_cursor() == 40
    assert store.enqueue([owed(E1, "A", 1, 41)], 41) == 1
    assert store.scan_cursor() == 41
    assert store.enqueue([owed(E1, "A", 1, 41)], 12) == 0  # a slower scanner's late batch
    assert store.scan_cursor() == 41


def test_a_refused_batch_changes_nothing(backend: Backend) -> None:
    store = backend.deliveries
    store.enqueue([owed(E1, "A", 1, 1)], 1)
    done = replace(owed(E1, "B", 1, 2), status=DELIVERED, next_at=None)
    with pytest.raises(ValueError, match="must be pending"):
        store.enqueue([owed(E1, "C", 1, 3), done], 3)
    with pytest.raises(ValueError, match="next_at"):
        store.enqueue([replace(owed(E1, "C", 1, 3), next_at=None)], 3)
    assert store.scan_cursor() == 1
    assert keys(store.history()) == [(E1, "A", 1)]


def test_a_reader_never_sees_the_cursor_ahead_of_its_deliveries(
    backend: Backend, peer: Callable[[], Backend]
) -> None:
    if backend.name == "memory":
        pytest.skip("one process, one thread: the fake has no interleaving to show")
    reader = peer().deliveries
    batches = [[owed(E1, f"o{b}-{i}", 1, b * 100 + i) for i in range(100)] for b in range(1, 11)]
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            cursor = reader.scan_cursor()
            seen.append((cursor, reader.pending_count()))

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        for b, batch in enumerate(batches, start=1):
            assert backend.deliveries.enqueue(batch, b * 100 + 99) == 100
    finally:
        stop.set()
        thread.join(60)
    assert seen
    for cursor, pending in seen:  # the rows of every batch up to the cursor are there
        assert pending >= (cursor // 100) * 100, (cursor, pending)


def test_due_is_oldest_cursor_first_and_honours_next_at(backend: Backend) -> None:
    store = backend.deliveries
    later = replace(owed(E1, "C", 1, 1), next_at=T0 + 60)
    store.enqueue(
        [owed(E2, "B", 1, 5), owed(E1, "B", 1, 5), later, owed(E1, "A", 1, 3, T0 + 10)], 5
    )
    assert keys(store.due(T0, 10)) == [(E1, "B", 1), (E2, "B", 1)]  # A is due at T0 + 10
    assert keys(store.due(T0 + 10, 10)) == [(E1, "A", 1), (E1, "B", 1), (E2, "B", 1)]
    assert keys(store.due(T0 + 10, 2)) == [(E1, "A", 1), (E1, "B", 1)]
    assert keys(store.due(T0 + 60, 10)) == [(E1, "C", 1), (E1, "A", 1), (E1, "B", 1), (E2, "B", 1)]
    assert store.due(T0 + 60, 0) == []
    # asking with an earlier clock (another process) is answered by that clock
    assert keys(store.due(T0 + 10, 10)) == [(E1, "A", 1), (E1, "B", 1), (E2, "B", 1)]
    assert store.due(T0 - 1, 10) == []


def test_an_orders_later_event_waits_for_its_earlier_one(backend: Backend) -> None:
    store = backend.deliveries
    a = [owed(E1, "A", seq, seq * 10) for seq in (1, 2, 3)]
    store.enqueue([*a, owed(E2, "A", 1, 10), owed(E2, "A", 2, 20), owed(E1, "B", 1, 15)], 30)
    assert keys(store.due(T0, 10)) == [(E1, "A", 1), (E2, "A", 1), (E1, "B", 1)]
    # a retry holds back the order's next event on that endpoint only
    assert attempt(store, a[0], PENDING, T0 + 1, next_at=T0 + 300, code=503)
    assert attempt(store, owed(E2, "A", 1, 10), DELIVERED, T0 + 1, code=204)
    assert keys(store.due(T0 + 299, 10)) == [(E1, "B", 1), (E2, "A", 2)]
    assert keys(store.due(T0 + 300, 10)) == [(E1, "A", 1), (E1, "B", 1), (E2, "A", 2)]
    retried = one(store, E1, "A", 1)
    assert (retried.attempts, retried.next_at) == (1, T0 + 300)
    # delivered settles it; so does failed
    assert attempt(store, retried, DELIVERED, T0 + 301, code=200)
    assert keys(store.due(T0 + 301, 10)) == [(E1, "B", 1), (E1, "A", 2), (E2, "A", 2)]
    assert attempt(store, a[1], FAILED, T0 + 302, code=500)
    assert keys(store.due(T0 + 302, 10)) == [(E1, "B", 1), (E2, "A", 2), (E1, "A", 3)]
    # an order's next event due later than now keeps it back, not the others
    assert attempt(store, a[2], PENDING, T0 + 303, next_at=T0 + 900)
    assert keys(store.due(T0 + 303, 10)) == [(E1, "B", 1), (E2, "A", 2)]


def test_an_outcome_is_kept_and_its_texts_are_bounded(backend: Backend) -> None:
    store = backend.deliveries
    d = owed(E1, "A", 1, 1)
    store.enqueue([d], 1)
    assert attempt(
        store, d, PENDING, T0 + 1.25, next_at=T0 + 6.5, code=429, error="too many", latency=12.5,
        excerpt='{"error": "slow down ☃"}',
    )  # fmt: skip
    assert one(store, E1, "A", 1) == replace(
        d, attempts=1, next_at=T0 + 6.5, updated_at=T0 + 1.25, last_code=429,
        last_error="too many", last_latency_ms=12.5, response_excerpt='{"error": "slow down ☃"}',
    )  # fmt: skip
    # no answer at all: the code, latency and excerpt of the attempt before are not kept
    assert attempt(store, d, PENDING, T0 + 7, next_at=T0 + 307, error="timed out", attempts=2)
    second = one(store, E1, "A", 1)
    assert (second.last_code, second.last_latency_ms, second.response_excerpt) == (None,) * 3
    assert (second.attempts, second.last_error, second.next_at) == (2, "timed out", T0 + 307)
    # settled: next_at goes whatever the caller passed; long texts are cut
    assert attempt(
        store, d, FAILED, T0 + 400, next_at=T0 + 999, code=500, error="é" * 2000,
        latency=0.25, excerpt="x" * 1000, attempts=9,
    )  # fmt: skip
    failed = one(store, E1, "A", 1)
    assert (failed.status, failed.next_at, failed.attempts) == (FAILED, None, 9)
    assert failed.last_error is not None
    assert len(failed.last_error) == MAX_ERROR
    assert failed.last_error.startswith("é" * 100)
    assert failed.response_excerpt == "x" * MAX_EXCERPT
    # an empty answer is an answer: "" stays ""
    assert attempt(store, d, DELIVERED, T0 + 500, code=204, excerpt="", error="")
    done = one(store, E1, "A", 1)
    assert (done.status, done.response_excerpt, done.last_error) == (DELIVERED, "", "")
    assert done.created_at == T0
    with pytest.raises(ValueError, match="next_at"):
        attempt(store, d, PENDING, T0 + 600)


def test_counts_per_endpoint_and_in_all(backend: Backend) -> None:
    store = backend.deliveries
    rows = [owed(E1, f"o{i}", 1, i) for i in range(1, 6)] + [owed(E2, "o1", 1, 1)]
    store.enqueue(rows, 5)
    assert (store.pending_count(), store.pending_count(E1), store.pending_count(E2)) == (6, 5, 1)
    attempt(store, rows[0], DELIVERED, T0 + 1)
    attempt(store, rows[1], FAILED, T0 + 1)
    attempt(store, rows[2], PENDING, T0 + 1, next_at=T0 + 5)  # a retry is still pending
    attempt(store, rows[5], FAILED, T0 + 1)
    assert (store.pending_count(), store.pending_count(E1), store.pending_count(E2)) == (3, 3, 0)
    assert (store.failed_count(), store.failed_count(E1), store.failed_count(E2)) == (2, 1, 1)
    assert (store.pending_count("we_unknown"), store.failed_count("we_unknown")) == (0, 0)
    attempt(store, rows[1], DELIVERED, T0 + 2)  # a late success of a failed one (manual retry)
    assert (store.failed_count(), store.failed_count(E1)) == (1, 0)


def test_history_is_newest_first_with_filters(backend: Backend) -> None:
    store = backend.deliveries
    rows = [
        owed(E1, "A", 1, 1),
        owed(E1, "A", 2, 2),
        owed(E1, "B", 1, 3),
        owed(E2, "A", 1, 1),
        owed(E2, "C", 1, 4),
    ]
    store.enqueue(rows, 4)
    # same time (one batch): the newest cursor first, then the endpoint id, backwards
    assert keys(store.history()) == [
        (E2, "C", 1), (E1, "B", 1), (E1, "A", 2), (E2, "A", 1), (E1, "A", 1),
    ]  # fmt: skip
    attempt(store, rows[0], DELIVERED, T0 + 3)
    attempt(store, rows[3], FAILED, T0 + 2)
    attempt(store, rows[1], FAILED, T0 + 4)
    attempt(store, rows[4], PENDING, T0 + 1, next_at=T0 + 100)
    assert keys(store.history()) == [
        (E1, "A", 2), (E1, "A", 1), (E2, "A", 1), (E2, "C", 1), (E1, "B", 1),
    ]  # fmt: skip
    assert keys(store.history(limit=2)) == [(E1, "A", 2), (E1, "A", 1)]
    assert keys(store.history(E1)) == [(E1, "A", 2), (E1, "A", 1), (E1, "B", 1)]
    assert keys(store.history(E2, limit=1)) == [(E2, "A", 1)]
    assert keys(store.history(order_id="A")) == [(E1, "A", 2), (E1, "A", 1), (E2, "A", 1)]
    assert keys(store.history(E2, order_id="A")) == [(E2, "A", 1)]
    assert keys(store.history(failed_only=True)) == [(E1, "A", 2), (E2, "A", 1)]
    assert keys(store.history(E2, failed_only=True)) == [(E2, "A", 1)]
    assert keys(store.history(E1, order_id="A", failed_only=True)) == [(E1, "A", 2)]
    assert keys(store.history(order_id="A", failed_only=True, limit=1)) == [(E1, "A", 2)]
    assert store.history(order_id="Z") == []
    assert store.history(limit=0) == []


def test_requeue_replays_settled_deliveries_as_asked(backend: Backend) -> None:
    store = backend.deliveries
    a = [owed(E1, "A", seq, seq) for seq in (1, 2, 3)]
    b = [owed(E1, "B", seq, 10 + seq, T0 + 10 * seq) for seq in (1, 2)]  # later events
    other = owed(E2, "A", 1, 1)
    store.enqueue([*a, *b, other], 12)
    for d, status in zip(
        [*a[:2], *b, other], [DELIVERED, FAILED, FAILED, DELIVERED, FAILED], strict=True
    ):
        assert attempt(store, d, status, T0 + 1, code=200 if status is DELIVERED else 500)
    # a[2] is still pending: a replay leaves it as it is
    assert store.requeue(E1, order_id="A", failed_only=True, now=T0 + 50) == 1
    assert keys(store.due(T0 + 50, 10)) == [(E1, "A", 2)]  # its seq 3 waits for it again
    replayed = one(store, E1, "A", 2)
    assert (replayed.status, replayed.attempts, replayed.next_at) == (PENDING, 0, T0 + 50)
    assert (replayed.updated_at, replayed.last_code) == (T0 + 50, 500)  # last outcome kept
    assert store.pending_count(E1) == 2
    assert store.requeue(E1, order_id="A", now=T0 + 60) == 1  # a[0], delivered
    assert keys(store.due(T0 + 60, 10)) == [(E1, "A", 1)]
    assert store.requeue(E1, since=T0 + 20, now=T0 + 70) == 1  # b[1] (inclusive)
    assert store.requeue(E1, since=T0 + 20, now=T0 + 70) == 0  # pending by now
    assert store.requeue(E1, failed_only=True, now=T0 + 80) == 1  # b[0]
    assert keys(store.due(T0 + 80, 10)) == [(E1, "A", 1), (E1, "B", 1)]
    assert (store.pending_count(E1), store.failed_count(E1)) == (5, 0)
    # the other endpoint is untouched
    assert one(store, E2, "A", 1).status is FAILED
    assert store.requeue(E2, order_id="B", now=T0 + 90) == 0
    assert store.requeue(E2, now=T0 + 90) == 1
    assert store.failed_count() == 0


def test_requeue_since_is_by_when_a_delivery_was_enqueued(backend: Backend) -> None:
    store = backend.deliveries
    old = owed(E1, "A", 1, 1)  # enqueued at T0, settled late (a long retry)
    new = [owed(E1, "B", 1, 2, T0 + 50), owed(E1, "C", 1, 3, T0 + 50.000001)]
    store.enqueue([old, *new, owed(E2, "B", 1, 2, T0 + 50)], 3)
    assert attempt(store, old, FAILED, T0 + 500, code=500)
    assert attempt(store, new[0], DELIVERED, T0 + 51, code=200)
    assert attempt(store, new[1], FAILED, T0 + 49, code=500)  # another clock: behind
    assert attempt(store, owed(E2, "B", 1, 2), DELIVERED, T0 + 51, code=200)
    # to the microsecond: the boundary is included, what came before it is not
    assert store.requeue(E1, since=T0 + 50.000002, now=T0 + 600) == 0
    assert store.requeue(E1, since=T0 + 50, failed_only=True, now=T0 + 600) == 1  # C
    assert store.requeue(E1, since=T0 + 50, order_id="A", now=T0 + 600) == 0
    assert store.requeue(E1, since=T0 + 50, now=T0 + 600) == 1  # B; C is pending already
    assert keys(store.due(T0 + 600, 10)) == [(E1, "B", 1), (E1, "C", 1)]
    assert one(store, E1, "A", 1).status is FAILED
    assert one(store, E2, "B", 1).status is DELIVERED
    assert store.requeue(E1, since=T0, now=T0 + 700) == 1  # A, at last
    assert (store.pending_count(E1), store.failed_count(E1)) == (3, 0)


def test_forget_endpoint_drops_its_deliveries_only(backend: Backend) -> None:
    store = backend.deliveries
    mine = [owed(E1, f"o{i % 3}", i // 3 + 1, i) for i in range(1, 10)]
    store.enqueue([*mine, owed(E2, "o1", 1, 1), owed(E2, "o2", 1, 2)], 10)
    attempt(store, mine[0], DELIVERED, T0 + 1)
    attempt(store, mine[1], FAILED, T0 + 1)
    attempt(store, mine[2], PENDING, T0 + 1, next_at=T0 + 9)
    assert store.forget_endpoint(E1) == 9
    assert store.forget_endpoint(E1) == 0
    assert keys(store.due(T0 + 10, 100)) == [(E2, "o1", 1), (E2, "o2", 1)]
    assert (store.pending_count(), store.pending_count(E1), store.failed_count(E1)) == (2, 0, 0)
    assert store.history(E1) == []
    assert keys(store.history()) == [(E2, "o2", 1), (E2, "o1", 1)]
    assert attempt(store, mine[3], DELIVERED, T0 + 2) is False  # a late outcome brings none back
    assert store.history(E1) == []
    assert store.requeue(E1, now=T0 + 3) == 0
    assert store.scan_cursor() == 10
    # the same id may come back (a new endpoint): nothing of the old one is left
    assert store.enqueue([owed(E1, "o1", 1, 20, T0 + 20)], 20) == 1
    assert keys(store.due(T0 + 20, 100)) == [(E2, "o1", 1), (E2, "o2", 1), (E1, "o1", 1)]


def test_2000_pending_across_50_orders_come_out_in_order(backend: Backend) -> None:
    store = backend.deliveries
    # 50 orders of 40 events, interleaved in the event log as a busy shop's are
    made = [
        owed(E1, f"order-{order:02d}", seq, (seq - 1) * 50 + order + 1)
        for seq in range(1, 41)
        for order in range(50)
    ]
    for start in range(0, len(made), 500):
        batch = made[start : start + 500]
        assert store.enqueue(batch, batch[-1].cursor) == 500
    assert store.scan_cursor() == 2000
    assert store.pending_count() == 2000
    sent: dict[str, list[int]] = {}
    now, rounds, retried = T0, 0, 0
    while store.pending_count():
        rounds += 1
        assert rounds < 200, "deliveries stopped coming out"
        batch = store.due(now, 64)
        assert len({d.order_id for d in batch}) == len(batch)  # one per order at a time
        assert [d.cursor for d in batch] == sorted(d.cursor for d in batch)
        for d in batch:
            if (d.cursor % 7 == 0) and d.attempts == 0:  # some receivers fail first
                attempt(store, d, PENDING, now, next_at=now + 1, code=503)
                retried += 1
                continue
            sent.setdefault(d.order_id, []).append(d.seq)
            attempt(store, d, DELIVERED, now, code=200)
        now += 0.5
    assert retried > 0
    assert sorted(sent) == [f"order-{order:02d}" for order in range(50)]
    for order_id, seqs in sent.items():
        assert seqs == list(range(1, 41)), order_id
    assert store.due(now + 10, 10) == []
    assert (store.pending_count(), store.failed_count()) == (0, 0)
    assert len(store.history(limit=5000)) == 2000


def test_every_handle_sees_each_write_at_once(
    backend: Backend, peer: Callable[[], Backend]
) -> None:
    other = peer().deliveries  # another notify process, or the CLI asking for history
    d = owed(E1, "A", 1, 3)
    assert backend.deliveries.enqueue([d], 3) == 1
    assert other.scan_cursor() == 3
    assert other.due(T0, 10) == [d]
    assert other.enqueue([d], 3) == 0
    assert attempt(other, d, FAILED, T0 + 1, code=410)
    assert backend.deliveries.failed_count(E1) == 1
    assert backend.deliveries.requeue(E1, now=T0 + 2) == 1
    assert keys(other.due(T0 + 2, 10)) == [(E1, "A", 1)]
    assert other.forget_endpoint(E1) == 1
    assert peer().deliveries.history() == []


def test_a_hold_claims_what_due_hands_out_until_it_ends(backend: Backend) -> None:
    store = backend.deliveries
    store.enqueue([owed(E1, "A", 1, 1), owed(E1, "A", 2, 2), owed(E2, "B", 1, 3)], 3)
    claimed = store.due(T0, 1, hold=30)
    assert keys(claimed) == [(E1, "A", 1)]
    assert claimed[0].next_at == T0 + 30
    # claimed: not handed out again (nor the order's later event) until the hold ends
    assert keys(store.due(T0 + 1, 10)) == [(E2, "B", 1)]
    assert keys(store.due(T0 + 30, 10)) == [(E1, "A", 1), (E2, "B", 1)]
    # an outcome recorded during the hold settles the claim as usual
    assert attempt(store, claimed[0], DELIVERED, T0 + 2, code=200)
    assert keys(store.due(T0 + 2, 10, hold=30)) == [(E1, "A", 2), (E2, "B", 1)]
    assert store.due(T0 + 3, 10) == []
    assert store.pending_count() == 2


def test_one_deliverer_holds_the_lease_until_it_ends_or_is_released(backend: Backend) -> None:
    import time

    store = backend.deliveries
    now = time.time()
    assert store.take_lease("a", 30, now) is None
    assert store.take_lease("a", 30, now + 1) is None  # renewed
    assert store.take_lease("b", 30, now + 1) == "a"
    assert not store.release_lease("b")
    assert store.release_lease("a")
    assert store.take_lease("b", 0.2, time.time()) is None
    time.sleep(0.3)  # Redis ends a lease by its own clock
    assert store.take_lease("a", 30, time.time()) is None
    assert store.take_lease("b", 30, time.time()) == "a"


def test_record_many_is_record_for_each_in_one_write(backend: Backend) -> None:
    store = backend.deliveries
    a, b, c = owed(E1, "A", 1, 1), owed(E1, "A", 2, 2), owed(E2, "B", 1, 3)
    store.enqueue([a, b, c], 3)
    outcomes = [
        Recorded(E1, "A", 1, DELIVERED, 1, None, 204, None, 3.5, "", T0 + 1),
        Recorded(
            E2, "B", 1, PENDING, 1, T0 + 60, None, "timeout after 15 s", 15000.0, None, T0 + 1
        ),
        Recorded(E1, "Z", 9, DELIVERED, 1, None, 200, None, None, None, T0 + 1),  # unknown
    ]
    assert store.record_many(outcomes) == 2
    assert store.record_many([]) == 0
    assert keys(store.due(T0 + 1, 10)) == [(E1, "A", 2)]  # A's next event is its head now
    retried = one(store, E2, "B", 1)
    assert (retried.status, retried.next_at, retried.last_error) == (
        PENDING,
        T0 + 60,
        "timeout after 15 s",
    )
    assert one(store, E1, "A", 1).last_code == 204
    # a refused outcome (pending without next_at) refuses the batch before any write
    bad = Recorded(E1, "A", 2, PENDING, 1, None, 500, None, None, None, T0 + 2)
    good = Recorded(E2, "B", 1, DELIVERED, 2, None, 200, None, None, None, T0 + 2)
    with pytest.raises(ValueError, match="next_at"):
        store.record_many([good, bad])
    assert one(store, E2, "B", 1).status is PENDING
