"""Following the event log as it commits (``realorders watch``).

The SQLite event log has no push notifications; a tail query on the integer
cursor every ``poll`` seconds is cheap (an index range scan returning only
new rows) and shows each event within one poll of its commit. In the
distributed mode the backend offers ``topic_tail``: the events topic itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from realorders.domain import TERMINAL, Event, Status

if TYPE_CHECKING:
    from realorders.client import Client

__all__ = ["follow"]


class _Tail(Protocol):
    def tail(self, after: int, limit: int) -> list[tuple[int, Event]]: ...


_PAGE = 1000


def follow(
    client: Client,
    order_ids: Sequence[str] = (),
    *,
    status: Status | None = None,
    from_start: bool = False,
    until_done: bool = False,
    timeout: float | None = None,
    poll: float = 0.1,
) -> Iterator[tuple[int, Event]]:
    """Yield (cursor, event) for committed events matching the filters.

    With ``until_done`` it returns once every named order is terminal, or,
    when no order is named, once the engine has nothing left to move (no
    backlog and no order between pending and delivered).
    """
    named = set(order_ids)
    open_orders = set(named)
    topic_tail = getattr(client.backend, "topic_tail", None)
    events: _Tail
    with client.snapshot():  # the cursor and the states must describe the same moment
        if topic_tail is not None:  # distributed: the events topic itself, from its end
            events = topic_tail(from_start=from_start)
            cursor = 0
        else:
            events = client.backend.events
            cursor = 0 if from_start else events.head()
        if until_done and named:
            # an id not known yet is waited for: it may be about to be submitted
            states = client.backend.orders.get_many(list(named))
            if not from_start:  # a replay shows finished orders' events first
                open_orders -= {o for o, s in states.items() if s.status in TERMINAL}
    try:
        yield from _follow(
            client, events, cursor, named, open_orders, status, until_done, timeout, poll
        )
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _follow(
    client: Client,
    events: _Tail,
    start: int,
    named: set[str],
    open_orders: set[str],
    status: Status | None,
    until_done: bool,
    timeout: float | None,
    poll: float,
) -> Iterator[tuple[int, Event]]:
    deadline = None if timeout is None else time.monotonic() + timeout
    cursor = start
    quiet = False
    while True:
        if until_done and named and not open_orders:
            return
        page = events.tail(cursor, _PAGE)
        for cursor, event in page:
            if named and event.order_id not in named:
                continue
            if event.status in TERMINAL:
                open_orders.discard(event.order_id)
            if status is None or event.status is status:
                yield cursor, event
        if len(page) == _PAGE:
            continue
        if quiet:
            return  # this last read drained what committed before the engine went quiet
        if until_done and not named and _quiet(client):
            quiet = True
            continue
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError
        time.sleep(poll)


def _quiet(client: Client) -> bool:
    info = client.engine_info()
    if info.backlog:
        return False
    counts = client.backend.orders.counts()
    moving = sum(
        counts[s.value] for s in Status if s not in TERMINAL and s is not Status.BACKORDERED
    )
    return moving == 0
