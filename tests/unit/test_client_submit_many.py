"""``Client.submit_many``: a batch of orders in a few transactions, same rules as ``submit``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from realorders import Client, Delays, LineItem, Order
from realorders.engine.ports import IntakeOutcome
from realorders.errors import InputError


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Client]:
    with Client(tmp_path / "shop.db") as client:
        client.add_product("KB-01", "Keyboard", 89.0, 1000)
        yield client


def orders(count: int, start: int = 0) -> list[Order]:
    return [Order(f"B-{i:04}", "ada", (LineItem("KB-01", 1),)) for i in range(start, count)]


def test_accepts_every_order_in_chunks_with_increasing_positions(shop: Client) -> None:
    results = shop.submit_many(orders(25), chunk=10)
    assert [r.outcome for r in results] == [IntakeOutcome.ACCEPTED] * 25
    positions = [r.position for r in results if r.position is not None]
    assert positions == sorted(positions)
    assert len(set(positions)) == 25  # so none was None
    shop.run(until_idle=True, delays=Delays(), handle_signals=False)
    assert shop.stats()["by_status"]["delivered"] == 25


def test_duplicates_and_conflicts_are_outcomes_and_the_rest_is_kept(shop: Client) -> None:
    shop.submit_many(orders(2))
    changed = Order("B-0001", "bob", (LineItem("KB-01", 3),))
    results = shop.submit_many([*orders(1), changed, *orders(3, start=2)])
    assert [r.outcome for r in results] == [
        IntakeOutcome.DUPLICATE,
        IntakeOutcome.CONFLICT,
        IntakeOutcome.ACCEPTED,
    ]
    kept = shop.get("B-0001").submitted  # the first content stays
    assert kept is not None
    assert (kept.customer_id, kept.items[0].quantity) == ("ada", 1)
    assert shop.get("B-0002").queued


def test_a_bad_order_names_its_index_and_nothing_is_appended(shop: Client) -> None:
    batch = [*orders(2), Order("B-bad", "ada", (LineItem("KB-01", 0),))]
    with pytest.raises(InputError, match=r"^orders\[2\]: .*quantity"):
        shop.submit_many(batch)
    assert shop.engine_info().backlog == 0


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (Order("B-x", " ", (LineItem("KB-01", 1),)), "customer"),
        (Order("B-x", "ada", ()), "items"),
        (Order("B-x", "ada", (LineItem("KB-01", True),)), "quantity"),  # a bool is not a count
        (Order("B-x", "ada", (LineItem("KB-01", 1_000_001),)), "quantity"),
        (Order("B-x", "ada", (LineItem("", 1),)), "product"),
        (Order("B-x" * 100, "ada", (LineItem("KB-01", 1),)), "id"),
    ],
)
def test_orders_built_in_code_meet_the_rules_files_meet(
    shop: Client, bad: Order, says: str
) -> None:
    """The fast check (no dict round trip) lets nothing through that the full one refuses."""
    with pytest.raises(InputError, match=rf"^orders\[1\]: .*{says}"):
        shop.submit_many([*orders(1), bad])
    assert shop.engine_info().backlog == 0
