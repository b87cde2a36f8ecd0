"""The API's documents, as OpenAPI schemas (pydantic models).

Responses are built by the library's own record functions
(:mod:`realorders.views`) and these models describe them for ``/openapi.json``
and ``/docs``; schemathesis checks, in the test suite, that every answer
matches. The small admin bodies (products, stock) are validated by them too;
an order body is parsed by :mod:`realorders.intake`, the rules ``submit`` and
``import`` use, and only described here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from realorders.domain import MAX_QUANTITY, Status

__all__ = [
    "ORDER_BODY",
    "Accepted",
    "CancelBody",
    "ImportSummary",
    "NewProduct",
    "OrderDetail",
    "OrderPage",
    "OrderRecord",
    "ProductChange",
    "QueuedCommand",
    "RestockBody",
    "StockBody",
]

_ID = {"type": "string", "minLength": 1, "maxLength": 200}
_ITEM = {
    "type": "object",
    "required": ["product_id", "quantity"],
    "properties": {
        "product_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
    },
}

#: the order body of POST /v1/orders (snake_case; the earlier design's camelCase
#: ``customerId``/``productId``/``orderId`` are accepted too)
ORDER_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["customer_id", "items"],
                "properties": {
                    "id": {**_ID, "description": "optional; else Idempotency-Key, else new"},
                    "customer_id": _ID,
                    "items": {"type": "array", "minItems": 1, "maxItems": 100, "items": _ITEM},
                    "notes": {"type": ["string", "null"], "maxLength": 1000},
                },
            },
            "example": {"customer_id": "ada", "items": [{"product_id": "SKU-1", "quantity": 2}]},
        }
    },
}


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class OrderItem(_Doc):
    product_id: str
    quantity: int
    price: float | None = Field(description="unit price when the order was accepted")


class OrderRecord(_Doc):
    """An order as listed: processed, or still queued (``queued``, status pending)."""

    id: str
    customer_id: str
    status: Status
    items: list[OrderItem]
    total: float | None
    notes: str | None
    reason: str | None
    version: int
    created_at: str | None
    updated_at: str | None
    terminal_at: str | None
    queued: bool


class OrderEvent(_Doc):
    seq: int
    status: Status
    at: str
    reason: str | None = None


class OrderDetail(OrderRecord):
    """An order with its timeline (``show --json``)."""

    events: list[OrderEvent]


class OrderPage(BaseModel):
    data: list[OrderRecord]
    next: str | None = Field(description="the next page's URL; null on the last page")


class AcceptedItem(BaseModel):
    product_id: str
    quantity: int


class Accepted(_Doc):
    """An order as it was accepted; the same document for a replay of the same order."""

    id: str
    customer_id: str
    items: list[AcceptedItem]
    notes: str | None
    links: dict[str, str]


class RowProblem(BaseModel):
    line: int
    reason: str
    order_id: str | None = None


class ImportSummary(_Doc):
    """What ``realorders import --json`` prints, with the refused lines."""

    source: str
    dry_run: bool
    ok: bool
    orders: int
    accepted: int
    duplicates: int
    conflicts: int
    invalid: int
    rejected: int
    generated_ids: int
    seconds: float
    errors: list[RowProblem]
    errors_omitted: int = Field(description="refused lines beyond the first 1,000")


class QueuedCommand(BaseModel):
    """A command appended for the engine to apply (202)."""

    position: int
    links: dict[str, str] = Field(default_factory=dict)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=1000)


class NewProduct(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=1000)
    price: float = Field(ge=0, allow_inf_nan=False)
    stock: int = Field(default=0, ge=0, le=10**12)


class ProductChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=1000)
    price: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class RestockBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quantity: int = Field(ge=1, le=10**12)


class StockBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on_hand: int = Field(ge=0, le=10**12)
