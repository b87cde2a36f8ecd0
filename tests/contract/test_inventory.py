"""Inventory contract: all-or-nothing, idempotent per order, and durable only with a commit.

The engine claims the store before it touches stock (that is when the
inventory loads which orders already hold stock), so every test here does too.
Levels seen by readers (``orders.levels``/``stock_rows``/``ledger_totals``)
are committed state: the tests commit before reading them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from realorders.domain import LineItem, Order, Status
from realorders.engine.ports import Changes, Reservation


def lines(*pairs: tuple[str, int]) -> list[LineItem]:
    return [LineItem(p, q) for p, q in pairs]


def flush(backend: Any) -> None:
    """Commit the inventory's effects without moving the position."""
    backend.commit(Changes(position=backend.position()))


def levels(backend: Any) -> dict[str, tuple[int, int, int]]:
    return {s.product_id: (s.on_hand, s.reserved, s.available) for s in backend.orders.levels()}


@pytest.fixture
def inventory(backend: Any, stock: Callable[..., None]) -> Any:
    stock("A", 5)
    stock("B", 3)
    stock("C", 0)
    backend.claim_engine()
    return backend.inventory


def test_reserve_takes_from_available_only(backend: Any, inventory: Any) -> None:
    (result,) = inventory.reserve_many([("o1", lines(("A", 2), ("B", 1)))])
    assert result == Reservation(ok=True)
    assert result.reason() is None
    assert (inventory.available("A"), inventory.available("B")) == (3, 2)
    flush(backend)
    assert levels(backend)["A"] == (5, 2, 3)
    assert levels(backend)["B"] == (3, 1, 2)


def test_reserve_is_all_or_nothing_across_products(backend: Any, inventory: Any) -> None:
    (result,) = inventory.reserve_many([("o1", lines(("A", 2), ("B", 4)))])
    assert not result.ok
    assert result.shortages == (("B", 4, 3),)
    assert result.unknown == ()
    assert result.reason() == "out of stock: B needs 4, 3 available"
    assert (inventory.available("A"), inventory.available("B")) == (5, 3)  # A untouched
    flush(backend)
    assert levels(backend)["A"] == (5, 0, 5)


def test_lines_of_one_product_are_added_up(inventory: Any) -> None:
    (result,) = inventory.reserve_many([("o1", lines(("A", 3), ("A", 3)))])
    assert not result.ok
    assert result.shortages == (("A", 6, 5),)
    (fits,) = inventory.reserve_many([("o2", lines(("A", 2), ("A", 3)))])
    assert fits.ok
    assert inventory.available("A") == 0


def test_every_short_product_is_reported(inventory: Any) -> None:
    (result,) = inventory.reserve_many([("o1", lines(("A", 9), ("B", 1), ("C", 2)))])
    assert not result.ok
    assert sorted(result.shortages) == [("A", 9, 5), ("C", 2, 0)]
    assert inventory.available("B") == 3


def test_unknown_product_is_reported_and_nothing_reserved(inventory: Any) -> None:
    (result,) = inventory.reserve_many([("o1", lines(("A", 1), ("ZZ", 1), ("YY", 1)))])
    assert not result.ok
    assert result.unknown == ("YY", "ZZ")
    assert result.shortages == ()
    assert result.reason() == "unknown product 'YY', 'ZZ'"
    assert inventory.available("A") == 5
    assert inventory.available("ZZ") == 0


def test_requests_in_one_batch_compete_in_the_given_order(inventory: Any) -> None:
    results = inventory.reserve_many(
        [
            ("o1", lines(("B", 2))),
            ("o2", lines(("B", 2))),  # only 1 left
            ("o3", lines(("B", 1))),  # fits what o2 could not take
            ("o4", lines(("B", 1))),
        ]
    )
    assert [r.ok for r in results] == [True, False, True, False]
    assert results[1].shortages == (("B", 2, 1),)
    assert results[3].shortages == (("B", 1, 0),)
    assert inventory.available("B") == 0


def test_reserve_is_idempotent_per_order(backend: Any, inventory: Any) -> None:
    inventory.reserve_many([("o1", lines(("A", 2)))])
    again = inventory.reserve_many([("o1", lines(("A", 2))), ("o1", lines(("A", 2)))])
    assert [r.ok for r in again] == [True, True]
    assert inventory.available("A") == 3
    flush(backend)
    assert levels(backend)["A"] == (5, 2, 3)


def test_idempotent_within_one_batch(inventory: Any) -> None:
    results = inventory.reserve_many([("o1", lines(("A", 3))), ("o1", lines(("A", 3)))])
    assert [r.ok for r in results] == [True, True]
    assert inventory.available("A") == 2


def test_release_gives_back_once(backend: Any, inventory: Any) -> None:
    inventory.reserve_many([("o1", lines(("A", 2), ("B", 3)))])
    inventory.release("o1", lines(("A", 2), ("B", 3)))
    assert (inventory.available("A"), inventory.available("B")) == (5, 3)
    inventory.release("o1", lines(("A", 2), ("B", 3)))  # holds nothing any more
    inventory.release("never", lines(("A", 4)))
    assert (inventory.available("A"), inventory.available("B")) == (5, 3)
    flush(backend)
    assert levels(backend)["A"] == (5, 0, 5)
    assert levels(backend)["B"] == (3, 0, 3)


def test_released_order_may_reserve_again(inventory: Any) -> None:
    inventory.reserve_many([("o1", lines(("A", 2)))])
    inventory.release("o1", lines(("A", 2)))
    (again,) = inventory.reserve_many([("o1", lines(("A", 2)))])
    assert again.ok
    assert inventory.available("A") == 3


