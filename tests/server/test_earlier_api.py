"""The earlier C# system's clients against ``realorders serve``, on SQLite and Kafka + Redis.

Each test plays that system's clients: its exact requests and bodies (camelCase, ASP.NET
Core's paths in any case), and checks the codes and bodies it was promised, or the
problem+json that says why a promise cannot hold in realorders. The server, the engine
and the store are the real ones of tests/server/conftest.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from waiting import wait_for

from realorders.server.app import create_app
from realorders.server.options import ENV_OPTIONS, Compat, ServerOptions
from realorders.tokens import Scope

from .conftest import Api, settle, uid

PROBLEM = "application/problem+json"
ORDER_KEYS = {"id", "customerId", "items", "status"}
EARLIER_STATUSES = {
    "Pending",
    "Reserved",
    "Backordered",
    "Packed",
    "Shipped",
    "Delivered",
    "Rejected",
    "Cancelled",
}


def new_order(product_id: str = "KB-01", quantity: int = 2) -> dict[str, Any]:
    """The body the earlier clients sent to create an order."""
    return {"customerId": "ada", "items": [{"productId": product_id, "quantity": quantity}]}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def create(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/api/order", json=body)
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()
    return order


def new_product(http: httpx.Client, quantity: int) -> str:
    """A product of the test's own (``POST /api/product``); its id, made by realorders."""
    response = http.post("/api/product", json={"name": "Lamp", "price": 12.5, "quantity": quantity})
    assert response.status_code == 200, response.text
    product_id: str = response.json()["id"]
    return product_id


def quantity(http: httpx.Client, product_id: str) -> int:
    value: int = http.get(f"/api/product/{product_id}").json()["quantity"]
    return value


# -- orders -----------------------------------------------------------------------------------


def test_create_get_and_list_orders(api: Api) -> None:
    with api.client(Scope.WRITE) as http:
        created = create(http, new_order())
        assert set(created) == ORDER_KEYS
        assert created["customerId"] == "ada"
        assert created["items"] == [{"productId": "KB-01", "quantity": 2}]
        assert created["status"] == "Pending"
        oid = created["id"]
        shown = http.get(f"/api/order/{oid}")
        assert shown.status_code == 200
        assert set(shown.json()) == ORDER_KEYS
        assert shown.json()["status"] in EARLIER_STATUSES
        assert settle(api, [oid]) == {oid: "delivered"}
        assert http.get(f"/api/order/{oid}").json() == {**created, "status": "Delivered"}
        listed = http.get("/api/order")
        assert listed.status_code == 200
        assert listed.headers["content-type"] == "application/json"
        orders = listed.json()
        assert isinstance(orders, list)
        assert {**created, "status": "Delivered"} in orders
        assert all(set(o) == ORDER_KEYS and o["status"] in EARLIER_STATUSES for o in orders)


@pytest.mark.parametrize(
    ("content", "pointer"),
    [
        (None, None),
        (b"", None),
        (b"{not json", None),
        (b"[]", ""),
        (b"{}", "/customerId"),  # missing: named in the earlier spelling, too
        (b'{"customerId": "ada", "items": []}', "/items"),
        (b'{"customerId": "ada", "items": [{"productId": "KB-01", "quantity": 0}]}',
         "/items/0/quantity"),
        (b'{"customerId": "ada", "items": [{"quantity": 1}]}', "/items/0/productId"),
        (b'{"customerId": "", "items": [{"productId": "KB-01", "quantity": 1}]}', "/customerId"),
    ],
)  # fmt: skip
def test_create_refuses_missing_or_invalid_bodies(
    api: Api, content: bytes | None, pointer: str | None
) -> None:
    with api.client(Scope.WRITE) as http:
        headers = {} if content is None else {"Content-Type": "application/json"}
        body = problem(http.post("/api/order", content=content, headers=headers), 400)
    assert body.get("pointer") == pointer
    assert body["detail"]
    assert "customer_id" not in body["detail"]  # the earlier API's spelling in the answer
    assert "product_id" not in body["detail"]


def test_property_names_in_any_case_as_aspnet_reads_them(api: Api) -> None:
    body = {"CustomerId": "ada", "Items": [{"ProductId": "MS-02", "Quantity": 1}], "Extra": 1}
    with api.client(Scope.WRITE) as http:
        created = create(http, body)
    assert created["items"] == [{"productId": "MS-02", "quantity": 1}]
    assert created["customerId"] == "ada"


def test_a_given_id_is_kept_and_idempotent(api: Api) -> None:
    oid = uid("Ord")
    with api.client(Scope.WRITE) as http:
        first = create(http, {"id": oid, **new_order()})
        assert first["id"] == oid
        again = create(http, {"id": oid, **new_order()})
        assert again["id"] == oid
        assert again["items"] == first["items"]
        other = http.post("/api/order", json={"id": oid, **new_order(quantity=3)})
        assert oid in problem(other, 409)["detail"]
    settle(api, [oid])


