"""The order routes through a real server, on SQLite and on Kafka + Redis."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from realorders.tokens import Scope

from .conftest import Api, order_body, settle, uid

PROBLEM = "application/problem+json"


def test_submit_replay_and_conflict(api: Api) -> None:
    oid = uid()
    with api.client() as http:
        first = http.post("/v1/orders", json=order_body(oid))
        assert first.status_code == 201, first.text
        assert first.headers["location"] == f"/v1/orders/{oid}"
        again = http.post("/v1/orders", json=order_body(oid))
        assert again.status_code == 200
        assert again.json() == first.json()
        assert "location" not in again.headers
        other = http.post("/v1/orders", json=order_body(oid, customer_id="bob"))
        assert other.status_code == 409
        assert other.headers["content-type"] == PROBLEM
        problem = other.json()
        assert problem["type"] == "urn:realorders:problem:conflict"
        assert problem["status"] == 409
        assert oid in problem["detail"]
        shown = http.get(f"/v1/orders/{oid}").json()
        assert shown["customer_id"] == "ada"  # the stored order is kept


def test_idempotency_key_names_the_order(api: Api) -> None:
    key = uid("key")
    body = order_body()
    with api.client() as http:
        first = http.post("/v1/orders", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == 201
        assert first.json()["id"] == key
        retry = http.post("/v1/orders", json=body, headers={"Idempotency-Key": key})
        assert retry.status_code == 200
        assert retry.json() == first.json()
        clash = http.post("/v1/orders", json=order_body(uid()), headers={"Idempotency-Key": key})
        assert clash.status_code == 422
        assert clash.json()["pointer"] == "/id"


def test_camel_case_orders_of_the_earlier_design(api: Api) -> None:
    oid = uid()
    body = {"orderId": oid, "customerId": "ada", "items": [{"productId": "MS-02", "quantity": 2}]}
    with api.client() as http:
        response = http.post("/v1/orders", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["items"] == [{"product_id": "MS-02", "quantity": 2}]


def test_wait_terminal_answers_with_the_finished_order(api: Api) -> None:
    oid = uid()
    with api.client() as http:
        response = http.post(
            "/v1/orders", json=order_body(oid), params={"wait": "terminal", "timeout": 60}
        )
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "delivered"
    assert [e["status"] for e in order["events"]][-1] == "delivered"


def test_show_with_etag_and_304(api: Api) -> None:
    oid = uid()
    with api.client() as http:
        http.post("/v1/orders", json=order_body(oid)).raise_for_status()
        settle(api, [oid])
        shown = http.get(f"/v1/orders/{oid}")
        assert shown.status_code == 200
        body = shown.json()
        assert body["status"] == "delivered"
        assert body["total"] == 89.0
        assert [e["status"] for e in body["events"]] == [
            "pending",
            "reserved",
            "packed",
            "shipped",
            "delivered",
        ]
        assert body["created_at"].endswith("Z")
        etag = shown.headers["etag"]
        unchanged = http.get(f"/v1/orders/{oid}", headers={"If-None-Match": etag})
        assert unchanged.status_code == 304
        assert unchanged.content == b""
        stale = http.get(f"/v1/orders/{oid}", headers={"If-None-Match": '"v1"'})
        assert stale.status_code == 200


@pytest.mark.parametrize(
    "order_id",
    ["ünïcødé-ορδερ", "x' OR 1=1; DROP TABLE orders; --", "../../etc/passwd", "a/b?c#d%20e"],
)
def test_odd_ids_are_kept_verbatim_also_in_urls(api: Api, order_id: str) -> None:
    oid = f"{order_id}-{uid()}"
    with api.client() as http:
        created = http.post("/v1/orders", json=order_body(oid))
        assert created.status_code == 201, created.text
        assert created.json()["id"] == oid
        shown = http.get(f"/v1/orders/{quote(oid, safe='')}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["id"] == oid
        assert http.get(created.headers["location"]).json()["id"] == oid


def test_unknown_order_is_404_problem(api: Api) -> None:
    with api.client() as http:
        missing = http.get(f"/v1/orders/{uid('nope')}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["type"] == "urn:realorders:problem:not-found"


def test_cancel_queued_then_refused_when_done(api: Api) -> None:
    oid = uid()
    with api.client() as http:
        http.post("/v1/orders", json=order_body(oid)).raise_for_status()
        settle(api, [oid])
        late = http.post(f"/v1/orders/{oid}/cancel")
        assert late.status_code == 409
        assert "delivered" in late.json()["detail"]
        missing = http.post(f"/v1/orders/{uid()}/cancel")
        assert missing.status_code == 404


def test_cancel_backordered_order(api: Api) -> None:
    oid = uid()
    body = {"id": oid, "customer_id": "ada", "items": [{"product_id": "SP-07", "quantity": 5}]}
    with api.client() as http, api.library() as shop:
        http.post("/v1/orders", json=body).raise_for_status()
        shop.wait([oid], settled=True, timeout=120)
        assert http.get(f"/v1/orders/{oid}").json()["status"] == "backordered"
        queued = http.post(f"/v1/orders/{oid}/cancel", json={"reason": "changed my mind"})
        assert queued.status_code == 202, queued.text
        assert queued.json()["position"] > 0
        assert settle(api, [oid]) == {oid: "cancelled"}
        events = http.get(f"/v1/orders/{oid}").json()["events"]
        assert events[-1]["status"] == "cancelled"


def test_import_ndjson_reports_lines_like_the_cli(api: Api) -> None:
    good = [uid() for _ in range(3)]
    lines = [json.dumps(order_body(oid)) for oid in good]
    lines.insert(1, '{"id": "bad", "customer_id": "ada", "items": [{"product_id": "KB-01"}]}')
    lines.insert(3, "not json")
    body = "\n".join(lines) + "\n"
    with api.client() as http:
        response = http.post(
            "/v1/orders:import", content=body, headers={"Content-Type": "application/x-ndjson"}
        )
        assert response.status_code == 200, response.text
        summary = response.json()
        assert summary["accepted"] == 3
        assert summary["invalid"] == 2
        assert not summary["ok"]
        assert [e["line"] for e in summary["errors"]] == [2, 4]
        again = http.post(
            "/v1/orders:import", content=body, headers={"Content-Type": "application/x-ndjson"}
        ).json()
        assert again["accepted"] == 0
        assert again["duplicates"] == 3
    settle(api, good)


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_import_csv_and_json_array(api: Api, kind: str) -> None:
    ids = [uid() for _ in range(4)]
    if kind == "csv":
        rows = ["order_id,customer_id,product_id,quantity"]
        rows += [f"{oid},ada,KB-01,1" for oid in ids]
        content, media = "\n".join(rows) + "\n", "text/csv"
    else:
        content, media = json.dumps([order_body(oid) for oid in ids]), "application/json"
    with api.client() as http:
        response = http.post("/v1/orders:import", content=content, headers={"Content-Type": media})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 4
    settle(api, ids)


def test_import_refuses_unknown_media_type(api: Api) -> None:
    with api.client() as http:
        response = http.post(
            "/v1/orders:import", content=b"<xml/>", headers={"Content-Type": "application/xml"}
        )
    assert response.status_code == 415
    assert "application/x-ndjson" in response.json()["detail"]


def test_list_pages_without_skipping_or_repeating(api: Api) -> None:
    customer = uid("cust")
    ids = [uid() for _ in range(7)]
    with api.client() as http:
        for oid in ids:
            http.post("/v1/orders", json=order_body(oid, customer_id=customer)).raise_for_status()
        seen: list[str] = []
        url: str | None = f"/v1/orders?customer_id={customer}&limit=3"
        pages = 0
        while url is not None:
            page = http.get(url)
            assert page.status_code == 200, page.text
            seen += [o["id"] for o in page.json()["data"]]
            url = page.json()["next"]
            pages += 1
            if url is not None:
                assert page.headers["link"] == f'<{url}>; rel="next"'
        assert seen == list(reversed(ids))
        assert pages == 3
        bad = http.get("/v1/orders", params={"cursor": "nonsense!"})
        assert bad.status_code == 422
        assert bad.json()["parameter"] == "cursor"


def test_concurrent_posts_share_commits_and_all_land(api: Api) -> None:
    ids = [uid() for _ in range(200)]

    with api.client() as shared, ThreadPoolExecutor(32) as pool:  # httpx.Client is thread-safe
        codes = list(
            pool.map(lambda oid: shared.post("/v1/orders", json=order_body(oid)).status_code, ids)
        )
    assert codes == [201] * len(ids)
    assert set(settle(api, ids).values()) == {"delivered"}
    with api.client() as http:
        metrics = http.get("/metrics").text

    def sample(name: str) -> float:
        return next(
            float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name)
        )

    accepted = sample("realorders_orders_accepted_total")
    assert accepted >= len(ids)
    assert 1 <= sample("realorders_intake_commits_total") <= accepted


def test_paging_while_orders_arrive_neither_skips_nor_repeats(api: Api) -> None:
    customer = uid("busy")
    before = [uid() for _ in range(40)]
    with api.client() as http:
        for oid in before:
            http.post("/v1/orders", json=order_body(oid, customer_id=customer)).raise_for_status()
    stop = threading.Event()
    posting = threading.Event()
    arrived: list[str] = []

    def keep_posting() -> None:
        with api.client() as writer:
            while not stop.is_set():
                oid = uid()
                writer.post("/v1/orders", json=order_body(oid, customer_id=customer))
                arrived.append(oid)
                posting.set()

    feeder = threading.Thread(target=keep_posting)
    feeder.start()
    try:
        # on a loaded machine the feeder's first POST can come after ten short pages
        assert posting.wait(30), "the feeder posted nothing in 30 s"
        seen: list[str] = []
        with api.client(Scope.READ) as http:
            url: str | None = f"/v1/orders?customer_id={customer}&limit=4"
            while url is not None:
                page = http.get(url).json()
                seen += [o["id"] for o in page["data"]]
                url = page["next"]
    finally:
        stop.set()
        feeder.join()
    assert arrived, "orders should have arrived while paging"
    assert len(seen) == len(set(seen)), "an order came twice"
    assert set(before) <= set(seen), "an order that existed before paging was skipped"
    assert set(seen) <= set(before) | set(arrived)
    settle(api, before + arrived)
