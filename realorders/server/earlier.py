"""The earlier C# system's HTTP documents, in and out: what its clients send and expect.

That system was an ASP.NET Core API, so its clients speak ASP.NET's defaults:
camelCase JSON whose property names are matched case-insensitively, routes
matched case-insensitively, and ``400`` for a missing or invalid body. This
module translates those documents to and from realorders' own (an
:class:`~realorders.domain.Order`, a catalogue entry and its stock) and holds
no rule of its own: orders are checked by :func:`realorders.intake.order_from_obj`,
the rules of ``POST /v1/orders``; products by the Client when they are written.
The routes are :mod:`realorders.server.routes.earlier_api`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from realorders.catalogue_file import MAX_STOCK
from realorders.domain import Order, Status
from realorders.errors import InputError
from realorders.intake import MAX_ID_LENGTH, order_from_obj
from realorders.server.bodies import media_type
from realorders.server.problems import Problem
from realorders.views import OrderView

__all__ = [
    "NEW_ORDER",
    "NEW_PRODUCT",
    "ORDER",
    "PRODUCT",
    "PRODUCT_REPLACEMENT",
    "STATUS_CHANGE",
    "AnyCaseApi",
    "NewProduct",
    "ProductReplacement",
    "earlier_status",
    "order_document",
    "parse_order",
    "parse_product",
    "product_document",
    "view_document",
]

M = TypeVar("M", bound="NewProduct")


def earlier_status(status: Status) -> str:
    """A realorders status in the earlier API's casing: ``backordered`` → ``Backordered``."""
    return status.value.capitalize()


def order_document(
    order_id: str, customer_id: str, items: Iterable[tuple[str, int]], status: Status
) -> dict[str, Any]:
    """``{"id", "customerId", "items": [{"productId", "quantity"}], "status"}``, nothing more:
    a client that maps the earlier document strictly must not meet fields it never knew."""
    return {
        "id": order_id,
        "customerId": customer_id,
        "items": [{"productId": item[0], "quantity": item[1]} for item in items],
        "status": earlier_status(status),
    }


def view_document(view: OrderView) -> dict[str, Any]:
    """An order as the earlier API showed it, processed or still queued (``Pending``)."""
    record = view.record()
    items = [(item["product_id"], item["quantity"]) for item in record["items"]]
    return order_document(view.id, view.customer_id, items, view.status)


def product_document(
    product_id: str, name: str | None, price: float | None, on_hand: int
) -> dict[str, Any]:
    """``{"id", "name", "price", "quantity"}``; ``quantity`` is the stock on hand."""
    return {"id": product_id, "name": name, "price": price, "quantity": on_hand}


# -- bodies ---------------------------------------------------------------------------------


