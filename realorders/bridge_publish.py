"""``bridge order-events --publish``: ``OrderCreated`` for the orders realorders takes in.

During a migration the earlier design's consumers still read ``order-events``;
this keeps them fed with the orders that now arrive through realorders
(``submit``, ``import``, the HTTP APIs). It follows the event log: an order's
first event (``pending``, which carries its content) becomes one message in
the earlier shape, keyed by order id. Orders the bridge took in from the topic
are skipped, so nothing is echoed back to where it came from; the messages
carry a ``realorders-origin`` header naming this store, and a bridge skips its
own store's messages when it reads the topic.

It starts with the orders the engine processes after its first start on a
store (history is not replayed): the place is pinned when the bridge opens,
before it joins its group. The cursor is kept in the store after each
page is flushed: delivery is at
least once (a crash between the flush and the cursor sends that page again,
under the same keys), never a gap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from realorders.client import Client
from realorders.domain import LineItem, Order, Status
from realorders.earlier_events import order_created

__all__ = ["ORIGIN_HEADER", "CreatedPublisher", "store_origin"]

ORIGIN_HEADER = "realorders-origin"
PAGE = 1000

Send = Callable[[str, bytes, bytes, list[tuple[str, bytes]]], None]  # topic, key, value, headers


def store_origin(client: Client) -> bytes:
    """A short name of this store (the same for every process on it), for the header."""
    return hashlib.blake2b(client.where().encode(), digest_size=8).hexdigest().encode()


class CreatedPublisher:
    """One page of the event log at a time into ``OrderCreated`` messages."""

    def __init__(self, client: Client, topic: str, send: Send, flush: Callable[[], None]) -> None:
        self.client = client
        self.topic = topic
        self.cursor_source = f"published:{topic}"
        self.published = 0
        self._send = send
        self._flush = flush
        self._origin = store_origin(client)
        self._cursor: int | None = None

    def start(self) -> None:
        """Pin where publishing starts: the kept cursor, else (a first run) the log's head now.

        Called when the bridge opens, before it takes anything in or joins its
        group (seconds): an order processed meanwhile is published, not skipped.
        """
        kept = self.client.source_offsets(self.cursor_source).get("events")
        if kept is None:  # first run on this store: from now on, not its history
            kept = self.client.head()
            self.client.submit_from_source([], self.cursor_source, {"events": kept})
        self._cursor = kept

    def step(self) -> int:
        """Publish the next page's new orders; returns how many events were read."""
        if self._cursor is None:
            self.start()
        assert self._cursor is not None
        page = self.client.events(self._cursor, PAGE)
        if not page:
            return 0
        firsts = [e for _, e in page if e.seq == 1 and e.status is Status.PENDING and e.data]
        outside = self.client.taken_from_source([e.order_id for e in firsts])
        headers = [(ORIGIN_HEADER, self._origin)]
        for event in firsts:
            if event.order_id in outside:
                continue
            data = event.data or {}
            items = tuple(LineItem(i["product_id"], i["quantity"]) for i in data["items"])
            order = Order(event.order_id, data["customer_id"], items)
            value = order_created(order, float(data.get("created_at", event.at)))
            self._send(self.topic, event.order_id.encode(), value, headers)
            self.published += 1
        self._flush()
        self._cursor = page[-1][0]
        self.client.submit_from_source([], self.cursor_source, {"events": self._cursor})
        return len(page)