def test_unknown_orders_are_404(api: Api) -> None:
    missing = uid("nope")
    with api.client(Scope.WRITE) as http:
        assert problem(http.get(f"/api/order/{missing}"), 404)["type"].endswith(":not-found")
        problem(http.put(f"/api/order/{missing}", json={"id": missing, **new_order()}), 404)
        problem(http.put(f"/api/order/status/{missing}", json={"id": missing, "status": "X"}), 404)
        problem(http.delete(f"/api/order/{missing}"), 404)


def test_delete_cancels_while_cancellable_then_409(api: Api) -> None:
    with api.client() as http, api.library() as shop:
        empty_shelf = new_product(http, quantity=0)
        waiting = create(http, new_order(empty_shelf, 1))["id"]
        shop.wait([waiting], settled=True, timeout=120)
        assert http.get(f"/api/order/{waiting}").json()["status"] == "Backordered"
        deleted = http.delete(f"/api/order/{waiting}")
        assert deleted.status_code == 204, deleted.text
        assert deleted.content == b""
        assert settle(api, [waiting]) == {waiting: "cancelled"}
        assert http.get(f"/api/order/{waiting}").json()["status"] == "Cancelled"
        delivered = create(http, new_order())["id"]
        assert settle(api, [delivered]) == {delivered: "delivered"}
        late = problem(http.delete(f"/api/order/{delivered}"), 409)
        assert late["type"] == "urn:realorders:problem:refused"
        assert "delivered" in late["detail"]
        assert http.get(f"/api/order/{delivered}").json()["status"] == "Delivered"


def test_replacing_an_order_is_refused_with_what_to_do_instead(api: Api) -> None:
    with api.client(Scope.WRITE) as http:
        order = create(http, new_order())
        oid = order["id"]
        replacement = {**order, "items": [{"productId": "MS-02", "quantity": 5}]}
        refused = http.put(f"/api/order/{oid}", json=replacement)
        body = problem(refused, 405)
        assert refused.headers["allow"] == "GET, DELETE"
        assert body["type"] == "urn:realorders:problem:method-not-allowed"
        assert "DELETE /api/order/{id}" in body["detail"]
        assert "POST /api/order" in body["detail"]
        assert body["order_id"] == oid
        settle(api, [oid])
        kept = http.get(f"/api/order/{oid}").json()
        assert kept["items"] == order["items"]


@pytest.mark.parametrize("status", ["Processed", "InventoryChecked"])
def test_setting_a_status_is_refused_the_engine_sets_it(api: Api, status: str) -> None:
    with api.client(Scope.WRITE) as http:
        oid = create(http, new_order())["id"]
        assert settle(api, [oid]) == {oid: "delivered"}
        refused = http.put(f"/api/order/status/{oid}", json={"id": oid, "status": status})
        body = problem(refused, 405)
        assert "only the engine" in body["detail"]
        assert body["order_status"] == "Delivered"
        assert http.get(f"/api/order/{oid}").json()["status"] == "Delivered"


# -- products ---------------------------------------------------------------------------------


def test_products_create_read_replace_and_delete(api: Api) -> None:
    with api.client() as http:
        created = http.post("/api/product", json={"name": "Lamp", "price": 12.5, "quantity": 4})
        assert created.status_code == 200, created.text
        product = created.json()
        pid = product["id"]
        assert product == {"id": pid, "name": "Lamp", "price": 12.5, "quantity": 4}
        assert pid  # made by realorders
        assert http.get(f"/api/product/{pid}").json() == product
        assert product in http.get("/api/product").json()
        replaced = http.put(
            f"/api/product/{pid}",
            json={"id": pid, "name": "Desk lamp", "price": 14.0, "quantity": 9},
        )
        assert replaced.status_code == 204, replaced.text
        wait_for(lambda: quantity(http, pid), lambda q: q == 9, what="quantity 9")
        assert http.get(f"/api/product/{pid}").json() == {
            "id": pid,
            "name": "Desk lamp",
            "price": 14.0,
            "quantity": 9,
        }
        assert http.delete(f"/api/product/{pid}").status_code == 204
        problem(http.get(f"/api/product/{pid}"), 404)
        problem(http.delete(f"/api/product/{pid}"), 404)
        full = {"name": "x", "price": 1, "quantity": 1}
        problem(http.put(f"/api/product/{uid()}", json=full), 404)


def test_a_given_product_id_is_kept_and_taken_once(api: Api) -> None:
    pid = uid("SKU")
    with api.client() as http:
        body = {"id": pid, "name": "Rare", "price": 3, "quantity": 1}
        assert http.post("/api/product", json=body).json()["id"] == pid
        problem(http.post("/api/product", json=body), 409)


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"price": 1, "quantity": 1},
        {"name": "Lamp", "price": -1},
        {"name": "Lamp", "price": 1, "quantity": -1},
        {"name": "Lamp", "price": "cheap"},
        [],
    ],
)
def test_product_bodies_missing_or_invalid_are_400(api: Api, body: Any) -> None:
    with api.client() as http:
        problem(http.post("/api/product", json=body), 400)


