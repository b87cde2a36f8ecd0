"""``realorders bridge``: take in the earlier design's Kafka topic (:mod:`realorders.bridge`)."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import typer

from realorders.client import Client

from .app import app, err, settings

bridge_app = typer.Typer(
    help="Take in orders from the earlier design's Kafka topic (foreground, like run).",
    no_args_is_help=True,
)
app.add_typer(bridge_app, name="bridge")

SUMMARY_EVERY = 60.0  # seconds between two summary lines


@bridge_app.command("order-events")
def order_events(
    ctx: typer.Context,
    topic: str = typer.Option("order-events", "--topic", help="The topic to read."),
    group: str = typer.Option(
        "real-orders", "--group", help="Consumer group (a new one starts from the earliest offset)."
    ),
    dead_letters: str | None = typer.Option(
        None,
        "--dead-letters",
        help="Topic for records that are not orders realorders can take in "
        "[default: the distributed mode's PREFIX.dlq].",
    ),
    publish: bool = typer.Option(
        False,
        "--publish",
        help="Also write OrderCreated onto TOPIC for the orders realorders takes in itself "
        "(submit, import, HTTP), for the earlier consumers during a migration.",
    ),
) -> None:
    """Submit each OrderCreated on TOPIC once, under its own OrderId (Ctrl-C or SIGTERM stop it).

    Reads with the distributed mode's Kafka settings (--kafka-bootstrap, SASL,
    TLS) whichever backend stores the orders. Where it has read to is kept with
    the orders, so a crash neither loses nor doubles one; several bridges in one
    group share the partitions.
    """
    from realorders.bridge import BridgeOptions, OrderEventsBridge

    config = settings(ctx).config  # the --kafka-* flags apply here on either backend
    options = BridgeOptions(
        topic=topic, group=group, dead_letter_topic=dead_letters, publish=publish
    )
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stopping)
    with Client(config=config) as client:
        bridge = OrderEventsBridge(client, config, options, on_dead_letter=_dead_letter)
        where = client.where()

        def started() -> None:
            also = f", publishing OrderCreated for {where}'s own orders" if publish else ""
            err.print(
                f"bridge taking in {topic} (group {group}) at {config.kafka_bootstrap} "
                f"into {where}{also}; Ctrl-C to stop",
                highlight=False,
            )

        summary = threading.Thread(target=_summaries, args=(bridge, stop), daemon=True)
        summary.start()
        try:
            bridge.run(stop, started=started)
        finally:
            stop.set()
        s = bridge.stats
        published = f", {s.published:,} published" if publish else ""
        err.print(
            f"bridge stopped: {s.accepted:,} orders submitted, {s.duplicates:,} duplicates, "
            f"{s.dead_letters:,} dead letters{published}",
            highlight=False,
        )


def _dead_letter(where: str, reason: str) -> None:
    err.print(f"dead letter {where}: {reason}", highlight=False, markup=False)


def _summaries(bridge: object, stop: threading.Event) -> None:
    from realorders.bridge import OrderEventsBridge

    assert isinstance(bridge, OrderEventsBridge)
    last = time.monotonic()
    while not stop.wait(1.0):
        if time.monotonic() - last >= SUMMARY_EVERY:
            last = time.monotonic()
            s = bridge.stats
            err.print(
                f"bridge: {s.accepted:,} submitted, {s.duplicates:,} duplicates, "
                f"{s.dead_letters:,} dead letters",
                highlight=False,
            )