def test_consume_removes_from_on_hand_and_reserved(backend: Any, inventory: Any) -> None:
    inventory.reserve_many([("o1", lines(("A", 2))), ("o2", lines(("A", 1)))])
    inventory.consume("o1", lines(("A", 2)))
    assert inventory.available("A") == 2  # shipping does not change what is available
    flush(backend)
    assert levels(backend)["A"] == (3, 1, 2)
    inventory.consume("o1", lines(("A", 2)))  # already shipped
    inventory.consume("never", lines(("A", 1)))  # holds nothing
    inventory.release("o1", lines(("A", 2)))  # nothing left to release
    flush(backend)
    assert levels(backend)["A"] == (3, 1, 2)


def test_restock_adds_on_hand_and_is_ledgered(backend: Any, inventory: Any) -> None:
    inventory.reserve_many([("o1", lines(("C", 1)))])
    inventory.restock("C", 4, 1.0)
    assert inventory.available("C") == 4
    inventory.restock("ZZ", 4, 1.0)  # unknown product: ignored
    flush(backend)
    assert levels(backend)["C"] == (4, 0, 4)
    assert backend.orders.ledger_totals() == {"A": 5, "B": 3, "C": 4}


def test_set_on_hand_is_absolute_and_refused_below_reserved(backend: Any, inventory: Any) -> None:
    inventory.reserve_many([("o1", lines(("A", 3)))])
    refusal = inventory.set_on_hand("A", 2, 1.0)
    assert refusal is not None
    assert "A" in refusal
    assert inventory.available("A") == 2  # unchanged: 5 on hand, 3 reserved
    assert inventory.set_on_hand("A", 3, 1.0) is None  # exactly what is reserved
    assert inventory.available("A") == 0
    assert inventory.set_on_hand("B", 10, 1.0) is None
    assert inventory.set_on_hand("ZZ", 1, 1.0) is not None
    flush(backend)
    assert levels(backend)["A"] == (3, 3, 0)
    assert levels(backend)["B"] == (10, 0, 10)
    assert backend.orders.ledger_totals() == {"A": 3, "B": 10, "C": 0}
    assert backend.orders.stock_rows() == {"A": (3, 3), "B": (10, 0), "C": (0, 0)}


def test_prices_of_known_products_only(stock: Callable[..., None], inventory: Any) -> None:
    stock("D", 1, price=19.99)
    assert inventory.prices(["A", "D", "ZZ", "A"]) == {"A": 2.5, "D": 19.99}
    assert inventory.prices([]) == {}


def test_product_added_while_claimed_is_usable(stock: Callable[..., None], inventory: Any) -> None:
    stock("NEW", 2)
    (result,) = inventory.reserve_many([("o1", lines(("NEW", 2)))])
    assert result.ok
    assert inventory.available("NEW") == 0


def test_uncommitted_effects_are_lost_on_restart(
    backend: Any, inventory: Any, peer: Callable[[], Any]
) -> None:
    """Stock moves only with a commit: the crash-safety half of the contract.

    A restock is the exception on a log that redelivers (Kafka): it is applied
    at once and once per command (``ref``), and the redelivered command then
    changes nothing.
    """
    inventory.reserve_many([("o1", lines(("A", 2)))])
    inventory.restock("B", 5, 1.0, ref="0:7")
    backend.release_engine()  # the engine dies without committing
    restarted = peer()
    restarted.claim_engine()
    assert restarted.inventory.available("A") == 5
    if backend.redelivers:
        restarted.inventory.restock("B", 5, 1.0, ref="0:7")  # the same command, redelivered
        assert restarted.inventory.available("B") == 8
        assert restarted.orders.ledger_totals() == {"A": 5, "B": 8, "C": 0}
    else:
        assert restarted.inventory.available("B") == 3
        assert restarted.orders.ledger_totals() == {"A": 5, "B": 3, "C": 0}


def test_idempotency_survives_a_restart(
    backend: Any, inventory: Any, peer: Callable[[], Any], timeline: Any
) -> None:
    """An order committed as holding stock is not reserved again by the next engine."""
    order = Order("o1", "ada", tuple(lines(("A", 2))))
    inventory.reserve_many([("o1", list(order.items))])
    timeline.submit(order)
    timeline.emit("o1", Status.RESERVED)
    timeline.commit(position=1)
    backend.release_engine()
    restarted = peer()
    restarted.claim_engine()
    (again,) = restarted.inventory.reserve_many([("o1", list(order.items))])
    assert again.ok
    assert restarted.inventory.available("A") == 3
    restarted.inventory.consume("o1", list(order.items))  # the restarted engine ships it
    flush(restarted)
    assert levels(restarted)["A"] == (3, 0, 3)


def test_levels_count_backordered_orders_per_product(
    backend: Any, inventory: Any, timeline: Any
) -> None:
    timeline.submit(Order("o1", "ada", tuple(lines(("A", 9), ("B", 9)))))
    timeline.emit("o1", Status.BACKORDERED, {"reason": "out of stock"})
    timeline.submit(Order("o2", "bob", tuple(lines(("A", 9), ("A", 1)))))
    timeline.emit("o2", Status.BACKORDERED, {"reason": "out of stock"})
    timeline.commit(position=2)
    waiting = {s.product_id: s.backordered for s in backend.orders.levels()}
    assert waiting == {"A": 2, "B": 1, "C": 0}
    level = next(s for s in backend.orders.levels() if s.product_id == "A")
    assert level.to_dict() == {
        "product_id": "A",
        "name": "product A",
        "price": 2.5,
        "on_hand": 5,
        "reserved": 0,
        "available": 5,
        "backordered": 2,
    }
