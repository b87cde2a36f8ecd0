"""The API's documents, as OpenAPI schemas (pydantic models).

Responses are built by the library's own record functions
(:mod:`realorders.views`) and these models describe them for ``/openapi.json``
and ``/docs``; schemathesis checks, in the test suite, that every answer
matches. The small admin bodies (products, stock) are validated by them too;
an order body is parsed by :mod:`realorders.intake`, the rules ``submit`` and
``import`` use, and only described here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from realorders.deliveries import DeliveryStatus
from realorders.domain import MAX_QUANTITY, Status
from realorders.intake import MAX_ID_LENGTH
from realorders.webhooks import DEFAULT_GRACE, MAX_TEXT, MAX_URL

__all__ = [
    "ORDER_BODY",
    "Accepted",
    "CancelBody",
    "DeliveryRecord",
    "DisableWebhookBody",
    "ImportSummary",
    "NewProduct",
    "NewWebhook",
    "OrderDetail",
    "OrderPage",
    "OrderRecord",
    "ProductChange",
    "QueuedCommand",
    "ReplayBody",
    "Replayed",
    "RestockBody",
    "RotateSecretBody",
    "RotatedSecret",
    "StockBody",
    "WebhookChange",
    "WebhookCreated",
    "WebhookRecord",
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


# -- webhooks -----------------------------------------------------------------------
# The bodies check only JSON types: every rule on the values (URL, statuses, lengths) is
# the Client's, so the server and the CLI refuse the same input with the same words.
# What the rules are is still described here, for the document.


def _events_shape(events: Any) -> Any:
    """Only the JSON shape: a list of texts, a text or null (the Client checks the names);
    one message for any other shape, not one per member of the union."""
    if events is None or isinstance(events, str):
        return events
    if isinstance(events, list) and all(isinstance(event, str) for event in events):
        return events
    raise PydanticCustomError("events", "give a list of status names, 'all' or null")


_LINE = r"^[^\x00-\x1f\x7f]*$"  # one line: no control characters (nor blank, the Client says)
_TEXT: Any = WithJsonSchema(
    {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_TEXT, "pattern": _LINE}
)
_URL: Any = WithJsonSchema(
    {
        "type": "string",
        "maxLength": MAX_URL,
        "pattern": r"^[hH][tT][tT][pP][sS]?://[^\s@/?#]+([/?#]\S*)?$",
        "description": "http:// or https:// with a host, no user:password@",
    }
)
_EVENTS: Any = WithJsonSchema(
    {
        "anyOf": [
            {"type": "array", "minItems": 1, "items": {"enum": [s.value for s in Status]}},
            {"const": "all"},
            {"type": "null"},
        ],
        "description": "the statuses whose changes it gets; `all` or null: every status",
    }
)
_CUSTOMER: Any = WithJsonSchema(
    {
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": MAX_ID_LENGTH,
        "pattern": _LINE,
        "description": "only this customer's orders; null: every customer's",
    }
)


class WebhookRecord(_Doc):
    """An endpoint as `webhooks show --json` prints it: never its secret."""

    endpoint_id: str
    url: str
    events: list[Status] | None = Field(description="null: every status")
    customer_id: str | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: str
    updated_at: str


class WebhookCreated(WebhookRecord):
    """The new endpoint and its signing secret: the only time the secret is shown."""

    secret: str = Field(description="`whsec_…` (Standard Webhooks); store it now")


class RotatedSecret(BaseModel):
    """The endpoint's new secret, shown this once."""

    endpoint_id: str
    secret: str
    grace_seconds: float = Field(description="how long the previous secret stays valid")


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, _URL]
    events: Annotated[list[str] | str | None, BeforeValidator(_events_shape), _EVENTS] = None
    customer_id: Annotated[str | None, _CUSTOMER] = None
    description: Annotated[str | None, _TEXT] = None


class WebhookChange(BaseModel):
    """Only the fields given change; null clears `customer_id` and `description`."""

    model_config = ConfigDict(extra="forbid")
    url: Annotated[str | None, _URL] = None
    events: Annotated[list[str] | str | None, BeforeValidator(_events_shape), _EVENTS] = None
    customer_id: Annotated[str | None, _CUSTOMER] = None
    description: Annotated[str | None, _TEXT] = None

    @field_validator("url")
    @classmethod
    def _url_not_null(cls, url: str | None) -> str:
        """Null clears a field; an endpoint cannot be without a URL (defaults skip this)."""
        if url is None:
            raise PydanticCustomError("url_null", "an endpoint needs a URL: null cannot clear it")
        return url


class DisableWebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str | None, _TEXT] = Field(
        default=None, description="shown with the endpoint; default `disabled by an operator`"
    )


class RotateSecretBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_seconds: float = Field(
        default=DEFAULT_GRACE,
        allow_inf_nan=False,
        description="how long the old secret stays valid (0: not at all)",
    )


class DeliveryRecord(_Doc):
    """One event owed to one endpoint and how its last attempt went, as
    `webhooks deliveries --json` prints it."""

    endpoint_id: str
    order_id: str
    seq: int
    cursor: int
    msg_id: str = Field(description="the `webhook-id` header: the same on every retry")
    status: DeliveryStatus
    attempts: int
    next_at: str | None = Field(description="when a pending delivery is due; null once settled")
    created_at: str
    updated_at: str
    last_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    response_excerpt: str | None = Field(description="the start of the receiver's answer")


class ReplayBody(BaseModel):
    """Which settled deliveries to send again; the filters combine, none: all of them."""

    model_config = ConfigDict(extra="forbid")
    since: AwareDatetime | None = Field(
        default=None, description="enqueued at or after this time (ISO 8601 with an offset)"
    )
    order_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    failed_only: bool = False


class Replayed(BaseModel):
    requeued: int = Field(description="how many deliveries are due again")
