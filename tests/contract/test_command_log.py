"""CommandLog contract: idempotent intake, dense increasing positions, reads from a position."""

from __future__ import annotations

from typing import Any

from realorders.domain import LineItem, Order
from realorders.engine.ports import Backend, CommandKind, IntakeOutcome


def make(
    order_id: str, customer: str = "ada", *lines: tuple[str, int], notes: str | None = None
) -> Order:
    return Order(order_id, customer, tuple(LineItem(p, q) for p, q in (lines or [("A", 1)])), notes)


def outcomes(results: list[Any]) -> list[tuple[str, IntakeOutcome]]:
    return [(r.order_id, r.outcome) for r in results]


def test_accepted_orders_get_increasing_positions_in_input_order(backend: Any) -> None:
    results = backend.commands.append_orders([make("o1"), make("o2"), make("o3")])
    assert outcomes(results) == [(f"o{i}", IntakeOutcome.ACCEPTED) for i in (1, 2, 3)]
    assert [r.position for r in results] == [1, 2, 3]
    more = backend.commands.append_orders([make("o4")])
    assert more[0].position == 4


def test_empty_append_is_a_no_op(backend: Any) -> None:
    assert backend.commands.append_orders([]) == []
    assert backend.commands.read(0, 10) == []
    assert backend.engine_info().head == 0


def test_same_id_same_content_is_a_duplicate_without_a_position(backend: Any) -> None:
    backend.commands.append_orders([make("o1", "ada", ("A", 1), ("B", 2))])
    (again,) = backend.commands.append_orders([make("o1", "ada", ("A", 1), ("B", 2))])
    assert again.outcome is IntakeOutcome.DUPLICATE
    assert again.position is None
    assert len(backend.commands.read(0, 100)) == 1


def test_line_order_does_not_make_a_different_order(backend: Any) -> None:
    backend.commands.append_orders([make("o1", "ada", ("A", 1), ("B", 2))])
    (again,) = backend.commands.append_orders([make("o1", "ada", ("B", 2), ("A", 1))])
    assert again.outcome is IntakeOutcome.DUPLICATE


def test_same_id_other_content_is_a_conflict_and_keeps_the_stored_order(backend: Any) -> None:
    original = make("o1", "ada", ("A", 1), notes="leave at door")
    backend.commands.append_orders([original])
    for changed in (
        make("o1", "ada", ("A", 2), notes="leave at door"),  # quantity
        make("o1", "bob", ("A", 1), notes="leave at door"),  # customer
        make("o1", "ada", ("A", 1)),  # notes
        make("o1", "ada", ("B", 1), notes="leave at door"),  # product
    ):
        (result,) = backend.commands.append_orders([changed])
        assert result.outcome is IntakeOutcome.CONFLICT, changed
        assert result.position is None
    assert backend.commands.submitted("o1")[0] == original
    assert len(backend.commands.read(0, 100)) == 1


def test_duplicates_and_conflicts_inside_one_batch(backend: Any) -> None:
    results = backend.commands.append_orders(
        [
            make("o1", "ada", ("A", 1)),
            make("o1", "ada", ("A", 1)),  # duplicate of the line above
            make("o2", "ada", ("A", 1)),
            make("o2", "ada", ("A", 9)),  # conflict with the line above
            make("o3", "ada", ("A", 1)),
        ]
    )
    assert outcomes(results) == [
        ("o1", IntakeOutcome.ACCEPTED),
        ("o1", IntakeOutcome.DUPLICATE),
        ("o2", IntakeOutcome.ACCEPTED),
        ("o2", IntakeOutcome.CONFLICT),
        ("o3", IntakeOutcome.ACCEPTED),
    ]
    assert [r.position for r in results] == [1, None, 2, None, 3]
    assert backend.commands.submitted("o2")[0] == make("o2", "ada", ("A", 1))


def test_mixed_batch_after_earlier_submissions(backend: Any) -> None:
    backend.commands.append_orders([make("o1"), make("o2", "bob")])
    results = backend.commands.append_orders([make("o3"), make("o1"), make("o2", "eve")])
    assert outcomes(results) == [
        ("o3", IntakeOutcome.ACCEPTED),
        ("o1", IntakeOutcome.DUPLICATE),
        ("o2", IntakeOutcome.CONFLICT),
    ]
    assert results[0].position == 3