def test_replacing_a_product_needs_the_whole_product(api: Api) -> None:
    with api.client() as http:
        pid = new_product(http, quantity=3)
        no_quantity = problem(http.put(f"/api/product/{pid}", json={"name": "L", "price": 1}), 400)
        assert no_quantity["pointer"] == "/quantity"
        other_id = {"id": uid(), "name": "L", "price": 1, "quantity": 1}
        assert problem(http.put(f"/api/product/{pid}", json=other_id), 400)["pointer"] == "/id"
        assert http.get(f"/api/product/{pid}").json()["quantity"] == 3  # nothing changed


def test_quantity_is_stock_on_hand_and_wakes_backorders(api: Api) -> None:
    with api.client() as http, api.library() as shop:
        pid = new_product(http, quantity=0)
        oid = create(http, new_order(pid, 3))["id"]
        shop.wait([oid], settled=True, timeout=120)
        assert http.get(f"/api/order/{oid}").json()["status"] == "Backordered"
        full = {"name": "Lamp", "price": 12.5, "quantity": 5}
        assert http.put(f"/api/product/{pid}", json=full).status_code == 204
        assert settle(api, [oid]) == {oid: "delivered"}
        wait_for(lambda: quantity(http, pid), lambda q: q == 2, what="5 on hand, 3 shipped")


# -- the HTTP surface -------------------------------------------------------------------------


def test_paths_in_any_case_ids_kept_verbatim(api: Api) -> None:
    oid = uid("MiXeD")
    with api.client() as http:
        create(http, {"id": oid, **new_order()})
        assert http.get(f"/API/ORDER/{oid}").json()["id"] == oid
        assert http.get(f"/Api/Order/{oid}").json()["id"] == oid
        problem(http.get(f"/api/order/{oid.lower()}"), 404)  # the id keeps its case
        assert any(o["id"] == oid for o in http.get("/API/Order").json())
        assert any(o["id"] == oid for o in http.get("/api/order/").json())
        assert http.get("/API/PRODUCT/KB-01").json()["id"] == "KB-01"
        assert problem(http.put(f"/API/order/STATUS/{oid}", json={}), 405)["order_id"] == oid
        odd = f"a/b?c#d%20e-{uid()}"
        create(http, {"id": odd, **new_order()})
        assert http.get(f"/api/order/{quote(odd, safe='')}").json()["id"] == odd
        problem(http.get("/V1/orders"), 404)  # /v1 stays as it is: exact paths
        settle(api, [oid, odd])


def test_tokens_and_scopes_are_the_v1_ones(api: Api) -> None:
    with api.client(None) as anonymous:
        for method, path in [
            ("GET", "/api/order"),
            ("POST", "/api/order"),
            ("GET", "/api/order/x"),
            ("DELETE", "/api/order/x"),
            ("PUT", "/api/order/status/x"),
            ("GET", "/api/product"),
            ("POST", "/api/product"),
        ]:
            response = anonymous.request(method, path, json={})
            assert problem(response, 401)["type"] == "urn:realorders:problem:unauthorized"
    with api.client(Scope.READ) as reader:
        assert reader.get("/api/order").status_code == 200
        assert reader.get("/api/product").status_code == 200
        problem(reader.post("/api/order", json=new_order()), 403)
    with api.client(Scope.WRITE) as writer:
        problem(writer.post("/api/product", json={"name": "x", "price": 1}), 403)
        problem(writer.delete("/api/product/KB-01"), 403)
    with api.client(token="ro_000000000000_" + "x" * 43) as forged:
        problem(forged.get("/api/order"), 401)


def test_the_routes_are_documented(api: Api) -> None:
    with api.client(None) as http:
        paths = http.get("/openapi.json").json()["paths"]
    assert set(paths["/api/order"]) == {"get", "post"}
    assert set(paths["/api/order/{order_id}"]) == {"get", "put", "delete"}
    assert set(paths["/api/order/status/{order_id}"]) == {"put"}
    assert set(paths["/api/product/{product_id}"]) == {"get", "put", "delete"}
    assert "405" in paths["/api/order/{order_id}"]["put"]["responses"]


def test_compat_none_mounts_no_earlier_route(monkeypatch: pytest.MonkeyPatch) -> None:
    def earlier_paths(compat: Compat) -> set[str]:
        app = create_app(ServerOptions(compat=compat))
        return {p for p in app.openapi()["paths"] if p.startswith("/api")}

    assert earlier_paths(Compat.NONE) == set()
    assert earlier_paths(Compat.EARLIER_API) >= {"/api/order", "/api/product"}
    assert ServerOptions().compat is Compat.EARLIER_API  # on by default
    monkeypatch.setenv(ENV_OPTIONS, ServerOptions(compat=Compat.NONE).to_env())
    assert ServerOptions.from_env().compat is Compat.NONE  # what --workers processes get
