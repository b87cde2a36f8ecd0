"""The earlier design's OrderCreated message: what is taken in, what is refused and why."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from realorders.domain import LineItem, Order
from realorders.earlier_events import MalformedMessage, order_created, parse_order_created


def message(**changes: Any) -> bytes:
    body: dict[str, object] = {
        "EventType": "OrderCreated",
        "OrderId": "6650c0ffee0000000000abcd",
        "CustomerId": "cust-7",
        "Items": [{"ProductId": "KB-01", "Quantity": 2}],
        "Status": "Created",
        "Timestamp": "2026-12-03T10:00:00.1234567Z",
    }
    body.update(changes)
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


def test_the_earlier_message_becomes_an_order_under_its_own_id() -> None:
    order = parse_order_created(message())
    assert order == Order("6650c0ffee0000000000abcd", "cust-7", (LineItem("KB-01", 2),))


def test_field_names_in_any_case_as_dotnet_readers_take_them() -> None:
    raw = orjson.dumps(
        {
            "eventType": "OrderCreated",
            "orderId": "o-1",
            "customerId": "c",
            "items": [{"productId": "P", "quantity": 1}],
        }
    )
    assert parse_order_created(raw) == Order("o-1", "c", (LineItem("P", 1),))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty record (no value)"),
        (b"{", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (message(EventType="OrderShipped"), "EventType 'OrderShipped' is not 'OrderCreated'"),
        (message(EventType=...), "EventType None is not 'OrderCreated'"),
        (message(OrderId=""), "OrderId must be a non-empty string"),
        (message(OrderId=None), "OrderId must be a non-empty string"),
        (message(CustomerId=...), "CustomerId is missing"),
        (message(Items={}), "Items must be a list"),
        (message(Items=...), "Items is missing"),
        (message(Items=[]), "Items must be a non-empty list"),
        (message(Items=[{"ProductId": "P", "Quantity": 0}]), "Quantity must be a whole number"),
        (message(Items=[{"ProductId": "P", "Quantity": "2"}]), "Quantity must be a whole number"),
        (message(Items=[{"Quantity": 1}]), "ProductId is missing"),
    ],
)
def test_what_cannot_be_taken_in_says_why(raw: bytes | None, reason: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_order_created(raw)
    assert reason in str(caught.value)


def test_order_created_is_the_earlier_shape_exactly() -> None:
    order = Order("o-9", "c-1", (LineItem("KB-01", 2), LineItem("MS-02", 1)))
    assert orjson.loads(order_created(order, 1_796_292_000.25)) == {
        "EventType": "OrderCreated",
        "OrderId": "o-9",
        "CustomerId": "c-1",
        "Items": [{"ProductId": "KB-01", "Quantity": 2}, {"ProductId": "MS-02", "Quantity": 1}],
        "Status": "Created",
        "Timestamp": "2026-12-03T10:00:00.250Z",
    }


ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)


@given(
    order_id=ids,
    customer=ids,
    lines=st.lists(st.tuples(ids, st.integers(1, 1000)), min_size=1, max_size=5),
)
def test_what_realorders_writes_it_reads_back(
    order_id: str, customer: str, lines: list[tuple[str, int]]
) -> None:
    order = Order(order_id, customer, tuple(LineItem(p, q) for p, q in lines))
    assert parse_order_created(order_created(order, 0.0)) == order
