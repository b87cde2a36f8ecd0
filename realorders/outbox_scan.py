"""Filling the outbox: the event log's changes turned into deliveries, and the orders
their messages are made of.

Run in the deliverer's store thread (:mod:`realorders.notifier`), one page of
events at a time: each event becomes a pending delivery for every enabled
endpoint that wants it, enqueued atomically with the new scan cursor, so a
restart neither loses nor repeats one. An endpoint added later gets events
from the scan cursor on (no replay of history).
"""

from __future__ import annotations

from collections import OrderedDict

from realorders.client import Client
from realorders.deliveries import Delivery
from realorders.delivery import new_delivery, wants
from realorders.domain import Event, Status
from realorders.errors import NotFoundError
from realorders.views import OrderView
from realorders.webhooks import WebhookEndpoint

__all__ = ["OrderCache", "scan"]

SCAN_PAGE = 1000


class OrderCache:
    """Orders with their history, the newest ``size`` kept: an order's five events go
    out within moments of each other, and each message needs its body."""

    def __init__(self, client: Client, size: int = 10_000) -> None:
        self._client = client
        self._size = size
        self._orders: OrderedDict[str, OrderView] = OrderedDict()

    def get(self, order_id: str, seq: int = 0) -> OrderView | None:
        """The order with its history up to ``seq`` at least (fetched again if older);
        None while the read model does not have it yet."""
        view = self._orders.get(order_id)
        if view is None or (view.events[-1].seq if view.events else 0) < seq:
            try:
                view = self._client.get(order_id)
            except NotFoundError:
                return None
            self._orders[order_id] = view
            if len(self._orders) > self._size:
                self._orders.popitem(last=False)
        else:
            self._orders.move_to_end(order_id)
        return view

    def peek(self, order_id: str, seq: int) -> OrderView | None:
        """The cached order if its history reaches ``seq``, without touching the store or
        the cache's order: safe from the deliverer's event loop while the store thread
        uses the cache (one dict read)."""
        view = self._orders.get(order_id)
        if view is None or not view.events or view.events[-1].seq < seq:
            return None
        return view

    def forget(self, order_id: str) -> None:
        self._orders.pop(order_id, None)

    def customer(self, event: Event) -> str:
        data = event.data
        if event.status is Status.PENDING and data and isinstance(data.get("customer_id"), str):
            return str(data["customer_id"])
        view = self.get(event.order_id)  # a customer never changes
        return "" if view is None or view.state is None else view.state.customer_id


def scan(client: Client, orders: OrderCache, now: float) -> tuple[int, int]:
    """Enqueue what the events after the scan cursor owe: (events read, deliveries new)."""
    store = client.backend.deliveries
    page = client.events(store.scan_cursor(), SCAN_PAGE)
    if not page:
        return 0, 0
    endpoints = [e for e in client.webhooks() if e.enabled]
    batch: list[Delivery] = []
    for at, event in page:
        for endpoint in _wanting(endpoints, event, orders):
            batch.append(new_delivery(endpoint.endpoint_id, event.order_id, event.seq, at, now))
    return len(page), store.enqueue(batch, page[-1][0])


def _wanting(
    endpoints: list[WebhookEndpoint], event: Event, orders: OrderCache
) -> list[WebhookEndpoint]:
    if not endpoints:
        return []
    # the order's customer only when an endpoint asks for one (it may cost a read)
    by_customer = any(e.customer_id is not None for e in endpoints)
    customer = orders.customer(event) if by_customer else ""
    return [e for e in endpoints if wants(e, event, customer)]
