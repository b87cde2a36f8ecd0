"""``/v1/orders``: submit (one, or a streamed batch), list, show and cancel.

The rules are the library's: the body is parsed like ``submit -``, a batch
like ``import``, a listing is :meth:`~realorders.Client.page_orders`. What is
decided here is HTTP only: status codes, headers, links and the cursor.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from realorders.domain import TERMINAL, Order, Status
from realorders.engine.ports import IntakeOutcome
from realorders.errors import InputError
from realorders.intake import Format, RowError, order_from_obj
from realorders.server.bodies import BodyReader, LineTooLong, require_type
from realorders.server.models import (
    ORDER_BODY,
    Accepted,
    CancelBody,
    ImportSummary,
    OrderDetail,
    OrderPage,
    QueuedCommand,
)
from realorders.server.problems import Problem
from realorders.server.responses import errors_doc, json_response
from realorders.server.services import Reader, Services, Writer
from realorders.views import public_order, public_record

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["orders"])


_IMPORT_TYPES: dict[str, Format] = {
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/json": "json",
    "text/csv": "csv",
}
_MAX_ERRORS = 1000  # refused lines listed in an import's answer; the rest are counted
_MAX_WAIT = 300.0
_IMPORT_BUFFER = 1 << 16


def order_path(order_id: str) -> str:
    return f"/v1/orders/{quote(order_id, safe='')}"


def accepted_body(order: Order) -> dict[str, Any]:
    path = order_path(order.id)
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "items": [{"product_id": i.product_id, "quantity": i.quantity} for i in order.items],
        "notes": order.notes,
        "links": {"self": path, "events": f"{path}/events"},
    }


#: submit's parameters, documented here and read by :func:`_submit_options`: on the
#: hottest route FastAPI's validation of three optional parameters cost a sixth of
#: the request's CPU
_SUBMIT_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "The order id, when the body has none.",
        "schema": {"type": "string", "maxLength": 200},
    },
    {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": "`terminal`: answer once the order is terminal (or at `timeout`)",
        "schema": {"type": "string", "enum": ["terminal"]},
    },
    {
        "name": "timeout",
        "in": "query",
        "required": False,
        "description": "Seconds to wait",
        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": _MAX_WAIT, "default": 30},
    },
]


@router.post(
    "/orders",
    status_code=201,
    summary="Submit one order",
    openapi_extra={"requestBody": ORDER_BODY, "parameters": _SUBMIT_PARAMETERS},
    responses={
        201: {"model": Accepted, "description": "Accepted (first time)"},
        200: {"model": Accepted, "description": "The same order again: nothing new"},
        **errors_doc(400, 401, 403, 409, 413, 415, 422, 503),
    },
)
async def submit(request: Request, services: Writer) -> Response:
    """One order, as `realorders submit -` takes it (snake_case or camelCase keys).

    `201` and `Location` the first time; `200` with the same body when the same
    id and content come again; `409` when the id was used for other content.
    """
    idempotency_key, wait, timeout = _submit_options(request)
    require_type(request, "application/json")
    await services.admit()
    body = await request.body()  # read already, within the limits, by BodyLimit
    order = _parse_order(body, idempotency_key)
    result = await services.intake.submit(order)
    if result.outcome is IntakeOutcome.CONFLICT:
        raise Problem.resubmitted(order.id)
    created = result.outcome is IntakeOutcome.ACCEPTED
    if created:
        services.metrics.accepted.inc()
    document = accepted_body(order)
    if wait:
        document = await _wait_terminal(services, order.id, timeout)
    headers = {"Location": order_path(order.id)} if created else None
    return json_response(document, 201 if created else 200, headers)


def _submit_options(request: Request) -> tuple[str | None, bool, float]:
    """``Idempotency-Key``, ``wait`` and ``timeout``, checked as the document says."""
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > 200:
        raise _bad_parameter("header", "Idempotency-Key", "at most 200 characters")
    query = request.query_params
    wait = query.get("wait")
    if wait is not None and wait != "terminal":
        raise _bad_parameter("query", "wait", "the only value is 'terminal'")
    text = query.get("timeout")
    timeout = 30.0
    if text is not None:
        try:
            timeout = float(text)
        except ValueError:
            raise _bad_parameter("query", "timeout", f"{text!r} is not a number") from None
        if not 0 < timeout <= _MAX_WAIT:  # also refuses nan
            raise _bad_parameter("query", "timeout", f"seconds, over 0 and at most {_MAX_WAIT:g}")
    return key, wait is not None, timeout


def _bad_parameter(where: str, name: str, why: str) -> Problem:
    return Problem(422, "invalid-input", f"{where} parameter {name}: {why}", parameter=name)


def _parse_order(body: bytes, idempotency_key: str | None) -> Order:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "bad-request", f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else type(value).__name__
        raise Problem(422, "invalid-input", f"expected one order object, got {kind}", pointer="")
    if idempotency_key is not None:
        given = next((value[k] for k in ("id", "order_id", "orderId") if value.get(k)), None)
        if given is None:
            value = {**value, "id": idempotency_key}
        elif given != idempotency_key:
            raise Problem(
                422,
                "invalid-input",
                f"Idempotency-Key {idempotency_key!r} differs from the order id {given!r}",
                pointer="/id",
            )
    try:
        return order_from_obj(value, "body", 1)
    except InputError as exc:
        raise InputError(exc.reason, pointer=exc.pointer) from None


async def _wait_terminal(services: Services, order_id: str, timeout: float) -> dict[str, Any]:
    """The order once terminal, or as it stands when ``timeout`` runs out."""
    sub = services.hub.subscribe([order_id], limit=services.options.subscriber_buffer)
    try:
        view = await services.store.call(lambda client: client.get(order_id))
        deadline = asyncio.get_running_loop().time() + timeout
        while view.status not in TERMINAL:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch = await asyncio.wait_for(sub.next(), remaining)
            except TimeoutError:
                break
            if batch is None or any(event.status in TERMINAL for _, event in batch):
                view = await services.store.call(lambda client: client.get(order_id))
                if batch is None:
                    break
    finally:
        services.hub.unsubscribe(sub)
    return public_order(view)


@router.post(
    "/orders:import",
    summary="Import a batch of orders (NDJSON, CSV or a JSON array)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
    responses={200: {"model": ImportSummary}, **errors_doc(401, 403, 408, 413, 415, 503)},
)
async def import_orders(
    request: Request,
    services: Writer,
    dry_run: Annotated[bool, Query(description="Check every order, keep none")] = False,
) -> Response:
    """Like `realorders import --json`: streamed, so any size costs constant memory.

    Good orders are kept and bad lines are listed with their line numbers; the
    same file again accepts nothing new. The size limit applies per line.
    """
    fmt = _IMPORT_TYPES[require_type(request, *_IMPORT_TYPES)]
    await services.admit()
    reader = BodyReader(services.options.max_body)
    errors: list[dict[str, Any]] = []
    omitted = 0

    def on_error(error: RowError) -> None:
        nonlocal omitted
        if len(errors) < _MAX_ERRORS:
            errors.append(error.to_dict())
        else:
            omitted += 1

    def run() -> dict[str, Any]:
        client = services.store.open_client()
        try:
            # buffered: the parsers read lines, which a bare RawIOBase serves a byte at a time
            stream = io.BufferedReader(reader, _IMPORT_BUFFER)
            report = client.import_file(
                stream,
                fmt,
                "body",
                dry_run=dry_run,
                on_error=on_error,
            )
            return report.to_dict()
        finally:
            client.close()

    importing = asyncio.get_running_loop().run_in_executor(services.imports, run)
    feeding = asyncio.ensure_future(reader.feed(request, services.options.client_timeout))
    try:
        summary = await importing
    except LineTooLong as exc:
        raise Problem(
            413,
            "too-large",
            f"{exc}; complete batches before it were kept (sending the same body again is safe)",
            line=exc.line,
        ) from None
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
    services.metrics.accepted.inc(summary["accepted"])
    return json_response({**summary, "errors": errors, "errors_omitted": omitted})


@router.get(
    "/orders",
    summary="List orders, newest first",
    responses={200: {"model": OrderPage}, **errors_doc(401, 403, 422)},
)
async def list_orders(
    request: Request,
    services: Reader,
    status: Status | None = None,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    id_prefix: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64, description="From `next`")] = None,
) -> Response:
    """Queued submissions show as `pending`, as in `realorders list`. Follow `next` to page
    on: a page never repeats an order of an earlier one, and new orders never shift it."""
    before = _decode_cursor(cursor)
    views, after = await services.store.call(
        lambda client: client.page_orders(
            status=status,
            customer_id=customer_id,
            id_prefix=id_prefix,
            limit=limit,
            before=before,
        )
    )
    next_url = None
    if after is not None:
        query = {
            k: v
            for k, v in (
                ("status", None if status is None else status.value),
                ("customer_id", customer_id),
                ("id_prefix", id_prefix),
                ("limit", str(limit)),
                ("cursor", _encode_cursor(after)),
            )
            if v is not None
        }
        next_url = f"{request.url.path}?{urlencode(query)}"
    headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else None
    return json_response(
        {"data": [public_record(v) for v in views], "next": next_url}, headers=headers
    )


def _encode_cursor(arrival: int) -> str:
    return base64.urlsafe_b64encode(f"a{arrival}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith("a") and text[1:].isdigit():
            return int(text[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Problem(422, "invalid-input", "cursor is not one this API gave", parameter="cursor")


@router.post(
    "/orders/{order_id:path}/cancel",
    status_code=202,
    summary="Cancel an order",
    responses={202: {"model": QueuedCommand}, **errors_doc(401, 403, 404, 409, 413, 422)},
)
async def cancel(
    request: Request,
    order_id: str,
    services: Writer,
) -> Response:
    """Queue a cancellation (`202`); `409` with the reason when the order is past cancelling.
    An optional JSON body `{"reason": "..."}` is kept with the cancellation."""
    reason = None
    body = await request.body()  # read already, within the limits, by BodyLimit
    if body.strip():
        require_type(request, "application/json")
        try:
            reason = CancelBody.model_validate_json(body).reason
        except ValueError as exc:
            raise Problem(422, "invalid-input", f"the body is not a cancellation: {exc}") from None
    position = await services.store.call(lambda client: client.cancel(order_id, reason))
    return json_response({"position": position, "links": {"order": order_path(order_id)}}, 202)


@router.get(
    "/orders/{order_id:path}",
    summary="One order with its timeline",
    openapi_extra={
        "parameters": [
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "An ETag this route sent: `304` while the order is unchanged",
                "schema": {"type": "string"},
            }
        ]
    },
    responses={
        200: {"model": OrderDetail, "headers": {"ETag": {"schema": {"type": "string"}}}},
        304: {"description": "Unchanged since the ETag given in If-None-Match"},
        **errors_doc(401, 403, 404),
    },
)
async def show(request: Request, order_id: str, services: Reader) -> Response:
    """Like `realorders show --json`. The `ETag` changes with every status change."""
    view = await services.store.call(lambda client: client.get(order_id))
    document = public_order(view)
    etag = f'"v{document["version"]}"'
    if_none_match = request.headers.get("if-none-match")  # read by hand, as submit's
    if if_none_match is not None and _matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return json_response(document, headers={"ETag": etag, "Cache-Control": "no-cache"})


def _matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags
