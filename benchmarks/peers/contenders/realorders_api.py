"""realorders embedded through its Python API, submit and engine in one process.

- saturation: the README's own recipe, ``Client.submit_many`` for the orders
  (one transaction per 1,000), then ``Client.run(until_idle=True)``.
  (Submitting from a thread while the engine runs was measured too: about
  half as fast at saturation, the submitter's and the engine's transactions
  taking turns through SQLite's busy handler; see benchmarks/README.md.)
- ``--rate R``: the shape of a Python service that embeds realorders: the
  engine runs in the main thread (``Client.engine()``) while a submitter
  thread, with a ``Client`` of its own, calls ``Client.submit_many`` with the
  orders due at each tick (open loop). The clock stops when the engine has committed the
  last command's position (the last order's or restock's); with zero delays every
  order has then settled.

Restocks (``--workload restock``): ``Client.restock(sku, quantity)`` from the
submitting client, between the ``submit_many`` calls where ``Pacer.run`` hands
them over, so the restock command lands in the log right after the orders that
precede it. The engine applies it in log order and wakes, in the same batch,
the backordered orders waiting for it (zero delays: they are delivered before
that batch commits), so the two stops above still mean every order is final.

Each ``submit_many`` call is one transaction per 1,000 orders on the command
log. Counts, stock, events and latency
(``created_at``, stamped inside ``submit``, to ``terminal_at`` or a
backorder's ``updated_at``) come back from the store as in realorders_cli.py.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import workload
from realorders_cli import DURABILITY, read_back

from realorders import Client, Delays, LineItem, Order

POLL = 0.002  # the submitter's check, after its last submit, that the engine has caught up
WORKLOADS = ("standard", "backorder", "restock")


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    db = args.dir / "realorders.db"
    inventory = workload.write_inventory(args.stock(), args.dir)
    restocks = args.restocks()
    with Client(db) as client:
        client.init(inventory)
    clock = common.Clock()
    pacer = common.Pacer(args.rate, batch=1000)  # saturation: submit_many's own chunk
    if args.rate <= 0:
        saturate(args, db, clock, pacer, restocks)
    else:
        paced(args, db, clock, pacer, restocks)
    common.write_result(
        args,
        contender="realorders_api",
        durability=DURABILITY,
        versions=common.versions("realorders"),
        clock=clock,
        pacer=pacer,
        notes=(
            (
                "Client.submit_many, then Client.run(until_idle=True)"
                if args.rate <= 0
                else "one process: engine in the main thread, "
                "Client.submit_many per tick from a thread"
            )
            + (
                f"; {len(restocks)} restocks by Client.restock between the submits"
                if restocks
                else ""
            )
            + "; zero delays; terminal times are the events' `at`, stamped before their "
            "batch commits"
        ),
        **read_back(db),
    )


def to_order(o: workload.Order) -> Order:
    return Order(o.order_id, o.customer, tuple(LineItem(sku, qty) for sku, qty in o.lines))


def saturate(
    args: common.Args,
    db: Path,
    clock: common.Clock,
    pacer: common.Pacer,
    restocks: list[workload.Restock],
) -> None:
    with Client(db) as client:

        def submit(batch: list[workload.Order]) -> None:
            client.submit_many([to_order(o) for o in batch])

        def restock(r: workload.Restock) -> None:
            client.restock(r.sku, r.quantity)

        pacer.run(args.orders(), submit, clock, restocks=restocks, restock=restock)
        client.run(until_idle=True, delays=Delays(), handle_signals=False)
        clock.stop()
        clock.stop_cpu()


def paced(
    args: common.Args,
    db: Path,
    clock: common.Clock,
    pacer: common.Pacer,
    restocks: list[workload.Restock],
) -> None:
    engine_client = Client(db)
    engine = engine_client.engine(delays=Delays())
    failure: list[BaseException] = []

    def submitter(loop: asyncio.AbstractEventLoop) -> None:
        try:
            with Client(db) as client:
                last = 0

                def submit(batch: list[workload.Order]) -> None:
                    nonlocal last
                    for result in client.submit_many([to_order(o) for o in batch]):
                        last = max(last, result.position or last)

                def restock(r: workload.Restock) -> None:
                    nonlocal last
                    last = max(last, client.restock(r.sku, r.quantity))

                pacer.run(args.orders(), submit, clock, restocks=restocks, restock=restock)
                # the engine's committed position; a restock's woken orders commit with it
                while client.backend.position() < last:
                    time.sleep(POLL)
                clock.stop()
        except BaseException as exc:  # surfaced by the main thread
            failure.append(exc)
        finally:
            loop.call_soon_threadsafe(engine.stop)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        thread = threading.Thread(target=submitter, args=(loop,), name="submitter")
        # started once the engine is up: call_soon runs at the engine loop's first await
        loop.call_soon(thread.start)
        await engine.run()
        thread.join()

    asyncio.run(run())
    clock.stop_cpu()
    engine_client.close()
    if failure:
        raise failure[0]


if __name__ == "__main__":
    main()
