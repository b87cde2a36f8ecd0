"""The earlier C# system's routes, ``/api/order`` and ``/api/product``, over realorders' model.

``realorders serve --compat earlier-api`` (the default) mounts them so that that system's
clients keep working unchanged: its paths (in any case), bodies and status codes. What
maps to what, and the two routes whose meaning cannot hold here, are in the README
("Coming from the earlier design"). As for ``/v1``, everything is the Client's, reached
through the server's Store and Intake, and the tokens and scopes are ``/v1``'s: ``read``
for GETs, ``write`` for orders, ``admin`` for the catalogue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from realorders.client import Client
from realorders.domain import Status
from realorders.engine.ports import IntakeOutcome
from realorders.errors import InputError
from realorders.ids import new_id
from realorders.server.earlier import (
    NEW_ORDER,
    NEW_PRODUCT,
    ORDER,
    PRODUCT,
    PRODUCT_REPLACEMENT,
    STATUS_CHANGE,
    NewProduct,
    ProductReplacement,
    earlier_status,
    order_document,
    parse_order,
    parse_product,
    product_document,
    view_document,
)
from realorders.server.problems import Problem
from realorders.server.responses import JSON, errors_doc, json_response
from realorders.server.services import Admin, Reader, Services, Writer
from realorders.views import OrderView

__all__ = ["TAG", "router"]

TAG = "earlier API"
router = APIRouter(prefix="/api", tags=[TAG])

T = TypeVar("T")

_PAGE = 1000  # orders read per store call while the full list streams out
_NO_CONTENT: dict[int | str, dict[str, Any]] = {204: {"description": "Done"}}


def _doc(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


async def _write(services: Services, work: Callable[[Client], T]) -> T:
    """A change through the Client; a value it refuses is a ``400``, as ASP.NET answered."""
    try:
        return await services.store.call(work)
    except InputError as exc:
        raise Problem(400, "invalid-input", exc.reason, pointer=exc.pointer) from None


# -- orders -----------------------------------------------------------------------------------


@router.post(
    "/order",
    summary="Create an order: a submission",
    openapi_extra={"requestBody": NEW_ORDER},
    responses={200: _doc(ORDER), **errors_doc(400, 401, 403, 409, 413, 415, 503)},
)
async def create_order(request: Request, services: Writer) -> Response:
    """Submitted as `POST /v1/orders` submits (same rules, group commit, durable when
    answered). `200` with the order, `Pending`, and its id (made by realorders unless the
    body gives one: the same body again is answered with the same order); `400` with a
    pointer when the body is missing or invalid; `409` when a given id names another order."""
    order = await parse_order(request)
    await services.admit()
    result = await services.intake.submit(order)
    if result.outcome is IntakeOutcome.CONFLICT:
        raise Problem.resubmitted(order.id)
    if result.outcome is IntakeOutcome.ACCEPTED:
        services.metrics.accepted.inc()
        return json_response(
            order_document(order.id, order.customer_id, order.items, Status.PENDING)
        )
    view = await services.store.call(lambda client: client.get(order.id))
    return json_response(view_document(view))


@router.get(
    "/order",
    summary="Every order",
    responses={200: _doc({"type": "array", "items": ORDER}), **errors_doc(401, 403)},
)
async def list_orders(services: Reader) -> Response:
    """All orders, newest first, queued ones as `Pending`: streamed page by page
    (`GET /v1/orders` pages), so a large store costs the server constant memory."""
    views, before = await services.store.call(_page(None))
    return StreamingResponse(_every_order(services, views, before), media_type=JSON)


def _page(before: int | None) -> Callable[[Client], tuple[list[OrderView], int | None]]:
    return lambda client: client.page_orders(limit=_PAGE, before=before)


async def _every_order(
    services: Services, views: list[OrderView], before: int | None
) -> AsyncIterator[bytes]:
    separator = b""
    yield b"["
    while True:
        if views:
            yield separator + b",".join(orjson.dumps(view_document(v)) for v in views)
            separator = b","
        if before is None:
            break
        views, before = await services.store.call(_page(before))
    yield b"]"


# registered before PUT /order/{order_id}, which would otherwise take "status/ID" as an id
@router.put(
    "/order/status/{order_id:path}",
    summary="Not in realorders: the engine sets statuses",
    openapi_extra={"requestBody": STATUS_CHANGE},
    responses=errors_doc(401, 403, 404, 405),
)
async def set_order_status(order_id: str, services: Writer) -> Response:
    """Always `405` for a known order (`404` otherwise): realorders' engine alone moves an
    order, so a status set from outside would be a success that changes nothing."""
    view = await services.store.call(lambda client: client.get(order_id))
    raise Problem(
        405,
        "method-not-allowed",
        f"order {order_id!r} is {earlier_status(view.status)}; in realorders only the engine "
        "(`realorders run`) sets an order's status, as it reserves, packs, ships and delivers "
        "it: the earlier processing service's steps (InventoryChecked, Processed) are the "
        "engine's own, so retire that service rather than have it report. Follow an order "
        "with GET /api/order/{id}, GET /v1/orders/{id}/events or a webhook; stop one with "
        "DELETE /api/order/{id}",
        headers={"Allow": ""},
        order_id=order_id,
        order_status=earlier_status(view.status),
    )


@router.get(
    "/order/{order_id:path}",
    summary="One order",
    responses={200: _doc(ORDER), **errors_doc(401, 403, 404)},
)
async def get_order(order_id: str, services: Reader) -> Response:
    view = await services.store.call(lambda client: client.get(order_id))
    return json_response(view_document(view))


@router.put(
    "/order/{order_id:path}",
    summary="Not in realorders: an order is never replaced",
    openapi_extra={"requestBody": NEW_ORDER},
    responses=errors_doc(401, 403, 404, 405),
)
async def replace_order(order_id: str, services: Writer) -> Response:
    """Always `405` for a known order (`404` otherwise): an order keeps what was submitted."""
    view = await services.store.call(lambda client: client.get(order_id))
    raise Problem(
        405,
        "method-not-allowed",
        f"order {order_id!r} is {earlier_status(view.status)}; realorders never replaces an "
        "order: what was submitted is what its engine reserves and ships (and what makes a "
        "resubmission idempotent). To change one, cancel it with DELETE /api/order/{id} "
        "while it has not shipped, and create the corrected order with POST /api/order",
        headers={"Allow": "GET, DELETE"},
        order_id=order_id,
        order_status=earlier_status(view.status),
    )


@router.delete(
    "/order/{order_id:path}",
    status_code=204,
    summary="Delete an order: a cancellation",
    responses={**_NO_CONTENT, **errors_doc(401, 403, 404, 409)},
)
async def delete_order(order_id: str, services: Writer) -> Response:
    """Cancels, as `POST /v1/orders/{id}/cancel` does: `204` once the cancellation is queued
    for the engine; `409` when the order is past cancelling (shipped, or finished). The order
    stays readable, `Cancelled`, with its history."""
    await services.store.call(lambda client: client.cancel(order_id))
    return Response(status_code=204)


# -- products ---------------------------------------------------------------------------------


@router.get(
    "/product",
    summary="Every product, with its stock on hand as quantity",
    responses={200: _doc({"type": "array", "items": PRODUCT}), **errors_doc(401, 403)},
)
async def list_products(services: Reader) -> Response:
    levels = await services.store.call(Client.levels)
    return json_response(
        [product_document(lv.product_id, lv.name, lv.price, lv.on_hand) for lv in levels]
    )


@router.post(
    "/product",
    summary="Add a product",
    openapi_extra={"requestBody": NEW_PRODUCT},
    responses={200: _doc(PRODUCT), **errors_doc(400, 401, 403, 409, 413, 415)},
)
async def create_product(request: Request, services: Admin) -> Response:
    """`200` with the product. Without an `id` realorders makes one; `quantity` is its stock
    on hand; `409` when the id is taken."""
    body = await parse_product(request, NewProduct)
    product_id = body.id or new_id()

    def add(client: Client) -> dict[str, Any]:
        client.add_product(product_id, body.name, body.price, body.quantity)
        return client.product(product_id)

    added = await _write(services, add)
    return json_response(product_document(product_id, added["name"], added["price"], body.quantity))


@router.get(
    "/product/{product_id:path}",
    summary="One product",
    responses={200: _doc(PRODUCT), **errors_doc(401, 403, 404)},
)
async def get_product(product_id: str, services: Reader) -> Response:
    def read(client: Client) -> dict[str, Any]:
        product = client.product(product_id)
        level = client.level(product_id)
        on_hand = 0 if level is None else level.on_hand
        return product_document(product_id, product["name"], product["price"], on_hand)

    return json_response(await services.store.call(read))


@router.put(
    "/product/{product_id:path}",
    status_code=204,
    summary="Replace a product: its name, price and stock on hand",
    openapi_extra={"requestBody": PRODUCT_REPLACEMENT},
    responses={**_NO_CONTENT, **errors_doc(400, 401, 403, 404, 409, 413, 415)},
)
async def replace_product(request: Request, product_id: str, services: Admin) -> Response:
    """`quantity` sets the stock on hand (as `PUT /v1/inventory/{id}`: queued for the engine,
    which wakes backordered orders; `409` below what open orders have reserved, and then
    nothing changes); name and price change at once."""
    body = await parse_product(request, ProductReplacement)
    if body.id is not None and body.id != product_id:
        raise Problem(400, "invalid-input", f"id {body.id!r} is not {product_id!r}", pointer="/id")

    def replace(client: Client) -> None:
        client.product(product_id)
        client.set_stock(product_id, body.quantity)
        client.update_product(product_id, name=body.name, price=body.price)

    await _write(services, replace)
    return Response(status_code=204)


@router.delete(
    "/product/{product_id:path}",
    status_code=204,
    summary="Remove a product",
    responses={**_NO_CONTENT, **errors_doc(401, 403, 404, 409)},
)
async def delete_product(product_id: str, services: Admin) -> Response:
    """As `realorders products remove`: refused (`409`) while open orders hold it."""
    await services.store.call(lambda client: client.remove_product(product_id))
    return Response(status_code=204)
