"""One ``backend`` fixture, parametrised over every implementation of the ports.

Every contract test takes ``backend`` and so runs once per implementation. A
new backend (Kafka + Redis) joins by adding its name to :data:`BACKENDS` and a
branch to :func:`open_backend`; the tests themselves do not change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import MemoryBackend

from realorders.config import Config
from realorders.domain import Event, Order, OrderState, Status, apply, pending_data
from realorders.engine.backends.sqlite.backend import SqliteBackend
from realorders.engine.ports import Backend, Changes

BACKENDS = ["memory", "sqlite", pytest.param("kafka", marks=pytest.mark.services)]


def kafka_config(request: pytest.FixtureRequest) -> Config:
    """A store of its own (topics, group, Redis keys) on the session's real broker and Redis."""
    config: Config = request.getfixturevalue("kafka_store_config")
    return config


def open_backend(
    kind: str,
    tmp_path: Path,
    like: Backend | None = None,
    request: pytest.FixtureRequest | None = None,
) -> Backend:
    """A fresh store of ``kind``, or (``like`` given) another handle on the same store.

    Each implementation is assigned to ``handle: Backend``, so mypy checks that it
    conforms to the ports: the contract holds for the types as well as the behaviour.
    """
    handle: Backend
    if kind == "memory":
        handle = MemoryBackend(like.store if isinstance(like, MemoryBackend) else None)
    elif kind == "sqlite":
        handle = SqliteBackend(tmp_path / "contract.db")
    elif kind == "kafka":
        from realorders.engine.backends.distributed.backend import KafkaBackend

        if isinstance(like, KafkaBackend):
            handle = KafkaBackend(like.config)
        else:
            assert request is not None
            handle = KafkaBackend(kafka_config(request), create=True)
    else:
        raise AssertionError(f"no contract fixture for backend {kind!r}")
    return handle


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    handle = open_backend(request.param, tmp_path, request=request)
    yield handle
    handle.close()


@pytest.fixture
def peer(
    request: pytest.FixtureRequest, tmp_path: Path, backend: Backend
) -> Iterator[Callable[[], Backend]]:
    """Open another handle on ``backend``'s store: another process, or the same one restarted."""
    opened: list[Backend] = []

    def open_peer() -> Backend:
        handle = open_backend(request.node.callspec.params["backend"], tmp_path, like=backend)
        opened.append(handle)
        return handle

    yield open_peer
    for handle in opened:
        handle.close()


@pytest.fixture
def stock(backend: Backend) -> Callable[..., None]:
    """``stock("A", 5)`` adds product A (price 2.5 unless given) with 5 on hand."""

    def add(product_id: str, on_hand: int, price: float = 2.5) -> None:
        backend.catalogue.add(product_id, f"product {product_id}", price, on_hand)

    return add


class Timeline:
    """Builds events the way the engine does (through ``apply``) and commits them."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.states: dict[str, OrderState] = {}
        self.changes = Changes(position=0)
        self.arrival = 0
        self.now = time.time() - 100.0

    def tick(self) -> float:
        self.now += 0.25
        return self.now

    def submit(self, order: Order) -> OrderState:
        self.arrival += 1
        prices = self.backend.inventory.prices(i.product_id for i in order.items)
        data = pending_data(order, prices, self.now, self.arrival)
        return self.emit(order.id, Status.PENDING, data)

    def emit(self, order_id: str, status: Status, data: dict[str, Any] | None = None) -> OrderState:
        state = self.states.get(order_id)
        seq = 1 if state is None else state.version + 1
        event = Event(order_id, seq, status, self.tick(), data)
        state = self.states[order_id] = apply(state, event)
        self.changes.events.append(event)
        self.changes.orders[order_id] = state
        return state

    def commit(self, position: int) -> Changes:
        changes, self.changes = self.changes, Changes(position=0)
        changes.position = position
        self.backend.commit(changes)
        return changes


@pytest.fixture
def timeline(backend: Backend) -> Timeline:
    return Timeline(backend)
