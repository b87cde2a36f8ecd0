"""The ASGI app, assembled: routers, error handlers, middleware, and the lifespan that opens
the store for this process and closes it on the way out."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from realorders import __version__
from realorders.server import problems
from realorders.server.auth import TokenCache
from realorders.server.bodies import BodyLimit
from realorders.server.earlier import AnyCaseApi
from realorders.server.hub import Hub
from realorders.server.metrics import Metrics, RequestMiddleware
from realorders.server.options import Compat, ServerOptions, store_config
from realorders.server.protocol import set_header_timeout
from realorders.server.routes import catalogue, earlier_api, events, orders, system, webhooks
from realorders.server.services import Services
from realorders.server.store import Intake, Store

__all__ = ["configure_logging", "create_app", "worker_app"]

log = logging.getLogger("realorders.server")

_IMPORT_THREADS = 4

DESCRIPTION = """\
Submit, follow and manage orders over HTTP: the same engine and rules as the
`realorders` CLI, on SQLite or on Kafka + Redis.

Every route but `/healthz` needs `Authorization: Bearer <token>` (from
`realorders tokens create NAME --scope read|write|admin`). Errors are
`application/problem+json` (RFC 9457). Live status: `GET /v1/events` and
`GET /v1/orders/{order_id}/events` (Server-Sent Events, resumable with
`Last-Event-ID`).
"""


def create_app(options: ServerOptions) -> FastAPI:
    """An app serving the store ``options.store`` describes; opened when the app starts."""
    config = store_config(options.store)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(config, options.read_threads)
        intake = Intake(
            store,
            window=options.intake_window,
            max_batch=options.intake_batch,
            on_commit=lambda orders: metrics.intake_batches.inc(),
        )
        hub = Hub(store)
        imports = ThreadPoolExecutor(_IMPORT_THREADS, thread_name_prefix="realorders-import")
        app.state.services = Services(
            options=options,
            store=store,
            intake=intake,
            hub=hub,
            tokens=TokenCache(store),
            metrics=metrics,
            imports=imports,
            where=config.where(),
        )
        intake.start()
        try:
            await hub.start()
            gc.freeze()  # what startup built lives as long as the process: keep it out of GC passes
            yield
        finally:
            await hub.stop()
            intake.stop()
            imports.shutdown(wait=False, cancel_futures=True)
            store.close()

    app = FastAPI(
        title="realorders",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "orders", "description": "Submit, list, show and cancel orders"},
            {"name": "events", "description": "Live status over Server-Sent Events"},
            {"name": "products", "description": "The catalogue"},
            {"name": "inventory", "description": "Stock levels"},
            {"name": "webhooks", "description": "Webhook endpoints and their secrets (admin)"},
            {"name": "operations", "description": "Stats, checks, health and metrics"},
            {
                "name": earlier_api.TAG,
                "description": "The earlier C# system's routes, for its clients "
                "(`serve --compat earlier-api`; see the README)",
            },
        ],
    )
    problems.install(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.include_router(events.router)  # first: /v1/orders/{id}/events before /v1/orders/{id}
    app.include_router(orders.router)
    app.include_router(catalogue.router)
    app.include_router(webhooks.router)
    app.include_router(system.router)
    if options.compat is Compat.EARLIER_API:
        app.include_router(earlier_api.router)
        app.add_middleware(AnyCaseApi)  # innermost: only the routing sees /API/Order as /api/order
    app.add_middleware(
        BodyLimit,
        limit=options.max_body,
        timeout=options.client_timeout,
        streamed=frozenset({"/v1/orders:import"}),
    )
    app.add_middleware(RequestMiddleware, metrics=lambda: metrics, log_access=options.access_log)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with its default validation answer replaced by ours (problem+json)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        for operation in (op for item in document["paths"].values() for op in item.values()):
            answers = operation.setdefault("responses", {})
            if "422" in answers:
                answers["422"] = _problem_doc("invalid-input")
            if "requestBody" in operation:  # any body may be malformed, too big or too slow
                for code, slug in (
                    ("400", "bad-request"),
                    ("408", "timeout"),
                    ("413", "too-large"),
                ):
                    answers.setdefault(code, _problem_doc(slug))
        schemas = document.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = document
    return app.openapi_schema


_BODY_PROBLEMS = (("400", "bad-request"), ("408", "timeout"), ("413", "too-large"))


def _problem_doc(slug: str) -> dict[str, Any]:
    return {
        "description": problems.TITLES[slug],
        "content": {problems.PROBLEM: {"schema": problems.problem_schema()}},
    }


def worker_app() -> FastAPI:
    """The app of a ``--workers`` process: the options come from its parent's environment."""
    configure_logging()
    options = ServerOptions.from_env()
    set_header_timeout(options.client_timeout)
    return create_app(options)


def configure_logging() -> None:
    """Server messages and the access log, one line each, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("realorders.server", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