def test_other_commands_share_the_position_sequence(backend: Any) -> None:
    (first,) = backend.commands.append_orders([make("o1")])
    cancel = backend.commands.append(CommandKind.CANCEL, "o1", {"reason": "changed mind"})
    restock = backend.commands.append(CommandKind.RESTOCK, None, {"product_id": "A", "quantity": 3})
    (later,) = backend.commands.append_orders([make("o2")])
    assert [first.position, cancel, restock, later.position] == [1, 2, 3, 4]


def test_read_returns_commands_after_a_position_oldest_first(backend: Any) -> None:
    backend.commands.append_orders([make(f"o{i}") for i in range(1, 6)])
    backend.commands.append(CommandKind.SET_STOCK, None, {"product_id": "A", "quantity": 7})
    everything = backend.commands.read(0, 100)
    assert [c.position for c in everything] == [1, 2, 3, 4, 5, 6]
    assert [c.kind for c in everything] == [CommandKind.SUBMIT] * 5 + [CommandKind.SET_STOCK]
    assert everything[-1].order_id is None
    assert everything[-1].body == {"product_id": "A", "quantity": 7}
    page = backend.commands.read(2, 2)
    assert [c.position for c in page] == [3, 4]
    assert [c.position for c in backend.commands.read(4, 100)] == [5, 6]
    assert backend.commands.read(6, 100) == []
    assert backend.commands.read(60, 100) == []


def test_submit_body_round_trips_to_the_order(backend: Any) -> None:
    original = make("o1", "ada", ("A", 2), ("B", 1), notes="gift wrap")
    backend.commands.append_orders([original])
    (command,) = backend.commands.read(0, 10)
    assert command.kind is CommandKind.SUBMIT
    assert command.order_id == "o1"
    assert command.body == original.to_dict()
    assert Order.from_dict(command.body) == original
    assert command.at > 0


def test_submitted_knows_queued_orders_only(backend: Any) -> None:
    original = make("o1", "ada", ("A", 2))
    backend.commands.append_orders([original])
    assert backend.commands.submitted("o1")[0] == original
    assert backend.commands.submitted("nope") is None


def test_digests_of_known_ids_only(backend: Any) -> None:
    first, second = make("o1"), make("o2", "bob", ("B", 3))
    backend.commands.append_orders([first, second])
    found = backend.commands.digests(["o1", "o2", "o3", "o1"])
    assert found == {"o1": first.digest(), "o2": second.digest()}


def test_engine_info_head_follows_appends(backend: Any) -> None:
    backend.commands.append_orders([make("o1"), make("o2")])
    backend.commands.append(CommandKind.CANCEL, "o1", {"reason": None})
    info = backend.engine_info()
    assert (info.head, info.position, info.backlog) == (3, 0, 3)


def test_two_writers_never_share_a_position(backend: Any, peer: Any) -> None:
    other = peer()
    positions: list[int] = []
    for i in range(20):
        writer = backend if i % 2 else other
        (result,) = writer.commands.append_orders([make(f"o{i}")])
        positions.append(result.position)
        positions.append(writer.commands.append(CommandKind.CANCEL, f"o{i}", {}))
    assert positions == list(range(1, 41))
    (dup,) = other.commands.append_orders([make("o1")])
    assert dup.outcome is IntakeOutcome.DUPLICATE  # the idempotency ledger is shared
    assert [c.position for c in backend.commands.read(0, 100)] == positions


def test_cancel_requests_name_the_first_reason_per_order(backend: Any) -> None:
    backend.commands.append_orders([make("o1"), make("o2"), make("o3")])
    backend.commands.append(CommandKind.CANCEL, "o1", {"reason": "first"})
    backend.commands.append(CommandKind.CANCEL, "o1", {"reason": "second"})
    backend.commands.append(CommandKind.CANCEL, "o3", {"reason": None})
    backend.commands.append(CommandKind.RESTOCK, None, {"product_id": "A", "quantity": 1})
    assert backend.commands.cancel_requests(["o1", "o2", "o3", "nope"]) == {
        "o1": "first",
        "o3": None,
    }
    assert backend.commands.cancel_requests([]) == {}


