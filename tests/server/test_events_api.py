"""Live status over Server-Sent Events, read by a real SSE client (httpx-sse)."""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from httpx_sse import ServerSentEvent, connect_sse
from waiting import wait_for

from realorders.tokens import Scope

from .conftest import BACKENDS, Api, order_body, settle, uid

LIFECYCLE = ["pending", "reserved", "packed", "shipped", "delivered"]


def stream(http: httpx.Client, url: str, **kwargs: Any) -> Iterator[ServerSentEvent]:
    with connect_sse(http, "GET", url, **kwargs) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        yield from source.iter_sse()


def test_order_stream_starts_with_the_order_then_each_change(api: Api) -> None:
    oid = uid()
    with api.client() as http:
        http.post("/v1/orders", json=order_body(oid)).raise_for_status()
        got = list(stream(http, f"/v1/orders/{oid}/events", params={"until_done": 1}))
    kinds = [e.event for e in got]
    assert kinds[0] == "order"
    assert kinds[-1] == "done"
    first = json.loads(got[0].data)
    assert first["id"] == oid
    seen = [e["status"] for e in first["events"]]
    seen += [json.loads(e.data)["status"] for e in got if e.event == "status"]
    assert seen == LIFECYCLE  # nothing missed, nothing twice, across the snapshot's edge
    cursors = [int(e.id) for e in got if e.event == "status"]
    assert cursors == sorted(set(cursors))
    assert all(json.loads(e.data)["cursor"] == int(e.id) for e in got if e.event == "status")


def test_unknown_order_stream_is_404(api: Api) -> None:
    with api.client() as http:
        response = http.get(f"/v1/orders/{uid()}/events")
    assert response.status_code == 404


def test_filtered_stream_and_resume_from_last_event_id(api: Api) -> None:
    ids = [uid() for _ in range(3)]
    with api.client() as http:
        http.post("/v1/orders", json=order_body(ids[0])).raise_for_status()
        settle(api, [ids[0]])
        head = http.get("/v1/events", params={"order_id": ids[0], "after": 0, "until_done": 1})
        assert head.status_code == 200
        first = [e for e in _parse(head.text) if e["event"] == "status"]
        assert [json.loads(e["data"])["status"] for e in first] == LIFECYCLE
        resume_at = int(first[1]["id"])  # as if the client had read two events and lost the line
        replay = http.get(
            "/v1/events",
            params={"order_id": ids[0], "until_done": 1},
            headers={"Last-Event-ID": str(resume_at)},
        )
        statuses = [
            json.loads(e["data"])["status"] for e in _parse(replay.text) if e["event"] == "status"
        ]
        assert statuses == LIFECYCLE[2:]
        only_delivered = http.get(
            "/v1/events",
            params={"order_id": ids[0], "status": "delivered", "after": 0, "until_done": 1},
        )
        assert [
            json.loads(e["data"])["status"]
            for e in _parse(only_delivered.text)
            if e["event"] == "status"
        ] == ["delivered"]


def test_until_done_needs_named_orders(api: Api) -> None:
    with api.client() as http:
        response = http.get("/v1/events", params={"until_done": 1})
    assert response.status_code == 422
    assert response.json()["parameter"] == "until_done"


def test_keepalive_comments_on_an_idle_stream(api: Api) -> None:
    with (
        api.client() as http,
        http.stream("GET", "/v1/events", params={"order_id": uid("idle")}) as response,
    ):
        lines = response.iter_lines()
        seen = []
        for line in lines:
            seen.append(line)
            if line == ": keepalive":
                break
    assert seen[0] == ": stream open"
    assert seen[-1] == ": keepalive"


def _parse(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":") and ": " in line:
                key, value = line.split(": ", 1)
                fields[key] = value
        if "event" in fields:
            events.append(fields)
    return events


@pytest.mark.parametrize("fresh_api", BACKENDS, indirect=True)
def test_resume_after_the_server_is_killed(fresh_api: Api) -> None:
    """kill -9 of the server mid-stream: the client resumes with Last-Event-ID on the
    restarted server and sees every event exactly once."""
    api = fresh_api
    api.start_server()
    ids = [uid() for _ in range(40)]
    received: list[tuple[int, str, str]] = []
    ended: list[BaseException] = []

    def read(http: httpx.Client, params: dict[str, Any], headers: dict[str, str]) -> None:
        try:
            for event in stream(http, "/v1/events", params=params, headers=headers):
                if event.event == "status":
                    data = json.loads(event.data)
                    received.append((int(event.id), data["order_id"], data["status"]))
                    if len(received) == len(ids) * len(LIFECYCLE):
                        return
        except httpx.HTTPError as exc:  # the server went away under the stream
            ended.append(exc)

    with api.client(Scope.READ) as reader, api.client() as writer:
        for oid in ids[:20]:
            writer.post("/v1/orders", json=order_body(oid)).raise_for_status()
        first = threading.Thread(target=read, args=(reader, {"after": 0}, {}))
        first.start()
        api.start_engine()
        wait_for(lambda: len(received), lambda n: n >= 30)
        api.restart_server(signal.SIGKILL)  # mid-stream: the reader is still connected
        first.join(60)
        assert ended, "the stream should have broken when its server was killed"
        for oid in ids[20:]:
            writer.post("/v1/orders", json=order_body(oid)).raise_for_status()
        settle(api, ids)
        read(reader, {"order_id": ids}, {"Last-Event-ID": str(received[-1][0])})
    cursors = [c for c, _, _ in received]
    assert len(cursors) == len(set(cursors)), "an event came twice"
    assert cursors == sorted(cursors)
    per_order: dict[str, list[str]] = {}
    for _, oid, status in received:
        per_order.setdefault(oid, []).append(status)
    assert set(per_order) == set(ids)
    assert all(statuses == LIFECYCLE for statuses in per_order.values()), per_order


@pytest.mark.parametrize("fresh_api", BACKENDS, indirect=True)
def test_a_stream_too_slow_to_keep_up_is_dropped_and_can_resume(fresh_api: Api) -> None:
    """A client that stops reading is dropped (``event: dropped``) once it is
    ``--stream-buffer`` events behind, instead of growing the server's memory."""
    api = fresh_api
    api.start_server("--stream-buffer", "50")
    parts = urlsplit(api.url)
    assert parts.hostname is not None
    assert parts.port is not None
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: tiny window
    stalled.connect((parts.hostname, parts.port))
    token = api.tokens[Scope.READ].encode()
    stalled.sendall(
        b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + b"\r\n\r\n"
    )
    ids = [uid() for _ in range(3000)]
    lines = "\n".join(json.dumps(order_body(oid)) for oid in ids) + "\n"
    with api.client() as http:
        http.post(
            "/v1/orders:import", content=lines, headers={"Content-Type": "application/x-ndjson"}
        ).raise_for_status()
    api.start_engine()
    settle(api, ids)
    stalled.settimeout(60)
    received = b""
    while chunk := stalled.recv(65536):  # now read it all: it ends, with the last word
        received += chunk
    stalled.close()
    text = received.decode(errors="replace")  # chunked, but each message is one chunk
    last = text.rsplit("event: ", 1)[-1]
    assert last.startswith("dropped\n"), last[:200]
    dropped_at = json.loads(last.split("data: ", 1)[1].split("\n", 1)[0])["cursor"]
    with api.client(Scope.READ) as http:  # resuming from there is complete
        resumed = http.get(
            "/v1/events", params={"after": dropped_at, "order_id": ids[-1], "until_done": 1}
        )
    assert "event: done" in resumed.text
