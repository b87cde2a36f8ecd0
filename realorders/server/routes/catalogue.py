"""``/v1/products`` and ``/v1/inventory``: the catalogue and stock, as ``products`` and
``inventory`` manage them. Reading needs ``read``; changing either needs ``admin``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response

from realorders.client import Client
from realorders.server.models import (
    NewProduct,
    ProductChange,
    QueuedCommand,
    RestockBody,
    StockBody,
)
from realorders.server.responses import errors_doc, json_response
from realorders.server.services import Admin, Reader

__all__ = ["router"]

router = APIRouter(prefix="/v1")


_PRODUCT = {
    "type": "object",
    "required": ["product_id", "name", "price"],
    "properties": {
        "product_id": {"type": "string"},
        "name": {"type": ["string", "null"]},
        "price": {"type": ["number", "null"]},
    },
}
_LEVEL = {
    "type": "object",
    "required": ["product_id", "on_hand", "reserved", "available", "backordered"],
    "properties": {
        "product_id": {"type": "string"},
        "name": {"type": ["string", "null"]},
        "price": {"type": ["number", "null"]},
        "on_hand": {"type": "integer"},
        "reserved": {"type": "integer"},
        "available": {"type": "integer"},
        "backordered": {"type": "integer"},
    },
}


def _doc(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _product_path(product_id: str) -> str:
    return f"/v1/products/{quote(product_id, safe='')}"


@router.get(
    "/products",
    tags=["products"],
    summary="The catalogue",
    responses={200: _doc({"type": "array", "items": _PRODUCT}), **errors_doc(401, 403)},
)
async def products(services: Reader) -> Response:
    return json_response(await services.store.call(Client.products))


@router.post(
    "/products",
    tags=["products"],
    status_code=201,
    summary="Add a product",
    responses={201: _doc(_PRODUCT), **errors_doc(401, 403, 409, 413, 422)},
)
async def add_product(body: NewProduct, services: Admin) -> Response:
    """Like `realorders products add`; `409` when the id is taken."""

    def add(client: Client) -> dict[str, Any]:
        client.add_product(body.id, body.name, body.price, body.stock)
        return client.product(body.id)

    created = await services.store.call(add)
    return json_response(created, 201, {"Location": _product_path(body.id)})


@router.get(
    "/products/{product_id:path}",
    tags=["products"],
    summary="One product",
    responses={200: _doc(_PRODUCT), **errors_doc(401, 403, 404)},
)
async def product(product_id: str, services: Reader) -> Response:
    return json_response(await services.store.call(lambda client: client.product(product_id)))


@router.patch(
    "/products/{product_id:path}",
    tags=["products"],
    summary="Rename or reprice a product",
    responses={200: _doc(_PRODUCT), **errors_doc(400, 401, 403, 404, 413, 422)},
)
async def update_product(product_id: str, body: ProductChange, services: Admin) -> Response:
    def update(client: Client) -> dict[str, Any]:
        client.update_product(product_id, name=body.name, price=body.price)
        return client.product(product_id)

    return json_response(await services.store.call(update))


@router.delete(
    "/products/{product_id:path}",
    tags=["products"],
    status_code=204,
    summary="Remove a product",
    responses={204: {"description": "Removed"}, **errors_doc(401, 403, 404, 409)},
)
async def remove_product(product_id: str, services: Admin) -> Response:
    """Like `realorders products remove`: refused (`409`) while open orders hold it."""
    await services.store.call(lambda client: client.remove_product(product_id))
    return Response(status_code=204)


@router.get(
    "/inventory",
    tags=["inventory"],
    summary="Stock levels",
    responses={200: _doc({"type": "array", "items": _LEVEL}), **errors_doc(401, 403)},
)
async def inventory(services: Reader) -> Response:
    levels = await services.store.call(Client.levels)
    return json_response([level.to_dict() for level in levels])


@router.post(
    "/inventory/{product_id:path}/restock",
    tags=["inventory"],
    status_code=202,
    summary="Restock a product",
    responses={202: {"model": QueuedCommand}, **errors_doc(401, 403, 404, 413, 422)},
)
async def restock(product_id: str, body: RestockBody, services: Admin) -> Response:
    """Queued for the engine (`202`), which applies it and wakes backordered orders."""
    position = await services.store.call(lambda client: client.restock(product_id, body.quantity))
    return json_response({"position": position, "links": {"inventory": "/v1/inventory"}}, 202)


@router.put(
    "/inventory/{product_id:path}",
    tags=["inventory"],
    status_code=202,
    summary="Set a product's on-hand stock",
    responses={202: {"model": QueuedCommand}, **errors_doc(401, 403, 404, 409, 413, 422)},
)
async def set_stock(product_id: str, body: StockBody, services: Admin) -> Response:
    """Queued for the engine (`202`); `409` when below what open orders have reserved."""
    position = await services.store.call(lambda client: client.set_stock(product_id, body.on_hand))
    return json_response({"position": position, "links": {"inventory": "/v1/inventory"}}, 202)
