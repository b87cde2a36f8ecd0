"""Orders into the command log: streamed from a file, or checked when built in code.

Constant memory: orders are parsed one at a time and appended in batches, so
a million-order file costs what one batch costs. Bad rows are reported with
their line and skipped; good rows around them are kept. Re-importing the same
file accepts nothing new and is not an error. From a pipe or a terminal
(``import -`` fed by a live process) a partial batch is appended once no line
has come for 50 ms, so a slow feeder's orders are not held back for a full batch.
"""

from __future__ import annotations

import os
import queue
import select
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from realorders._gc import fewer_collections
from realorders.domain import LineItem, Order
from realorders.engine.ports import Backend, IntakeOutcome
from realorders.errors import InputError
from realorders.ids import new_id
from realorders.intake import (
    Format,
    ParsedOrder,
    RowError,
    order_from_obj,
    plain_order,
    read_orders,
)

__all__ = ["ImportReport", "checked_orders", "import_orders", "new_order"]


@dataclass(slots=True)
class ImportReport:
    source: str
    dry_run: bool = False
    orders: int = 0  # well-formed orders read
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    invalid: int = 0  # rows refused by the parser
    generated_ids: int = 0  # orders without an id: new orders on every import
    seconds: float = 0.0
    positions: list[tuple[int, int]] = field(default_factory=list)  # accepted ranges

    @property
    def rejected(self) -> int:
        return self.invalid + self.conflicts

    @property
    def ok(self) -> bool:
        return self.rejected == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "orders": self.orders,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "invalid": self.invalid,
            "rejected": self.rejected,
            "generated_ids": self.generated_ids,
            "seconds": round(self.seconds, 3),
        }


def import_orders(
    backend: Backend,
    stream: BinaryIO,
    fmt: Format,
    source: str,
    *,
    batch_size: int = 1000,
    dry_run: bool = False,
    on_error: Callable[[RowError], None] | None = None,
    on_batch: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Read, validate and append every order of ``stream``; report each bad row to ``on_error``."""
    report = ImportReport(source=source, dry_run=dry_run)
    started = time.perf_counter()
    batch: list[ParsedOrder] = []

    def flush() -> None:
        if batch:
            _append(backend, batch, report, source, dry_run, on_error)
            batch.clear()
            if on_batch is not None:
                on_batch(report)

    def make_id() -> str:
        report.generated_ids += 1
        return new_id()

    parsed = read_orders(stream, fmt, source, id_factory=make_id)
    items: Iterator[ParsedOrder | RowError | None] = (
        _marking_pauses(parsed, stream.fileno(), _LINGER, depth=2 * batch_size)
        if _is_live(stream)
        else parsed
    )
    with fewer_collections():
        for item in items:
            if item is None:  # the feeder paused: what it sent so far goes in now
                flush()
                continue
            if isinstance(item, RowError):
                report.invalid += 1
                if on_error is not None:
                    on_error(item)
                continue
            report.orders += 1
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        flush()
    report.seconds = time.perf_counter() - started
    return report


_LINGER = 0.05  # seconds a live stream may pause before its partial batch is appended
_CHUNK = 256  # items per handover from the reader thread


def _is_live(stream: BinaryIO) -> bool:
    """A pipe, socket or terminal: lines arrive as a feeder writes them, not all at once."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError):  # in-memory streams have no descriptor
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def _marking_pauses(
    items: Iterator[ParsedOrder | RowError], fd: int, linger: float, depth: int
) -> Iterator[ParsedOrder | RowError | None]:
    """``items`` read by a background thread, with ``None`` whenever none came for ``linger`` s.

    The reader hands items over in chunks (a handover per item would cost more
    than parsing): a chunk goes when it is full or when the descriptor has
    nothing more to read right now, so a paused feeder's orders are never held.
    The queue is bounded: memory stays about ``depth`` items whatever the pace.
    A reader error is raised here, in the caller's thread.
    """
    chunks: queue.Queue[list[ParsedOrder | RowError] | BaseException | None] = queue.Queue(
        maxsize=max(2, depth // _CHUNK)
    )

    def pump() -> None:
        chunk: list[ParsedOrder | RowError] = []
        try:
            for item in items:
                chunk.append(item)
                if len(chunk) >= _CHUNK or not select.select([fd], [], [], 0)[0]:
                    chunks.put(chunk)
                    chunk = []
        except BaseException as exc:  # handed to the consumer, raised there
            chunks.put(chunk)
            chunks.put(exc)
            return
        chunks.put(chunk)
        chunks.put(None)

    threading.Thread(target=pump, name="import-reader", daemon=True).start()
    while True:
        try:
            got = chunks.get(timeout=linger)
        except queue.Empty:
            yield None
            continue
        if got is None:
            return
        if isinstance(got, BaseException):
            raise got
        yield from got


def _append(
    backend: Backend,
    batch: list[ParsedOrder],
    report: ImportReport,
    source: str,
    dry_run: bool,
    on_error: Callable[[RowError], None] | None,
) -> None:
    orders = [parsed.order for parsed in batch]
    if dry_run:
        outcomes = _dry_outcomes(backend, orders)
    else:
        results = backend.commands.append_orders(orders)
        outcomes = [r.outcome for r in results]
        accepted = [r.position for r in results if r.position is not None]
        if accepted:
            report.positions.append((min(accepted), max(accepted)))
    for parsed, outcome in zip(batch, outcomes, strict=True):
        if outcome is IntakeOutcome.ACCEPTED:
            report.accepted += 1
        elif outcome is IntakeOutcome.DUPLICATE:
            report.duplicates += 1
        else:
            report.conflicts += 1
            if on_error is not None:
                on_error(
                    RowError(
                        source,
                        parsed.line,
                        f"order {parsed.order.id!r} was already submitted with different content; "
                        "the stored order is kept",
                        parsed.order.id,
                    )
                )


def _dry_outcomes(backend: Backend, orders: list[Order]) -> list[IntakeOutcome]:
    known = backend.commands.digests([o.id for o in orders])
    outcomes = []
    for order in orders:
        digest = order.digest()
        seen = known.get(order.id)
        if seen is None:
            known[order.id] = digest
            outcomes.append(IntakeOutcome.ACCEPTED)
        else:
            outcomes.append(IntakeOutcome.DUPLICATE if seen == digest else IntakeOutcome.CONFLICT)
    return outcomes


def new_order(
    customer_id: str | None,
    items: Sequence[LineItem],
    order_id: str | None = None,
    notes: str | None = None,
) -> Order:
    """An order from its parts, as ``submit --customer/--item`` gives them."""
    if not customer_id:
        raise InputError("an order needs a customer")
    if not items:
        raise InputError("an order needs at least one item")
    return Order(order_id or new_id(), customer_id, tuple(items), notes)


def checked_orders(orders: Iterable[Order], where: str) -> list[Order]:
    """Orders built in code, held to the rules every file obeys (all or none).

    ``where`` names an order in the error: ``"order"``, or ``"orders[{}]"`` for
    its index. One bad order raises InputError and none is returned.
    """
    checked: list[Order] = []
    for index, order in enumerate(orders):
        if (fine := plain_order(order)) is not None:
            checked.append(fine)
            continue
        try:
            checked.append(order_from_obj(order.to_dict(), "order", 1))
        except InputError as exc:
            prefix = "" if "{}" not in where else where.format(index) + ": "
            raise InputError(prefix + exc.reason) from None
    return checked
