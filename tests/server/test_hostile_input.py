"""Hostile input: each gets a problem+json answer with the right code, and nothing already
accepted is lost (the module's orders are all still there, and ``check`` passes, at the end)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from waiting import wait_for

from realorders.tokens import Scope

from .conftest import BACKENDS, Api, order_body, settle, uid

PROBLEM = "application/problem+json"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def accepted(api: Api) -> list[str]:
    """Orders accepted before the abuse; the last test checks they are all intact."""
    ids = [uid("kept") for _ in range(5)]
    with api.client() as http:
        for oid in ids:
            http.post("/v1/orders", json=order_body(oid)).raise_for_status()
    return ids


def post_raw(api: Api, body: bytes, content_type: str = "application/json") -> httpx.Response:
    with api.client() as http:
        return http.post("/v1/orders", content=body, headers={"Content-Type": content_type})


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert set(problem) >= {"type", "title", "status", "detail"}
    assert "Traceback" not in response.text
    return problem


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"customer_id": "ada",', b"nul\x00l", b"\xff\xfe{}", b"", b"[1, 2"],
    ids=["open-brace", "truncated", "nul", "bad-utf8", "empty", "open-array"],
)
def test_malformed_json_is_400(api: Api, accepted: list[str], body: bytes) -> None:
    assert_problem(post_raw(api, body), 400)


@pytest.mark.parametrize("value", ["[]", '"order"', "42", "null", "true", "[{}]"])
def test_a_json_value_that_is_not_an_object_is_422(
    api: Api, accepted: list[str], value: str
) -> None:
    problem = assert_problem(post_raw(api, value.encode()), 422)
    assert "expected one order object" in problem["detail"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"customer_id": 5, "items": [{"product_id": "KB-01", "quantity": 1}]}, "/customer_id"),
        ({"customer_id": "ada", "items": "KB-01"}, "/items"),
        (
            {"customer_id": "ada", "items": [{"product_id": 7, "quantity": 1}]},
            "/items/0/product_id",
        ),
        ({"customer_id": "ada", "items": [["KB-01", 1]]}, "/items/0"),
        (
            {"customer_id": "ada", "items": [{"product_id": "KB-01", "quantity": 1}], "notes": 3},
            "/notes",
        ),
        ({"items": [{"product_id": "KB-01", "quantity": 1}]}, "/customer_id"),
    ],
)
def test_wrong_types_point_at_the_field(
    api: Api, accepted: list[str], body: dict[str, Any], pointer: str
) -> None:
    problem = assert_problem(post_raw(api, json.dumps(body).encode()), 422)
    assert problem["pointer"] == pointer


@pytest.mark.parametrize("quantity", ["0", "-1", "1.5", '"three"', str(10**30), "1e3", "null"])
def test_bad_quantities(api: Api, accepted: list[str], quantity: str) -> None:
    body = f'{{"customer_id": "ada", "items": [{{"product_id": "KB-01", "quantity": {quantity}}}]}}'
    problem = assert_problem(post_raw(api, body.encode()), 422)
    assert problem["pointer"] == "/items/0/quantity"
    assert "quantity" in problem["detail"]


@pytest.mark.parametrize(
    ("params", "headers", "name"),
    [
        ({"wait": "soon"}, {}, "wait"),
        ({"wait": "terminal", "timeout": "0"}, {}, "timeout"),
        ({"wait": "terminal", "timeout": "301"}, {}, "timeout"),
        ({"wait": "terminal", "timeout": "nan"}, {}, "timeout"),
        ({"wait": "terminal", "timeout": "soon"}, {}, "timeout"),
        ({}, {"Idempotency-Key": "k" * 201}, "Idempotency-Key"),
    ],
    ids=["wait-soon", "timeout-0", "timeout-301", "timeout-nan", "timeout-word", "long-key"],
)
def test_bad_submit_parameters_name_the_parameter(
    api: Api, accepted: list[str], params: dict[str, str], headers: dict[str, str], name: str
) -> None:
    oid = uid("param")
    with api.client() as http:
        answer = http.post("/v1/orders", json=order_body(oid), params=params, headers=headers)
        problem = assert_problem(answer, 422)
        assert problem["parameter"] == name
        assert http.get(f"/v1/orders/{oid}").status_code == 404  # refused, so not stored


def test_ten_mib_bodies_are_413(api: Api, accepted: list[str]) -> None:
    big = json.dumps(order_body(notes="x" * (10 * MIB))).encode()
    assert_problem(post_raw(api, big), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as it streams
        for _ in range(10):
            yield b" " * MIB

    with api.client() as http:
        streamed = http.post(
            "/v1/orders", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert_problem(streamed, 413)
        product = http.post(
            "/v1/products", content=big, headers={"Content-Type": "application/json"}
        )
        assert_problem(product, 413)
        line = json.dumps(order_body(uid(), notes="y" * (2 * MIB))).encode() + b"\n"
        imported = http.post(
            "/v1/orders:import", content=line, headers={"Content-Type": "application/x-ndjson"}
        )
        assert assert_problem(imported, 413)["line"] == 1


def test_wrong_content_type_is_415(api: Api, accepted: list[str]) -> None:
    body = json.dumps(order_body()).encode()
    assert_problem(post_raw(api, body, "text/plain"), 415)
    assert_problem(post_raw(api, body, ""), 415)


def test_odd_text_in_ids_is_kept_verbatim_but_nul_is_refused(api: Api, accepted: list[str]) -> None:
    oid = f"{uid()}\u202e\U0001f600\t"
    with api.client() as http:
        created = http.post("/v1/orders", json=order_body(oid))
        assert created.status_code == 201, created.text
        assert created.json()["id"] == oid
        accepted.append(oid)
        shown = http.get(f"/v1/orders/{quote(oid, safe='')}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["id"] == oid
        nul = http.post("/v1/orders", json=order_body(f"nul\x00{uid()}"))
        assert assert_problem(nul, 422)["pointer"] == "/id"
        assert "NUL" in nul.json()["detail"]


def test_lone_surrogates_are_refused_as_malformed(api: Api, accepted: list[str]) -> None:
    """A lone surrogate escape cannot become UTF-8 text: the JSON is refused whole."""
    items = b'[{"product_id": "KB-01", "quantity": 1}]'
    body = b'{"id": "\\ud800", "customer_id": "ada", "items": ' + items + b"}"
    assert "surrogate" in assert_problem(post_raw(api, body), 400)["detail"]


def _connect(api: Api) -> socket.socket:
    parts = urlsplit(api.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


@pytest.mark.parametrize("fresh_api", BACKENDS, indirect=True)
def test_slow_clients_are_cut_off(fresh_api: Api) -> None:
    """Slowloris: headers (or a body) trickled in are dropped at --client-timeout, and the
    server keeps answering everyone else meanwhile."""
    api = fresh_api
    api.start_server("--client-timeout", "1")
    slow_headers = _connect(api)
    slow_headers.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\n")
    slow_body = _connect(api)
    token = api.tokens[Scope.WRITE]
    slow_body.sendall(
        b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 100\r\n\r\n{"
    )
    with api.client() as http:
        assert http.post("/v1/orders", json=order_body(uid())).status_code == 201
    started = time.monotonic()
    for sock in (slow_headers, slow_body):
        sock.settimeout(30)
        answer = b""
        while chunk := sock.recv(65536):  # b"": the server closed the connection
            answer += chunk
        sock.close()
        if sock is slow_body:
            assert b" 408 " in answer.split(b"\r\n", 1)[0]
    assert time.monotonic() - started < 30  # cut off, not left to hang


@pytest.mark.parametrize("fresh_api", BACKENDS, indirect=True)
def test_a_thousand_sse_clients_connect_and_vanish(fresh_api: Api) -> None:
    api = fresh_api
    api.start_server()
    token = api.tokens[Scope.READ].encode()
    request = (
        b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
        b"Authorization: Bearer " + token + b"\r\n\r\n"
    )
    sockets = []
    for _ in range(1000):
        sock = _connect(api)
        sock.sendall(request)
        sockets.append(sock)
    for sock in sockets:  # each stream is open: its headers have come back
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")

    def open_streams() -> float:
        with api.client() as http:
            metrics = http.get("/metrics").text
        line = next(x for x in metrics.splitlines() if x.startswith("realorders_sse_clients "))
        return float(line.split()[-1])

    assert open_streams() == 1000
    for sock in sockets:  # vanish: no goodbye
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    wait_for(open_streams, lambda n: n == 0)
    oid = uid()
    with api.client() as http:
        http.post("/v1/orders", json=order_body(oid)).raise_for_status()
    api.start_engine()
    assert settle(api, [oid]) == {oid: "delivered"}


def test_nothing_accepted_was_lost(api: Api, accepted: list[str]) -> None:
    """Last in this module: the orders accepted around the abuse are all there, once."""
    assert set(settle(api, accepted).values()) == {"delivered"}
    with api.client() as http:
        report = http.get("/v1/check").json()
    assert report["ok"], report["problems"]
