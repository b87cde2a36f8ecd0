"""Prometheus metrics of one server process, and the middleware that times every request.

Requests are labelled by route template (``/v1/orders/{order_id}``), never by
the raw path, so ids do not explode the series. Store-side gauges (backlog,
engine running, webhook deliveries per endpoint id) are read when scraped. The
same middleware gives each request its id (``X-Request-Id``, the client's if
it sent a sane one) and writes the access log: one line per request.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from realorders.webhooks import WebhookFigures

__all__ = ["Metrics", "RequestMiddleware"]

access_log = logging.getLogger("realorders.server.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class Metrics:
    """The process's collectors, on a registry of its own (not the global default)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "realorders_http_requests",
            "HTTP requests answered",
            ["method", "route", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "realorders_http_request_seconds",
            "Time to answer an HTTP request (streams: until the stream opens)",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.accepted = Counter(
            "realorders_orders_accepted", "Orders accepted (new, not replays)", registry=r
        )
        self.intake_batches = Counter(
            "realorders_intake_commits", "Group commits of single-order submissions", registry=r
        )
        self.refused = Counter(
            "realorders_overload_refusals",
            "Requests refused with 503 for the backlog",
            registry=r,
        )
        self.backlog = Gauge(
            "realorders_backlog", "Commands appended and not yet processed", registry=r
        )
        self.engine_running = Gauge(
            "realorders_engine_running", "1 when an engine is running on the store", registry=r
        )
        self.sse_clients = Gauge(
            "realorders_sse_clients", "Live event streams open on this process", registry=r
        )
        self.sse_dropped = Counter(
            "realorders_sse_dropped", "Event streams dropped for falling behind", registry=r
        )
        # per endpoint id: never its URL, which may carry a credential in its query
        self.webhook_backlog = Gauge(
            "realorders_webhook_backlog",
            "Webhook deliveries still owed to an endpoint",
            ["endpoint"],
            registry=r,
        )
        self.webhook_failed = Gauge(
            "realorders_webhook_failed",
            "Webhook deliveries to an endpoint given up on",
            ["endpoint"],
            registry=r,
        )
        self.webhook_endpoints = Gauge(
            "realorders_webhook_endpoints", "Webhook endpoints by state", ["state"], registry=r
        )

    def show_webhooks(self, figures: Sequence[WebhookFigures]) -> None:
        """Set the webhook gauges to a scrape's figures; a removed endpoint's series go."""
        self.webhook_backlog.clear()
        self.webhook_failed.clear()
        for figure in figures:
            endpoint_id = figure.endpoint.endpoint_id
            self.webhook_backlog.labels(endpoint_id).set(figure.backlog)
            self.webhook_failed.labels(endpoint_id).set(figure.failed)
        enabled = sum(1 for f in figures if f.endpoint.enabled)
        self.webhook_endpoints.labels("enabled").set(enabled)
        self.webhook_endpoints.labels("disabled").set(len(figures) - enabled)


class RequestMiddleware:
    """Request id, access log line and metrics for every HTTP request (pure ASGI: streams pass
    through untouched)."""

    def __init__(
        self, app: ASGIApp, metrics: Callable[[], Metrics | None], log_access: bool
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._log = log_access
        # unique per process and request without a random draw (a syscall) per request
        self._id_prefix = secrets.token_hex(4)
        self._numbers = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, b"x-request-id")
        if given and _REQUEST_ID.fullmatch(given):
            request_id = given
        else:
            request_id = f"{self._id_prefix}-{next(self._numbers):x}"
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
                self._observe(scope, status, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self._log:
                access_log.info(
                    '%s "%s %s" %d %.1fms rid=%s',
                    _client(scope),
                    scope["method"],
                    scope["path"],
                    status,
                    (time.perf_counter() - started) * 1000,
                    request_id,
                )

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        metrics = self._metrics()
        if metrics is None:
            return
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        metrics.requests.labels(scope["method"], template, str(status)).inc()
        metrics.latency.labels(scope["method"], template).observe(seconds)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return "-" if not client else f"{client[0]}:{client[1]}"