def test_queued_lists_unprocessed_submissions_newest_first(backend: Any) -> None:
    backend.commands.append_orders([make("o1", "ada"), make("o2", "bob"), make("o3", "ada")])
    assert [o.id for o, _, _ in backend.commands.queued(0, 10)] == ["o3", "o2", "o1"]
    assert [o.id for o, _, _ in backend.commands.queued(1, 10)] == ["o3", "o2"]
    assert [o.id for o, _, _ in backend.commands.queued(0, 1)] == ["o3"]
    assert [o.id for o, _, _ in backend.commands.queued(0, 10, "ada")] == ["o3", "o1"]
    oldest = backend.commands.queued(0, 2, oldest_first=True)
    assert [o.id for o, _, _ in oldest] == ["o1", "o2"]
    assert [o.id for o, _, _ in backend.commands.queued(1, 10, "ada", oldest_first=True)] == ["o3"]


def test_queued_before_a_position_pages_by_position(backend: Backend) -> None:
    backend.commands.append_orders([make(f"o{i}", "ada" if i % 2 else "bob") for i in (1, 2, 3, 4)])

    def queued(*args: Any, **options: Any) -> list[tuple[str, int]]:
        return [(o.id, position) for o, position, _ in backend.commands.queued(*args, **options)]

    assert queued(0, 10, before=3) == [("o2", 2), ("o1", 1)]
    assert queued(0, 1, before=4) == [("o3", 3)]
    assert queued(1, 10, before=4) == [("o3", 3), ("o2", 2)]
    assert queued(0, 10, "ada", before=3) == [("o1", 1)]
    assert queued(0, 10, before=3, oldest_first=True) == [("o1", 1), ("o2", 2)]
    assert queued(0, 10, before=1) == []
    assert queued(0, 10, before=99) == queued(0, 10)


def test_queued_pages_through_a_long_queue_once_each(backend: Backend) -> None:
    """More submissions than one internal page of a backend (Redis reads 500 at a time)."""
    count = 1050
    backend.commands.append_orders(
        [make(f"q{i:04}", "ada" if i % 3 == 0 else "bob") for i in range(1, count + 1)]
    )
    newest = backend.commands.queued(0, count)
    assert [p for _, p, _ in newest] == list(range(count, 0, -1))
    ada = backend.commands.queued(0, count, "ada")
    assert [p for _, p, _ in ada] == [p for p in range(count, 0, -1) if p % 3 == 0]
    below = backend.commands.queued(0, 600, "bob", before=1000)
    assert [p for _, p, _ in below] == [p for p in range(999, 0, -1) if p % 3][:600]
    oldest = backend.commands.queued(400, 700, oldest_first=True, before=1001)
    assert [p for _, p, _ in oldest] == list(range(401, 1001))


def test_append_from_source_records_offsets_with_the_orders(backend: Backend) -> None:
    log = backend.commands
    assert log.source_offsets("order-events@real-orders") == {}
    first = log.append_from_source(
        [make("e1"), make("e2")], "order-events@real-orders", {"order-events:0": 2}
    )
    assert outcomes(first) == [("e1", IntakeOutcome.ACCEPTED), ("e2", IntakeOutcome.ACCEPTED)]
    # a reader that died before its offsets were kept reads the page again: duplicates
    again = log.append_from_source(
        [make("e2"), make("e3")],
        "order-events@real-orders",
        {"order-events:0": 4, "order-events:1": 1},
    )
    assert outcomes(again) == [("e2", IntakeOutcome.DUPLICATE), ("e3", IntakeOutcome.ACCEPTED)]
    assert log.source_offsets("order-events@real-orders") == {
        "order-events:0": 4,
        "order-events:1": 1,
    }
    assert log.source_offsets("order-events@other-group") == {}
    log.append_orders([make("own-1")])
    assert log.taken_from_source(["e1", "e3", "own-1", "unknown"]) == {"e1", "e3"}
    assert log.taken_from_source([]) == set()
    assert sorted(c.order_id or "" for c in log.read(0, 100)) == ["e1", "e2", "e3", "own-1"]


def test_a_page_of_dead_letters_alone_still_advances_the_source(backend: Backend) -> None:
    assert backend.commands.append_from_source([], "s", {"t:2": 7}) == []
    assert backend.commands.source_offsets("s") == {"t:2": 7}
