"""Random workloads against a sequential reference model of the engine (zero delays).

With zero delays a reserved order ships in the same batch, so the whole
engine reduces to a few lines: take commands in log order; a submission for an
unknown product is rejected, one that fits ships, the rest wait in arrival
order; a cancel already in the log when the engine reaches its order's
submission cancels it there (the whole workload is logged before the engine
starts, so every cancel does), otherwise it only catches waiting orders; a
restock or an absolute set offers the product to the waiting orders that need
it, earliest first, each taking it if all its lines fit. However the engine batches, and wherever it
crashes and restarts, the outcome must be the model's.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakes import MemoryBackend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realorders.check import check
from realorders.domain import LineItem, Order, Status
from realorders.engine import Engine
from realorders.engine.backends.sqlite.backend import SqliteBackend
from realorders.engine.ports import CommandKind

S = Status
PRODUCTS = ["P0", "P1", "P2"]


@dataclass(frozen=True)
class Submit:
    order_id: str
    lines: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Cancel:
    order_id: str


@dataclass(frozen=True)
class Restock:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class SetStock:
    product_id: str
    quantity: int


@st.composite
def workloads(draw: Any) -> tuple[dict[str, int], list[Any]]:
    initial = {p: draw(st.integers(0, 4)) for p in PRODUCTS}
    commands: list[Any] = []
    submitted: list[str] = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["submit"] * 5 + ["cancel", "restock", "set"]))
        if kind == "submit":
            product = st.sampled_from([*PRODUCTS, *PRODUCTS, "ZZ"])
            lines = draw(st.lists(st.tuples(product, st.integers(1, 3)), min_size=1, max_size=3))
            order_id = f"o{len(submitted):03}"
            submitted.append(order_id)
            commands.append(Submit(order_id, tuple(lines)))
        elif kind == "cancel" and submitted:
            commands.append(Cancel(draw(st.sampled_from(submitted))))
        elif kind == "restock":
            commands.append(Restock(draw(st.sampled_from(PRODUCTS)), draw(st.integers(1, 5))))
        elif kind == "set":
            commands.append(SetStock(draw(st.sampled_from(PRODUCTS)), draw(st.integers(0, 6))))
    return initial, commands


def needs(lines: tuple[tuple[str, int], ...]) -> dict[str, int]:
    total: dict[str, int] = {}
    for product_id, quantity in lines:
        total[product_id] = total.get(product_id, 0) + quantity
    return total


def model(initial: dict[str, int], commands: list[Any]) -> tuple[dict[str, Status], dict[str, int]]:
    """Final status per order and on-hand stock per product, by the rules in the docstring."""
    on_hand = dict(initial)
    status: dict[str, Status] = {}
    wants: dict[str, dict[str, int]] = {}
    waiting: list[str] = []

    def fits(order_id: str) -> bool:
        return all(on_hand[p] >= q for p, q in wants[order_id].items())

    def ship(order_id: str) -> None:
        for p, q in wants[order_id].items():
            on_hand[p] -= q
        status[order_id] = S.DELIVERED

    def offer(product_id: str) -> None:
        for order_id in list(waiting):
            if product_id in wants[order_id] and fits(order_id):
                ship(order_id)
                waiting.remove(order_id)

    cancelled_in_log = {c.order_id for c in commands if isinstance(c, Cancel)}
    for command in commands:
        if isinstance(command, Submit):
            wants[command.order_id] = needs(command.lines)
            if command.order_id in cancelled_in_log:
                status[command.order_id] = S.CANCELLED
            elif any(p not in on_hand for p in wants[command.order_id]):
                status[command.order_id] = S.REJECTED
            elif fits(command.order_id):
                ship(command.order_id)
            else:
                status[command.order_id] = S.BACKORDERED
                waiting.append(command.order_id)
        elif isinstance(command, Cancel):
            if status[command.order_id] is S.BACKORDERED:
                status[command.order_id] = S.CANCELLED
                waiting.remove(command.order_id)
        elif isinstance(command, Restock):
            on_hand[command.product_id] += command.quantity
            offer(command.product_id)
        else:
            on_hand[command.product_id] = command.quantity  # nothing is ever left reserved
            offer(command.product_id)
    return status, on_hand


def load(backend: Any, initial: dict[str, int], commands: list[Any]) -> None:
    for product_id, stock in initial.items():
        backend.catalogue.add(product_id, product_id, 1.0, stock)
    log = backend.commands
    for command in commands:
        if isinstance(command, Submit):
            lines = tuple(LineItem(p, q) for p, q in command.lines)
            log.append_orders([Order(command.order_id, "ada", lines)])
        elif isinstance(command, Cancel):
            log.append(CommandKind.CANCEL, command.order_id, {"reason": None})
        elif isinstance(command, Restock):
            log.append(
                CommandKind.RESTOCK,
                None,
                {"product_id": command.product_id, "quantity": command.quantity},
            )
        else:
            log.append(
                CommandKind.SET_STOCK,
                None,
                {"product_id": command.product_id, "quantity": command.quantity},
            )


class Crash(Exception):
    pass


def run_engine(backend: Any, batch_size: int, crash_at: int | None = None) -> None:
    """Run until idle; with ``crash_at``, that commit dies and a new engine resumes."""
    if crash_at is not None:
        real_commit = backend.commit
        commits = 0

        def commit(changes: Any) -> None:
            nonlocal commits
            commits += 1
            if commits == crash_at:
                raise Crash
            real_commit(changes)

        backend.commit = commit
        try:
            asyncio.run(Engine(backend, batch_size=batch_size).run(until_idle=True))
        except Crash:
            pass
        finally:
            backend.commit = real_commit
    asyncio.run(Engine(backend, batch_size=batch_size).run(until_idle=True))


def outcome(backend: Any) -> tuple[dict[str, Status], dict[str, int]]:
    report = check(backend)
    assert report.ok, report.problems
    states = backend.orders.get_many([f"o{i:03}" for i in range(200)])
    on_hand = {}
    for level in backend.orders.levels():
        assert 0 <= level.reserved <= level.on_hand, level
        assert level.reserved == 0  # zero delays: nothing waits between reserve and ship
        on_hand[level.product_id] = level.on_hand
    return {oid: s.status for oid, s in states.items()}, on_hand


@settings(max_examples=150, deadline=None)
@given(workloads(), st.sampled_from([1, 2, 7, 2000]))
def test_memory_engine_matches_the_model(workload: Any, batch_size: int) -> None:
    initial, commands = workload
    backend = MemoryBackend()
    load(backend, initial, commands)
    run_engine(backend, batch_size)
    assert outcome(backend) == model(initial, commands)
    assert backend.position() == backend.engine_info().head


@settings(max_examples=100, deadline=None)
@given(workloads(), st.sampled_from([1, 3, 2000]), st.integers(1, 12))
def test_a_crash_at_any_commit_changes_nothing(
    workload: Any, batch_size: int, crash_at: int
) -> None:
    initial, commands = workload
    backend = MemoryBackend()
    load(backend, initial, commands)
    run_engine(backend, batch_size, crash_at=crash_at)
    assert outcome(backend) == model(initial, commands)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(), st.sampled_from([1, 5, 2000]), st.one_of(st.none(), st.integers(1, 8)))
def test_sqlite_engine_matches_the_model(
    workload: Any, batch_size: int, crash_at: int | None
) -> None:
    initial, commands = workload
    with tempfile.TemporaryDirectory() as tmp:
        backend = SqliteBackend(Path(tmp) / "model.db")
        try:
            load(backend, initial, commands)
            run_engine(backend, batch_size, crash_at=crash_at)
            assert outcome(backend) == model(initial, commands)
        finally:
            backend.close()