async def _json_body(request: Request) -> Any:
    """The body as JSON: ``400`` when missing or malformed, as ASP.NET answers; ``415`` when
    it is declared as something else than JSON."""
    body = await request.body()  # read already, within the limits, by BodyLimit
    given = media_type(request)
    if given and given != "application/json" and not given.endswith("+json"):
        raise Problem(
            415,
            "unsupported-media-type",
            f"Content-Type {given} is not accepted here; send application/json",
        )
    if not body.strip():
        raise Problem(400, "bad-request", "the body is missing; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "bad-request", f"the body is not JSON: {exc}") from None


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else type(value).__name__
        raise Problem(400, "invalid-input", f"expected one JSON object, got {kind}", pointer="")
    return value


def _spelled(value: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``value`` with its keys in our spelling when they match ``names`` in any case
    (ASP.NET's web defaults); other keys are dropped, as ASP.NET ignores them."""
    spelling = {name.lower(): name for name in names}
    return {spelling[k.lower()]: v for k, v in value.items() if k.lower() in spelling}


_CAMEL = {"customer_id": "customerId", "product_id": "productId"}
_SNAKE = re.compile(r"\b(customer_id|product_id)\b")


async def parse_order(request: Request) -> Order:
    """The earlier ``POST /api/order`` body as an order, checked as ``POST /v1/orders`` checks
    one; every refusal is ``400`` with a pointer to the field, in the client's spelling."""
    value = _spelled(_object(await _json_body(request)), ("id", "customerId", "items"))
    items = value.get("items")
    if isinstance(items, list):
        value["items"] = [
            _spelled(item, ("productId", "quantity")) if isinstance(item, dict) else item
            for item in items
        ]
    if value.get("id") is None:
        value.pop("id", None)  # a new order: realorders makes its id
    try:
        return order_from_obj(value, "body", 1)
    except InputError as exc:
        pointer = None if exc.pointer is None else _camel(exc.pointer)
        raise Problem(400, "invalid-input", _camel(exc.reason), pointer=pointer) from None


def _camel(text: str) -> str:
    """The intake's messages name a missing field in /v1's spelling: use the earlier API's."""
    return _SNAKE.sub(lambda found: _CAMEL[found.group(0)], text)


class NewProduct(BaseModel):
    """``POST /api/product``: without an id one is made; without a quantity no stock."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    name: str = Field(min_length=1, max_length=1000)
    price: float = Field(ge=0, allow_inf_nan=False)
    quantity: int = Field(default=0, ge=0, le=MAX_STOCK)


class ProductReplacement(NewProduct):
    """``PUT /api/product/{id}``: the whole product. A missing quantity is refused rather
    than read as 0, which would empty the shelf."""

    quantity: int = Field(ge=0, le=MAX_STOCK)


async def parse_product(request: Request, model: type[M]) -> M:
    """A product body (keys in any case); ``400`` pointing at the field otherwise."""
    value = _spelled(_object(await _json_body(request)), tuple(model.model_fields))
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(part) for part in error.get("loc", ())]
        where = "/".join(loc) or "body"
        raise Problem(
            400, "invalid-input", f"{where}: {error['msg']}", pointer="/" + "/".join(loc)
        ) from None


# -- routes in any case ---------------------------------------------------------------------


class AnyCaseApi:
    """Routes of the earlier API matched in any case, as ASP.NET Core matches them.

    Only the fixed words of ``/api/...`` paths are put in lower case (``/API/Order/Ab-1``
    becomes ``/api/order/Ab-1``): ids keep their case, and ``/v1`` is never touched. A
    trailing slash after the collection is dropped, as ASP.NET ignores it. ``status`` is a
    fixed word only in ``PUT /api/order/status/{id}``, the one route that has it; anywhere
    else it may begin an order id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"][:5].lower() == "/api/":
            scope["path"] = _canonical(scope["path"], scope["method"])
        await self.app(scope, receive, send)


def _canonical(path: str, method: str) -> str:
    parts = path.split("/", 4)  # "", api, collection, id or "status", rest
    parts[1] = "api"
    if len(parts) > 2 and parts[2].lower() in ("order", "product"):
        parts[2] = parts[2].lower()
        if len(parts) == 4 and parts[3] == "":
            del parts[3]  # /api/order/ is /api/order
        elif method == "PUT" and parts[2] == "order" and len(parts) == 5:
            parts[3] = parts[3].lower() if parts[3].lower() == "status" else parts[3]
    return "/".join(parts)


# -- documents, as OpenAPI schemas ------------------------------------------------------------

_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}
_LINE = {
    "type": "object",
    "required": ["productId", "quantity"],
    "properties": {"productId": _TEXT, "quantity": {"type": "integer", "minimum": 1}},
}
ORDER: dict[str, Any] = {
    "type": "object",
    "required": ["id", "customerId", "items", "status"],
    "properties": {
        "id": {"type": "string"},
        "customerId": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["productId", "quantity"],
                "properties": {"productId": {"type": "string"}, "quantity": {"type": "integer"}},
            },
        },
        "status": {"enum": [earlier_status(s) for s in Status]},
    },
}
PRODUCT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "price", "quantity"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": ["string", "null"]},
        "price": {"type": ["number", "null"]},
        "quantity": {"type": "integer", "description": "stock on hand"},
    },
}


def _body(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


NEW_ORDER = _body(
    {
        "type": "object",
        "required": ["customerId", "items"],
        "properties": {
            "id": {**_TEXT, "description": "optional: else realorders makes one"},
            "customerId": _TEXT,
            "items": {"type": "array", "minItems": 1, "maxItems": 100, "items": _LINE},
        },
    },
    {"customerId": "ada", "items": [{"productId": "KB-01", "quantity": 2}]},
)
_PRODUCT_IN: dict[str, Any] = {
    "type": "object",
    "required": ["name", "price"],
    "properties": {
        "id": {**_TEXT, "description": "optional: else realorders makes one"},
        "name": {"type": "string", "minLength": 1, "maxLength": 1000},
        "price": {"type": "number", "minimum": 0},
        "quantity": {"type": "integer", "minimum": 0, "maximum": MAX_STOCK},
    },
}
NEW_PRODUCT = _body(_PRODUCT_IN, {"name": "Lamp", "price": 12.5, "quantity": 10})
PRODUCT_REPLACEMENT = _body(
    {**_PRODUCT_IN, "required": ["name", "price", "quantity"]},
    {"id": "LAMP-1", "name": "Lamp", "price": 14.0, "quantity": 8},
)
STATUS_CHANGE = _body(
    {"type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"}}},
    {"id": "ORD-1", "status": "Processed"},
)
