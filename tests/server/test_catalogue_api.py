"""Products, stock, stats, check, health, readiness, metrics and the API's own documents."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from waiting import wait_for

from .conftest import BACKENDS, Api, order_body, settle, uid


def test_products_crud(api: Api) -> None:
    pid = uid("SKU")
    with api.client() as http:
        created = http.post("/v1/products", json={"id": pid, "name": "Lamp", "price": 12.5})
        assert created.status_code == 201, created.text
        assert created.json() == {"product_id": pid, "name": "Lamp", "price": 12.5}
        assert created.headers["location"] == f"/v1/products/{pid}"
        twice = http.post("/v1/products", json={"id": pid, "name": "Lamp", "price": 12.5})
        assert twice.status_code == 409
        assert any(p["product_id"] == pid for p in http.get("/v1/products").json())
        changed = http.patch(f"/v1/products/{pid}", json={"price": 14.0})
        assert changed.status_code == 200
        assert changed.json()["price"] == 14.0
        assert http.get(f"/v1/products/{pid}").json()["name"] == "Lamp"
        nothing = http.patch(f"/v1/products/{pid}", json={})
        assert nothing.status_code == 400
        negative = http.patch(f"/v1/products/{pid}", json={"price": -1})
        assert negative.status_code == 422
        assert http.delete(f"/v1/products/{pid}").status_code == 204
        assert http.get(f"/v1/products/{pid}").status_code == 404


def test_product_in_open_orders_cannot_be_removed(api: Api) -> None:
    pid = uid("SKU")
    oid = uid()
    body = {"id": oid, "customer_id": "ada", "items": [{"product_id": pid, "quantity": 3}]}
    with api.client() as http, api.library() as shop:
        http.post("/v1/products", json={"id": pid, "name": "Rare", "price": 1}).raise_for_status()
        http.post("/v1/orders", json=body).raise_for_status()
        shop.wait([oid], settled=True, timeout=120)
        refused = http.delete(f"/v1/products/{pid}")
        assert refused.status_code == 409
        assert oid in refused.json()["detail"]


def test_restock_wakes_a_backordered_order(api: Api) -> None:
    pid = uid("SKU")
    oid = uid()
    body = {"id": oid, "customer_id": "ada", "items": [{"product_id": pid, "quantity": 3}]}
    with api.client() as http, api.library() as shop:
        http.post("/v1/products", json={"id": pid, "name": "Rare", "price": 1}).raise_for_status()
        http.post("/v1/orders", json=body).raise_for_status()
        shop.wait([oid], settled=True, timeout=120)
        assert http.get(f"/v1/orders/{oid}").json()["status"] == "backordered"
        level = next(lv for lv in http.get("/v1/inventory").json() if lv["product_id"] == pid)
        assert level["backordered"] == 1
        queued = http.post(f"/v1/inventory/{pid}/restock", json={"quantity": 5})
        assert queued.status_code == 202, queued.text
        assert settle(api, [oid]) == {oid: "delivered"}
        level = next(lv for lv in http.get("/v1/inventory").json() if lv["product_id"] == pid)
        assert level["on_hand"] == 2
        set_to = http.put(f"/v1/inventory/{quote(pid)}", json={"on_hand": 7})
        assert set_to.status_code == 202
        wait_for(
            lambda: next(
                lv["on_hand"] for lv in http.get("/v1/inventory").json() if lv["product_id"] == pid
            ),
            lambda on_hand: on_hand == 7,
        )
        for bad in ({"quantity": 0}, {"quantity": "three"}, {"quantity": 10**30}, {}):
            refused = http.post(f"/v1/inventory/{pid}/restock", json=bad)
            assert refused.status_code == 422, (bad, refused.text)
        unknown = http.post(f"/v1/inventory/{uid()}/restock", json={"quantity": 1})
        assert unknown.status_code == 404


def test_stats_and_check(api: Api) -> None:
    oid = uid()
    with api.client() as http:
        http.post("/v1/orders", json=order_body(oid)).raise_for_status()
        settle(api, [oid])
        stats = http.get("/v1/stats").json()
        assert stats["by_status"]["delivered"] >= 1
        assert stats["engine"]["running"] is True
        report = http.get("/v1/check").json()
        assert report["ok"] is True, report["problems"]


def test_health_readiness_and_metrics(api: Api) -> None:
    with api.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["ready"] is True
        assert ready.json()["engine_running"] is True
        http.get("/v1/orders").raise_for_status()
        metrics = http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert 'realorders_http_requests_total{code="200",method="GET",route="/v1/orders"}' in text
        assert "realorders_http_request_seconds_bucket" in text
        assert "realorders_engine_running 1.0" in text
        assert "realorders_sse_clients" in text


@pytest.mark.parametrize("fresh_api", BACKENDS, indirect=True)
def test_readiness_reports_a_missing_engine(fresh_api: Api) -> None:
    fresh_api.start_server()
    with fresh_api.client() as http:
        ready = http.get("/readyz").json()
    assert ready["ready"] is True  # the store answers: the server can take orders
    assert ready["engine_running"] is False
    assert ready["backlog"] == 0


def test_openapi_and_docs(api: Api) -> None:
    with api.client(None) as http:  # the API's description holds no data: public, like /docs
        spec = http.get("/openapi.json")
        assert spec.status_code == 200
        paths = spec.json()["paths"]
        for path in (
            "/v1/orders",
            "/v1/orders:import",
            "/v1/orders/{order_id}",
            "/v1/orders/{order_id}/cancel",
            "/v1/orders/{order_id}/events",
            "/v1/events",
            "/v1/products",
            "/v1/products/{product_id}",
            "/v1/inventory",
            "/v1/inventory/{product_id}/restock",
            "/v1/inventory/{product_id}",
            "/v1/stats",
            "/v1/check",
            "/healthz",
            "/readyz",
            "/metrics",
        ):
            assert path in paths, path
        docs = http.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
