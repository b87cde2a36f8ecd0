"""Invariants that must hold on any backend, whatever crashed and restarted.

``check`` rebuilds every order from its events with the same fold the engine
uses and compares it with the read model; then it balances stock against the
ledger of what was put in and what shipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from realorders.domain import HOLDS_STOCK, MAX_QUANTITY, FoldError, OrderState, Status, fold
from realorders.engine.ports import Backend

__all__ = ["CheckReport", "check"]

_SHIPPED = frozenset({Status.SHIPPED, Status.DELIVERED})
_COMPARED = ("status", "version", "customer_id", "items", "updated_at", "terminal_at", "reason")
_MAX_PROBLEMS = 50


@dataclass(slots=True)
class CheckReport:
    orders: int = 0
    events: int = 0
    products: int = 0
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "orders": self.orders,
            "events": self.events,
            "products": self.products,
            "problems": self.problems,
            "more_problems": self.more_problems,
        }


def check(backend: Backend) -> CheckReport:
    """Every invariant, read from one snapshot (an engine may be committing meanwhile)."""
    with backend.snapshot():
        return _check(backend)


def _check(backend: Backend) -> CheckReport:
    report = CheckReport()
    shipped: dict[str, int] = {}
    reserved: dict[str, int] = {}
    batch: list[OrderState] = []

    def compare(folded: list[OrderState]) -> None:
        stored = backend.orders.get_many(s.id for s in folded)
        for state in folded:
            row = stored.pop(state.id, None)
            if row is None:
                report.add(f"order {state.id!r}: has events but no read-model row")
                continue
            for name in _COMPARED:
                if getattr(row, name) != getattr(state, name):
                    report.add(
                        f"order {state.id!r}: read model {name}={getattr(row, name)!r} "
                        f"but events say {getattr(state, name)!r}"
                    )

    for events in backend.events.scan():
        report.events += len(events)
        order_id = events[0].order_id
        seqs = [e.seq for e in events]
        if seqs != list(range(1, len(events) + 1)):
            report.add(f"order {order_id!r}: event numbers {_summary(seqs)} are not 1..{len(seqs)}")
            continue
        try:
            state = fold(events)
        except FoldError as exc:
            report.add(str(exc))
            continue
        assert state is not None
        report.orders += 1
        if any(not 1 <= item["quantity"] <= MAX_QUANTITY for item in state.items):
            report.add(f"order {order_id!r}: a line quantity is outside 1..{MAX_QUANTITY}")
        tally = (
            shipped
            if state.status in _SHIPPED
            else (reserved if state.status in HOLDS_STOCK else None)
        )
        if tally is not None:
            for item in state.items:
                tally[item["product_id"]] = tally.get(item["product_id"], 0) + item["quantity"]
        batch.append(state)
        if len(batch) >= 500:
            compare(batch)
            batch = []
    if batch:
        compare(batch)

    listed = backend.orders.count()
    if listed != report.orders:
        report.add(f"read model holds {listed} orders but events describe {report.orders}")

    put_in = backend.orders.ledger_totals()
    rows = backend.orders.stock_rows()
    for product_id in sorted(set(put_in) | set(rows) | set(shipped) | set(reserved)):
        report.products += 1
        on_hand, held = rows.get(product_id, (0, 0))
        expected_on_hand = put_in.get(product_id, 0) - shipped.get(product_id, 0)
        if on_hand != expected_on_hand:
            report.add(
                f"stock {product_id!r}: on_hand {on_hand}, but {put_in.get(product_id, 0)} "
                f"put in - {shipped.get(product_id, 0)} shipped = {expected_on_hand}"
            )
        if held != reserved.get(product_id, 0):
            report.add(
                f"stock {product_id!r}: reserved {held}, but orders in reserved/packed "
                f"hold {reserved.get(product_id, 0)}"
            )
        if held > on_hand or held < 0:
            report.add(f"stock {product_id!r}: reserved {held} outside 0..on_hand {on_hand}")
    return report


def _summary(seqs: list[int]) -> str:
    return str(seqs) if len(seqs) <= 8 else f"[{seqs[0]}, {seqs[1]}, …, {seqs[-1]}]"
