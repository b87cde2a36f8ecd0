"""The earlier design's ``OrderCreated`` message on Kafka, read and written as it was.

Its order API produced one message per order onto ``order-events``, keyed by
order id, with PascalCase fields (.NET's own serializer):

    {"EventType": "OrderCreated", "OrderId": "…", "CustomerId": "…",
     "Items": [{"ProductId": "…", "Quantity": 2}], "Status": "Created",
     "Timestamp": "2026-12-03T10:00:00.000Z"}

Reading holds the message to the rules every realorders order obeys (the same
intake as ``import``), so a message realorders takes in is an order it can
process; anything else is refused with a reason a person can act on (the
bridge sends it to the dead-letter topic with that reason). Field names are
matched without regard to case, as .NET's own readers are usually set up to.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from realorders.domain import Order
from realorders.errors import InputError
from realorders.intake import order_from_obj

__all__ = ["EVENT_TYPE", "MalformedMessage", "order_created", "parse_order_created"]

EVENT_TYPE = "OrderCreated"


class MalformedMessage(ValueError):
    """A record that is not an ``OrderCreated`` realorders can take in; ``str`` says why."""


def _by_lower_name(obj: dict[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in obj.items() if isinstance(key, str)}


def _order_id(fields: dict[str, Any]) -> str:
    order_id = fields.get("orderid")
    if isinstance(order_id, int) and not isinstance(order_id, bool):
        return str(order_id)  # an integer key is still an id; the order keeps it as text
    if not isinstance(order_id, str) or not order_id.strip():
        raise MalformedMessage(f"OrderId must be a non-empty string, got {order_id!r}")
    return order_id


def parse_order_created(value: bytes | None) -> Order:
    """The order an ``OrderCreated`` record asks for; :class:`MalformedMessage` if none.

    The order keeps the message's ``OrderId``, so a redelivered message is the
    same order again (a duplicate at intake), never a second one.
    """
    if value is None:
        raise MalformedMessage("empty record (no value)")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedMessage("not a JSON object")
    fields = _by_lower_name(data)
    kind = fields.get("eventtype")
    if kind != EVENT_TYPE:
        raise MalformedMessage(f"EventType {kind!r} is not {EVENT_TYPE!r}")
    items = fields.get("items")
    if items is None:
        raise MalformedMessage("Items is missing")
    if not isinstance(items, list):
        raise MalformedMessage(f"Items must be a list, got {type(items).__name__}")
    lines = [_by_lower_name(i) if isinstance(i, dict) else i for i in items]
    obj = {
        "id": _order_id(fields),
        "customer_id": fields.get("customerid"),
        "items": [
            {"product_id": line.get("productid"), "quantity": line.get("quantity")}
            if isinstance(line, dict)
            else line
            for line in lines
        ],
    }
    try:
        return order_from_obj(obj, "OrderCreated", 1)
    except InputError as exc:
        raise MalformedMessage(_earlier_names(exc.reason)) from None


def _earlier_names(reason: str) -> str:
    """Intake's wording with the message's own field names, so the reason matches the record."""
    for ours, theirs in (
        ("customer_id", "CustomerId"),
        ("product_id", "ProductId"),
        ("quantity", "Quantity"),
        ("items", "Items"),
        ("item ", "Items item "),
    ):
        reason = reason.replace(ours, theirs)
    return reason


def order_created(order: Order, at: float) -> bytes:
    """The ``OrderCreated`` value the earlier consumers read, for an order realorders took in."""
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return orjson.dumps(
        {
            "EventType": EVENT_TYPE,
            "OrderId": order.id,
            "CustomerId": order.customer_id,
            "Items": [{"ProductId": i.product_id, "Quantity": i.quantity} for i in order.items],
            "Status": "Created",
            "Timestamp": stamp.replace("+00:00", "Z"),
        }
    )
