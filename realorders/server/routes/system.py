"""Operating the service: ``/v1/stats``, ``/v1/check``, ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from realorders.client import Client
from realorders.server.responses import errors_doc, json_response
from realorders.server.services import Reader

__all__ = ["router"]

router = APIRouter()


_READY_TIMEOUT = 5.0
_OBJECT = {"content": {"application/json": {"schema": {"type": "object"}}}}


@router.get(
    "/v1/stats",
    tags=["operations"],
    summary="Counts, throughput, latency and backlog",
    responses={
        200: {"description": "As `realorders stats --json`", **_OBJECT},
        **errors_doc(401, 403),
    },
)
async def stats(services: Reader) -> Response:
    return json_response(await services.store.call(Client.stats))


@router.get(
    "/v1/check",
    tags=["operations"],
    summary="Verify the store's invariants",
    responses={
        200: {"description": "As `realorders check --json`; see `ok`", **_OBJECT},
        **errors_doc(401, 403),
    },
)
async def check(services: Reader) -> Response:
    report = await services.store.call(Client.check)
    return json_response(report.to_dict())


@router.get(
    "/healthz",
    tags=["operations"],
    summary="Liveness (no token needed)",
    responses={200: {"description": "The process serves", **_OBJECT}},
)
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    tags=["operations"],
    summary="Readiness: the store (and Kafka + Redis) answer",
    responses={
        200: {"description": "Ready", **_OBJECT},
        503: {"description": "Not ready; `missing` says what", **_OBJECT},
        **errors_doc(401, 403),
    },
)
async def readyz(services: Reader) -> Response:
    def probe(client: Client) -> dict[str, Any]:
        client.probe()
        return {"engine_running": client.engine_running(), "backlog": client.engine_info().backlog}

    try:
        found = await asyncio.wait_for(services.store.call(probe), _READY_TIMEOUT)
    except TimeoutError:
        missing = f"the store did not answer within {_READY_TIMEOUT:g}s"
    except Exception as exc:  # what is missing, in its own words; never a traceback
        missing = str(exc)
    else:
        return json_response({"ready": True, "store": services.where, **found})
    return json_response(
        {"ready": False, "store": services.where, "missing": missing},
        503,
        {"Retry-After": "5"},
    )


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics of this process",
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "OK"},
        **errors_doc(401, 403),
    },
)
async def metrics(services: Reader) -> Response:
    collected = services.metrics
    try:
        info = await services.store.call(lambda client: client.engine_info())
        running = await services.store.call(Client.engine_running)
        figures = await services.store.call(Client.webhook_figures)
        collected.backlog.set(info.backlog)
        collected.engine_running.set(1 if running else 0)
        collected.show_webhooks(figures)
    except Exception:  # the store is away: serve what this process knows
        collected.engine_running.set(0)
    return Response(generate_latest(collected.registry), media_type=CONTENT_TYPE_LATEST)
