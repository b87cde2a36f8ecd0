"""Live status over Server-Sent Events: ``/v1/events`` and ``/v1/orders/{id}/events``.

Each status message carries ``id: <cursor>``; a client that reconnects with
``Last-Event-ID`` (browsers' ``EventSource`` does it by itself) or ``?after=``
gets exactly what it missed: the events after its cursor are read from the
log, then it joins the live fan-out (:mod:`realorders.server.hub`) where the
catch-up ended, so nothing is missed and nothing comes twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from starlette.responses import StreamingResponse

from realorders.client import Client
from realorders.domain import TERMINAL, Event, Status
from realorders.server.hub import Subscription
from realorders.server.problems import Problem
from realorders.server.responses import errors_doc
from realorders.server.services import Reader, Services
from realorders.views import public_event, public_order

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["events"])


_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "`text/event-stream`. `event: status` messages (`id:` the cursor, `data:` "
            "`{order_id, seq, status, at, reason?, cursor}`); on the order route, first an "
            "`event: order` with the order as `GET /v1/orders/{id}` gives it; `event: done` "
            "before closing with `until_done`; `event: dropped` when the client fell too far "
            "behind (reconnect with `Last-Event-ID`); `: keepalive` comments when idle."
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **errors_doc(401, 403, 404, 422),
}
_PAGE = 1000


def _message(event: str, data: Any, cursor: int | None = None) -> bytes:
    head = b"" if cursor is None else b"id: %d\n" % cursor
    return head + b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _resume_point(last_event_id: str | None, after: int | None) -> int | None:
    if after is not None:
        return after
    if last_event_id is None or not last_event_id.strip():
        return None
    if not last_event_id.strip().isdigit():
        raise Problem(
            422,
            "invalid-input",
            "Last-Event-ID must be a cursor this stream sent",
            parameter="Last-Event-ID",
        )
    return int(last_event_id.strip())


@router.get("/events", summary="Live status changes (Server-Sent Events)", responses=_STREAM_DOC)
async def events(
    services: Reader,
    order_id: Annotated[list[str] | None, Query(description="Only these orders")] = None,
    status: Annotated[Status | None, Query(description="Only this status")] = None,
    until_done: Annotated[
        bool, Query(description="Close once every named order is terminal")
    ] = False,
    after: Annotated[int | None, Query(ge=0, description="Resume after this cursor")] = None,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    """Committed status changes as they land, for every order or the named ones."""
    ids = list(dict.fromkeys(order_id or ()))
    if until_done and not ids:
        raise Problem(
            422, "invalid-input", "until_done needs at least one order_id", parameter="until_done"
        )
    start = _resume_point(last_event_id, after)
    return _response(services, ids, status, until_done, start, snapshot=False)


@router.get(
    "/orders/{order_id:path}/events",
    summary="Follow one order live (Server-Sent Events)",
    responses=_STREAM_DOC,
)
async def order_events(
    order_id: str,
    services: Reader,
    until_done: Annotated[bool, Query(description="Close once the order is terminal")] = False,
    after: Annotated[int | None, Query(ge=0, description="Resume after this cursor")] = None,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    """What a "where is my order" page subscribes to: the order as it stands, then each change."""
    start = _resume_point(last_event_id, after)
    await services.store.call(lambda client: client.get(order_id))  # 404 before streaming
    return _response(services, [order_id], None, until_done, start, snapshot=start is None)


def _response(
    services: Services,
    order_ids: Sequence[str],
    status: Status | None,
    until_done: bool,
    start: int | None,
    *,
    snapshot: bool,
) -> StreamingResponse:
    sub = services.hub.subscribe(order_ids, status, limit=services.options.subscriber_buffer)
    stream = _stream(services, sub, until_done, start, snapshot)
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


class _Progress:
    """What one stream has sent: the last cursor, and per order the last ``seq`` shown.

    A snapshot shows an order up to its version; live events at or below that
    version are already in it and are not sent again.
    """

    def __init__(self, sub: Subscription, last: int) -> None:
        self.sub = sub
        self.last = last
        self.shown: dict[str, int] = {}
        self.open = set(sub.order_ids)

    def message(self, cursor: int, event: Event) -> bytes | None:
        if cursor <= self.last:
            return None
        self.last = cursor
        if event.status in TERMINAL:
            self.open.discard(event.order_id)
        if event.seq <= self.shown.get(event.order_id, 0) or not self.sub.matches(event):
            return None
        return _message("status", public_event(cursor, event), cursor)


async def _stream(
    services: Services,
    sub: Subscription,
    until_done: bool,
    start: int | None,
    snapshot: bool,
) -> AsyncIterator[bytes]:
    metrics = services.metrics
    metrics.sse_clients.inc()
    getter: asyncio.Future[list[tuple[int, Event]] | None] | None = None
    try:
        yield b": stream open\n\n"  # headers and a first byte through any proxy now
        progress = _Progress(sub, sub.start if start is None else start)
        if until_done:
            states = await services.store.call(lambda client: client.statuses(sub.order_ids))
            progress.open -= {oid for oid, status in states.items() if status in TERMINAL}
        if start is not None:
            async for chunk in _catch_up(services, progress):
                yield chunk
        elif snapshot:
            for order_id in sub.order_ids:
                view = await services.store.call(partial(Client.get, order_id=order_id))
                document = public_order(view)
                progress.shown[order_id] = document["version"]
                if view.status in TERMINAL:
                    progress.open.discard(order_id)
                yield _message("order", document)  # no id: a reconnect gets a fresh one
        heartbeat = services.options.heartbeat
        while not (until_done and not progress.open):
            if getter is None:
                getter = asyncio.ensure_future(sub.next())
            done, _ = await asyncio.wait({getter}, timeout=heartbeat)
            if not done:
                yield b": keepalive\n\n"
                continue
            batch, getter = getter.result(), None
            if batch is None:
                metrics.sse_dropped.inc()
                detail = "this stream fell too far behind; reconnect with Last-Event-ID"
                yield _message("dropped", {"detail": detail, "cursor": progress.last})
                return
            for cursor, event in batch:
                if (sent := progress.message(cursor, event)) is not None:
                    yield sent
        yield _message("done", {"order_ids": sorted(sub.order_ids)})
    finally:
        if getter is not None:
            getter.cancel()
        services.hub.unsubscribe(sub)
        metrics.sse_clients.dec()


async def _catch_up(services: Services, progress: _Progress) -> AsyncIterator[bytes]:
    """The log from the resume point to its end; the live fan-out takes over after it."""
    while True:
        page = await services.store.call(partial(Client.events, after=progress.last, limit=_PAGE))
        for cursor, event in page:
            if (chunk := progress.message(cursor, event)) is not None:
                yield chunk
        if len(page) < _PAGE:
            return
