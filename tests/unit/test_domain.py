"""The pure core: the lifecycle table, the fold, content digests and delay specs."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realorders.domain import (
    ALLOWED,
    CANCELLABLE,
    HOLDS_STOCK,
    NEXT_STAGE,
    TERMINAL,
    Event,
    FoldError,
    LineItem,
    Order,
    OrderState,
    Status,
    apply,
    fold,
    pending_data,
)
from realorders.engine.actors import Delays

S = Status

#: The lifecycle of DESIGN.md, written out independently of ``ALLOWED``.
LIFECYCLE: dict[Status | None, set[Status]] = {
    None: {S.PENDING},
    S.PENDING: {S.RESERVED, S.BACKORDERED, S.REJECTED, S.CANCELLED},
    S.BACKORDERED: {S.RESERVED, S.CANCELLED, S.REJECTED},  # rejected: product discontinued
    S.RESERVED: {S.PACKED, S.CANCELLED},
    S.PACKED: {S.SHIPPED, S.CANCELLED},
    S.SHIPPED: {S.DELIVERED},
    S.DELIVERED: set(),
    S.REJECTED: set(),
    S.CANCELLED: set(),
}
#: One way to reach each status from nothing.
PATHS: dict[Status | None, list[Status]] = {
    None: [],
    S.PENDING: [S.PENDING],
    S.RESERVED: [S.PENDING, S.RESERVED],
    S.BACKORDERED: [S.PENDING, S.BACKORDERED],
    S.PACKED: [S.PENDING, S.RESERVED, S.PACKED],
    S.SHIPPED: [S.PENDING, S.RESERVED, S.PACKED, S.SHIPPED],
    S.DELIVERED: [S.PENDING, S.RESERVED, S.PACKED, S.SHIPPED, S.DELIVERED],
    S.REJECTED: [S.PENDING, S.REJECTED],
    S.CANCELLED: [S.PENDING, S.CANCELLED],
}
ORDER = Order("o1", "ada", (LineItem("A", 2), LineItem("B", 1)), "ring twice")
PRICES = {"A": 10.0, "B": 2.25}


def event(
    seq: int, status: Status, data: dict[str, Any] | None = None, at: float | None = None
) -> Event:
    if status is S.PENDING and data is None:
        data = pending_data(ORDER, PRICES, 100.0, 7)
    return Event("o1", seq, status, 100.0 + seq if at is None else at, data)


def state_after(path: list[Status]) -> OrderState | None:
    return fold([event(seq, status) for seq, status in enumerate(path, 1)])


# -- the transition table ----------------------------------------------------


def test_allowed_is_the_documented_lifecycle() -> None:
    assert {k: set(v) for k, v in ALLOWED.items()} == LIFECYCLE


def test_status_sets() -> None:
    assert {S.DELIVERED, S.REJECTED, S.CANCELLED} == TERMINAL
    assert {S.PENDING, S.RESERVED, S.BACKORDERED, S.PACKED} == CANCELLABLE
    assert {S.RESERVED, S.PACKED} == HOLDS_STOCK
    assert {S.RESERVED: S.PACKED, S.PACKED: S.SHIPPED, S.SHIPPED: S.DELIVERED} == NEXT_STAGE
    assert all(S.CANCELLED in LIFECYCLE[s] for s in CANCELLABLE)
    assert all(LIFECYCLE[s] == set() for s in TERMINAL)
    assert all(target in LIFECYCLE[stage] for stage, target in NEXT_STAGE.items())


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c in LIFECYCLE for t in Status if t in LIFECYCLE[c]],
    ids=str,
)
def test_allowed_transition(current: Status | None, target: Status) -> None:
    state = state_after(PATHS[current])
    version = 0 if state is None else state.version
    after = apply(state, event(version + 1, target))
    assert after.status is target
    assert after.version == version + 1
    assert after.updated_at == 100.0 + version + 1


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c in LIFECYCLE for t in Status if t not in LIFECYCLE[c]],
    ids=str,
)
def test_forbidden_transition(current: Status | None, target: Status) -> None:
    state = state_after(PATHS[current])
    version = 0 if state is None else state.version
    before = copy.deepcopy(state)
    with pytest.raises(FoldError, match="cannot follow"):
        apply(state, event(version + 1, target))
    assert state == before  # a refused event changes nothing


# -- fold and apply ----------------------------------------------------------


def test_fold_of_nothing_is_none() -> None:
    assert fold([]) is None


def test_first_event_builds_the_order_from_its_payload() -> None:
    state = apply(None, event(1, S.PENDING))
    assert state.id == "o1"
    assert state.customer_id == "ada"
    assert state.notes == "ring twice"
    assert state.items == [
        {"product_id": "A", "quantity": 2, "price": 10.0},
        {"product_id": "B", "quantity": 1, "price": 2.25},
    ]
    assert state.total == 22.25
    assert (state.status, state.version, state.arrival) == (S.PENDING, 1, 7)
    assert state.created_at == 100.0
    assert state.updated_at == 101.0
    assert state.terminal_at is None
    assert not state.terminal


def test_total_is_unknown_when_a_price_is() -> None:
    data = pending_data(ORDER, {"A": 10.0}, 100.0, 1)
    assert data["items"][1]["price"] is None
    assert apply(None, event(1, S.PENDING, data)).total is None


def test_whole_happy_path() -> None:
    state = state_after(PATHS[S.DELIVERED])
    assert state is not None
    assert (state.status, state.version) == (S.DELIVERED, 5)
    assert state.terminal
    assert state.terminal_at == state.updated_at == 105.0
    assert state.lines() == [LineItem("A", 2), LineItem("B", 1)]
    assert state.to_dict()["status"] == "delivered"


def test_reason_is_kept_until_a_reservation_clears_it() -> None:
    state = state_after([S.PENDING])
    state = apply(state, event(2, S.BACKORDERED, {"reason": "out of stock: A"}))
    assert state.reason == "out of stock: A"
    assert event(2, S.BACKORDERED, {"reason": "x"}).reason == "x"
    assert event(3, S.RESERVED).reason is None
    state = apply(state, event(3, S.RESERVED))
    assert state.reason is None
    state = apply(state, event(4, S.CANCELLED, {"reason": "changed mind"}))
    assert (state.reason, state.terminal_at) == ("changed mind", 104.0)


@pytest.mark.parametrize(
    "seqs",
    [[2], [0], [1, 1], [1, 3], [1, 2, 2], [1, 2, 4], [-1]],
    ids=str,
)
def test_seq_must_be_contiguous_from_one(seqs: list[int]) -> None:
    path = PATHS[S.SHIPPED]
    events = [event(seq, status) for seq, status in zip(seqs, path, strict=False)]
    with pytest.raises(FoldError):
        fold(events)


def test_seq_error_names_the_due_number() -> None:
    state = state_after([S.PENDING, S.RESERVED])
    assert state is not None
    with pytest.raises(FoldError, match="event 4 where 3 was due"):
        apply(state, event(4, S.PACKED))
    assert state.version == 2


def test_fold_equals_step_by_step_apply() -> None:
    events = [event(seq, status) for seq, status in enumerate(PATHS[S.DELIVERED], 1)]
    state = None
    for e in events:
        state = apply(state, e)
    assert fold(events) == state


def test_order_dict_round_trip() -> None:
    assert Order.from_dict(ORDER.to_dict()) == ORDER
    plain = Order("o2", "bob", (LineItem("A", 1),))
    assert "notes" not in plain.to_dict()
    assert Order.from_dict(plain.to_dict()) == plain


# -- digest ------------------------------------------------------------------


def test_digest_ignores_line_order_and_id() -> None:
    lines = [LineItem("A", 2), LineItem("B", 1), LineItem("C", 5)]
    digests = {
        Order(f"id{i}", "ada", tuple(p), "n").digest()
        for i, p in enumerate(itertools.permutations(lines))
    }
    assert len(digests) == 1
    assert len(next(iter(digests))) == 16


@pytest.mark.parametrize(
    "other",
    [
        Order("o1", "bob", ORDER.items, ORDER.notes),
        Order("o1", "ada", ORDER.items, None),
        Order("o1", "ada", ORDER.items, "ring once"),
        Order("o1", "ada", (LineItem("A", 3), LineItem("B", 1)), ORDER.notes),
        Order("o1", "ada", (LineItem("A", 2), LineItem("C", 1)), ORDER.notes),
        Order("o1", "ada", (LineItem("A", 2),), ORDER.notes),
        Order("o1", "ada", (*ORDER.items, LineItem("D", 1)), ORDER.notes),
    ],
    ids=["customer", "notes-removed", "notes-changed", "quantity", "product", "fewer", "more"],
)
def test_digest_sees_content(other: Order) -> None:
    assert other.digest() != ORDER.digest()


def test_empty_notes_differ_from_no_notes() -> None:
    assert Order("o", "a", ORDER.items, "").digest() != Order("o", "a", ORDER.items).digest()


lines_st = st.lists(
    st.builds(
        LineItem,
        st.text("ABCDE", min_size=1, max_size=3),
        st.integers(min_value=1, max_value=1_000_000),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(lines=lines_st, data=st.data(), customer=st.text(max_size=8))
def test_digest_is_stable_under_shuffles(
    lines: list[LineItem], data: st.DataObject, customer: str
) -> None:
    shuffled = data.draw(st.permutations(lines))
    assert (
        Order("x", customer, tuple(lines)).digest()
        == Order("y", customer, tuple(shuffled)).digest()
    )


# -- delays ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", Delays()),
        ("pack=0.5", Delays(pack=0.5)),
        ("pack=0.5,ship=1,deliver=2", Delays(0.5, 1.0, 2.0)),
        (" ship = 2 , deliver=3 ", Delays(ship=2.0, deliver=3.0)),
        ("deliver=0", Delays()),
        ("pack=1,", Delays(pack=1.0)),
        ("pack=86400", Delays(pack=86400.0)),
        ("pack=1e-3", Delays(pack=0.001)),
    ],
)
def test_delays_parse(spec: str, expected: Delays) -> None:
    assert Delays.parse(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pack", "expected pack=S"),
        ("fly=1", "expected pack=S"),
        ("=1", "expected pack=S"),
        ("pack=", "not a number"),
        ("pack=soon", "not a number"),
        ("pack=-1", "between 0 and 86400"),
        ("ship=86401", "between 0 and 86400"),
        ("deliver=nan", "between 0 and 86400"),
        ("deliver=inf", "between 0 and 86400"),
        ("pack=1;ship=2", "not a number"),
    ],
)
def test_delays_parse_refuses(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Delays.parse(spec)


def test_delay_before_each_stage() -> None:
    delays = Delays(pack=1.0, ship=2.0, deliver=3.0)
    assert delays.before(S.PACKED) == 1.0
    assert delays.before(S.SHIPPED) == 2.0
    assert delays.before(S.DELIVERED) == 3.0


# -- properties --------------------------------------------------------------


def _drive(steps: list[Status]) -> None:
    """Offer each status in turn; check what apply accepts and what it refuses."""
    state: OrderState | None = None
    accepted: list[Status] = []
    for target in steps:
        current = None if state is None else state.status
        version = 0 if state is None else state.version
        snapshot = copy.deepcopy(state)
        try:
            after = apply(state, event(version + 1, target))
        except FoldError:
            assert target not in ALLOWED[current]
            assert state == snapshot  # refused: nothing changed
            continue
        assert target in ALLOWED[current], f"{current} -> {target} accepted"
        assert current not in TERMINAL  # terminal states absorb
        accepted.append(target)
        state = after
        assert state.status in ALLOWED  # never leaves the table
        assert state.version == len(accepted)
        assert (state.terminal_at is not None) == (state.status in TERMINAL)
    if state is not None:
        folded = fold([event(seq, status) for seq, status in enumerate(accepted, 1)])
        assert folded is not None
        assert folded.status is state.status
        if state.status in TERMINAL:
            for target in Status:
                with pytest.raises(FoldError):
                    apply(state, event(state.version + 1, target))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(Status)), max_size=15))
def test_random_steps_never_leave_the_lifecycle(steps: list[Status]) -> None:
    _drive(steps)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_walks_through_allowed_steps(data: st.DataObject) -> None:
    """Mostly-valid walks reach the deep states that uniform choice rarely hits."""
    steps: list[Status] = []
    current: Status | None = None
    for _ in range(data.draw(st.integers(0, 8))):
        options = sorted(ALLOWED[current]) or sorted(Status)
        if data.draw(st.booleans()):
            target = data.draw(st.sampled_from(options))
        else:
            target = data.draw(st.sampled_from(sorted(Status)))
        steps.append(target)
        if target in ALLOWED[current]:
            current = target
    _drive(steps)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(list(Status)), min_size=1, max_size=6), st.integers(-2, 9))
def test_a_wrong_seq_is_always_refused(path: list[Status], offset: int) -> None:
    state = None
    for seq, target in enumerate(path, 1):
        current = None if state is None else state.status
        if target not in ALLOWED[current]:
            break
        state = apply(state, event(seq, target))
    version = 0 if state is None else state.version
    seq = version + 1 + offset
    if offset == 0:
        return
    for target in Status:
        with pytest.raises(FoldError):
            apply(copy.deepcopy(state), event(seq, target))
