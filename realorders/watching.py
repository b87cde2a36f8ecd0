"""Following the event log as it commits (``realorders watch``) and waiting on the engine.

The SQLite event log has no push notifications; a tail query on the integer
cursor every ``poll`` seconds is cheap (an index range scan returning only
new rows) and shows each event within one poll of its commit. In the
distributed mode the backend offers the :class:`~realorders.engine.capabilities.TopicTail`
capability: the events topic itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from realorders.domain import TERMINAL, Event, OrderState, Status, moving
from realorders.engine.capabilities import TopicTail
from realorders.engine.ports import Backend

__all__ = ["follow", "quiet", "wait_imported", "wait_orders", "wait_processed"]

_SETTLED = TERMINAL | {Status.BACKORDERED}


class _Tail(Protocol):
    def tail(self, after: int, limit: int) -> list[tuple[int, Event]]: ...


_PAGE = 1000


def follow(
    backend: Backend,
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
    events: _Tail
    close = None
    with backend.snapshot():  # the cursor and the states must describe the same moment
        if isinstance(backend, TopicTail):  # distributed: the events topic, from its end
            topic = backend.topic_tail(from_start=from_start)
            events, close, cursor = topic, topic.close, 0
        else:
            events = backend.events
            cursor = 0 if from_start else events.head()
        if until_done and named:
            # an id not known yet is waited for: it may be about to be submitted
            states = backend.orders.get_many(list(named))
            if not from_start:  # a replay shows finished orders' events first
                open_orders -= {o for o, s in states.items() if s.status in TERMINAL}
    try:
        yield from _follow(
            backend, events, cursor, named, open_orders, status, until_done, timeout, poll
        )
    finally:
        if close is not None:
            close()


def _follow(
    backend: Backend,
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
    drained = False
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
        if drained:
            return  # this last read drained what committed before the engine went quiet
        if until_done and not named and quiet(backend):
            drained = True
            continue
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError
        time.sleep(poll)


def quiet(backend: Backend) -> bool:
    """Nothing left to move: no backlog, and no order pending, reserved, packed or shipped."""
    return not backend.engine_info().backlog and not moving(backend.orders.counts())


def wait_processed(backend: Backend, position: int, timeout: float | None, poll: float) -> bool:
    """Block until the engine has committed ``position``; False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while backend.position() < position:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def wait_orders(
    backend: Backend,
    order_ids: Iterable[str],
    settled: bool,
    timeout: float | None,
    poll: float,
) -> dict[str, OrderState]:
    """Block until every order is terminal (or, ``settled``, terminal or backordered).

    Returns the states reached; on timeout, those reached so far.
    """
    waiting = set(order_ids)
    done: dict[str, OrderState] = {}
    targets = _SETTLED if settled else TERMINAL
    deadline = None if timeout is None else time.monotonic() + timeout
    while waiting:
        for order_id, state in backend.orders.get_many(list(waiting)).items():
            if state.status in targets:
                done[order_id] = state
                waiting.discard(order_id)
        if not waiting or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(poll)
    return done


def wait_imported(
    backend: Backend,
    positions: list[tuple[int, int]],
    accepted: int,
    timeout: float | None,
    poll: float,
) -> dict[str, int] | None:
    """Block until the ``accepted`` orders at ``positions`` have all settled.

    Settled: processed, and none still moving (backordered counts as settled).
    Returns orders per status among them; None on timeout.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last = max((end for _, end in positions), default=0)
    while True:
        # counting is a scan of the import's orders: not before the engine has reached them
        if backend.position() >= last:
            statuses = backend.orders.counts_between(positions)
            if sum(statuses.values()) >= accepted and not moving(statuses):
                return statuses
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(poll)
