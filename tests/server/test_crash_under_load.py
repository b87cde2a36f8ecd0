"""kill -9 of ``serve`` while 50 clients post orders: every acknowledged order is stored once,
and clients that got no answer retry with the same id safely."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from waiting import wait_for

from .conftest import BACKENDS, Api, order_body, settle, uid

CLIENTS = 50


@pytest.mark.parametrize("fresh_api", BACKENDS, indirect=True)
def test_kill_9_under_load_loses_and_doubles_nothing(fresh_api: Api) -> None:
    api = fresh_api
    api.start_server()
    api.start_engine()
    acknowledged: set[str] = set()
    unanswered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(number: int) -> None:
        with api.client() as http:
            while not stop.is_set():
                oid = uid(f"c{number}")
                try:
                    response = http.post("/v1/orders", json=order_body(oid))
                except httpx.TransportError:  # the server died under this request
                    with lock:
                        unanswered.append(oid)
                    return
                assert response.status_code == 201, response.text
                with lock:
                    acknowledged.add(oid)

    with ThreadPoolExecutor(CLIENTS) as pool:
        for number in range(CLIENTS):
            pool.submit(client, number)
        wait_for(lambda: len(acknowledged), lambda n: n >= 300)
        assert api.server is not None
        api.server.kill()  # SIGKILL: no shutdown, no flush
        stop.set()
    assert acknowledged
    port = int(api.url.rsplit(":", 1)[1])
    api.start_server(port=port)
    with api.client() as http:
        for oid in unanswered:  # the same id again: 201 if it never landed, 200 if it did
            retried = http.post("/v1/orders", json=order_body(oid))
            assert retried.status_code in (200, 201), retried.text
    everything = sorted(acknowledged | set(unanswered))
    statuses = settle(api, everything)
    assert set(statuses.values()) == {"delivered"}
    with api.library() as shop:
        assert shop.check().ok
        stored = shop.counts()
    assert sum(stored.values()) == len(everything)  # each once: no order twice
