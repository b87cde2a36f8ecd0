"""The dashboard on the distributed mode: real Kafka + Redis, real engines, Pilot keys.

The same :class:`DashboardApp` and :class:`Feed` as on SQLite, given a
:class:`Config` with ``backend="kafka"`` on the session's broker and Redis
(``tests/services.py``), in a namespace of its own. Engines are real
``realorders run --delays pack=3,ship=3,deliver=3`` processes configured by the
environment, as an operator would start them; orders go in through a separate
:class:`Client`, and each check reads both the widgets and the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static, TabbedContent

from realorders import Client, LineItem
from realorders.catalogue_file import ProductRow, read_inventory
from realorders.config import Config, load_config
from realorders.domain import Status
from realorders.tui.app import DashboardApp
from realorders.tui.feed import DEFAULT_STUCK_AFTER, EngineState, Feed, cli_prefix
from realorders.tui.screens import ConfirmScreen, QuantityScreen
from realorders.tui.widgets import FlowPanel

from .conftest import DELAYS, INVENTORY, SOLD_OUT, _console_script
from .test_dashboard_pilot import (
    LATER,
    SIZE,
    Scenario,
    add_failing_webhooks,
    cell,
    check_webhooks_tab,
    kpi,
    notes,
    select,
    shown,
    status_of,
    table,
    text_of,
)
from .test_dashboard_pilot import (
    until as pilot_until,
)

pytestmark = pytest.mark.services

S = Status
#: Kafka adds a group join and a transaction per batch to every step: more slack than SQLite
TIMEOUT = 45.0


# -- the store and its engines ----------------------------------------------------------


@pytest.fixture
def kafka_config(kafka_store_config: Config) -> Config:
    """A store of its own (topics, group, Redis keys) on the session's broker and Redis."""
    return kafka_store_config


@pytest.fixture
def shop(kafka_config: Config) -> Config:
    """examples/inventory.csv plus a sold-out product, on Kafka + Redis; no engine yet."""
    with Client(config=kafka_config, create=True) as client:
        client.init_store()
        rows = [*read_inventory(str(INVENTORY)), ProductRow(SOLD_OUT, "Sold out gadget", 12.5, 0)]
        client.load_inventory(rows)
    return kafka_config


class KafkaEngine:
    """``realorders run --delays ...`` on the store, configured through REALORDERS_* only."""

    def __init__(self, config: Config, log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("REALORDERS_")}
        env |= {
            "NO_COLOR": "1",
            "REALORDERS_BACKEND": "kafka",
            "REALORDERS_KAFKA_BOOTSTRAP": config.kafka_bootstrap,
            "REALORDERS_REDIS_URL": config.redis_url,
            "REALORDERS_KAFKA_TOPIC_PREFIX": config.kafka_topic_prefix,
            "REALORDERS_REDIS_PREFIX": config.redis_prefix,
            "REALORDERS_KAFKA_GROUP": config.kafka_group,
        }
        with log.open("ab") as out:  # the child keeps its own copy of the handle
            self.proc = subprocess.Popen(
                [*_console_script(), "run", "--delays", DELAYS],
                cwd=log.parent,
                env=env,
                stdout=out,
                stderr=out,
            )

    def stop(self) -> None:
        """SIGTERM by pid: the engine commits, leaves the group and unregisters."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def engines_running(config: Config) -> int:
    with Client(config=config, create=False) as client:
        return int(client.backend.engine_count())  # type: ignore[attr-defined]


@pytest.fixture
def start_engine(shop: Config, tmp_path: Path) -> Iterator[Callable[[], KafkaEngine]]:
    """Starts engines on ``shop``, each once it has registered; all stopped by pid after."""
    started: list[KafkaEngine] = []

    def start() -> KafkaEngine:
        engine = KafkaEngine(shop, tmp_path / f"engine-{len(started) + 1}.log")
        started.append(engine)
        deadline = time.monotonic() + TIMEOUT
        while engines_running(shop) < len(started):
            if engine.proc.poll() is not None:
                pytest.fail(f"the engine exited with {engine.proc.returncode}:\n{engine.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the engine did not register within {TIMEOUT}s:\n{engine.output()}")
            time.sleep(0.1)
        return engine

    yield start
    for engine in started:
        engine.stop()
    for engine in started:
        assert engine.proc.returncode == 0, engine.output()


# -- the app ----------------------------------------------------------------------------


def dashboard(config: Config) -> DashboardApp:
    thresholds = dict(DEFAULT_STUCK_AFTER)
    app = DashboardApp(
        lambda: Feed(config, window=100, stuck_after=thresholds),
        refresh=0.1,
        stuck_after=thresholds,
    )
    app.animation_level = "none"  # see test_dashboard_pilot.dashboard
    return app


def drive(app: DashboardApp, scenario: Scenario) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await scenario(pilot)

    asyncio.run(main())


async def until(pilot: Pilot[Any], ready: Callable[[], object], what: str) -> None:
    """As test_dashboard_pilot.until, with Kafka's slack."""
    await pilot_until(pilot, ready, what, idle_timeout=TIMEOUT)


async def wait_statuses(
    pilot: Pilot[Any], app: DashboardApp, expected: dict[str, str | tuple[str, ...]]
) -> None:
    def matches(oid: str, wanted: str | tuple[str, ...]) -> bool:
        return status_of(app, oid) in ((wanted,) if isinstance(wanted, str) else wanted)

    await until(
        pilot,
        lambda: all(matches(oid, wanted) for oid, wanted in expected.items()),
        f"statuses {expected}",
    )


def submit(config: Config, customer: str, *items: tuple[str, int]) -> str:
    with Client(config=config, create=False) as client:
        lines = [LineItem(product, quantity) for product, quantity in items or [("KB-01", 1)]]
        return client.submit(customer_id=customer, items=lines).order_id


def db_status(config: Config, order_id: str) -> Status | None:
    """The order's status in the read model; None while it is still queued."""
    with Client(config=config, create=False) as client:
        view = client.get(order_id)
        return None if view.queued else view.status


def where(config: Config) -> str:
    with Client(config=config, create=False) as client:
        return client.where()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- tests ------------------------------------------------------------------------------


def test_orders_flow_to_delivered_with_two_engines(
    shop: Config, start_engine: Callable[[], KafkaEngine]
) -> None:
    first = start_engine()
    app = dashboard(shop)
    store = where(shop)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.frame is not None and app.frame.problem is None, "a frame")
        assert store in kpi(app)  # the header names the cluster and the namespace
        assert f"pid {first.proc.pid}" in kpi(app)  # the one engine, idle or running
        ada = submit(shop, "ada", ("KB-01", 2))
        bob = submit(shop, "bob", ("MS-02", 1))
        await until(pilot, lambda: shown(app) == [bob, ada], "both orders, newest first")
        await wait_statuses(pilot, app, {ada: ("reserved", "packed"), bob: ("reserved", "packed")})
        assert cell(app, ada, "total") == "178.00"
        assert "engine running" in kpi(app)

        second = start_engine()  # the group shares the partitions: the header counts both
        await until(pilot, lambda: "2 engines running" in kpi(app), "two engines")
        assert app.frame is not None
        assert app.frame.engines == 2
        assert app.frame.engine is EngineState.RUNNING
        assert "pid" not in kpi(app).splitlines()[0]  # one pid of two would mislead

        await wait_statuses(pilot, app, {ada: "delivered", bob: "delivered"})
        assert db_status(shop, ada) is S.DELIVERED
        await until(pilot, lambda: "delivered 2" in kpi(app), "the delivered count")
        assert app.frame.counts["delivered"] == 2
        assert app.frame.backlog == 0

        second.stop()  # it unregisters as it leaves
        await until(pilot, lambda: "2 engines" not in kpi(app), "one engine again")
        assert app.frame.engines == 1
        first.stop()
        await until(pilot, lambda: "engine not running" in kpi(app), "no engine")

    drive(app, scenario)


def test_cancel_and_restock_wake_a_backorder(
    shop: Config, start_engine: Callable[[], KafkaEngine]
) -> None:
    start_engine()
    app = dashboard(shop)

    async def scenario(pilot: Pilot[None]) -> None:
        waiting = submit(shop, "cy", (SOLD_OUT, 2))
        doomed = submit(shop, "dee", (SOLD_OUT, 1))
        await wait_statuses(pilot, app, {waiting: "backordered", doomed: "backordered"})

        # cancel through the Client, from the Orders tab
        await select(pilot, app, doomed)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        assert len(app.screen_stack) == 1
        await until(pilot, lambda: f"cancellation of {doomed} queued" in notes(app), "the note")
        await wait_statuses(pilot, app, {doomed: "cancelled"})
        assert db_status(shop, doomed) is S.CANCELLED
        assert status_of(app, waiting) == "backordered"
        # the counts come from the read model, the table from the events: either may be first
        await until(pilot, lambda: "cancelled 1" in kpi(app), "the cancelled count")

        # restock from the Inventory tab: the stock wakes the order waiting for it
        await pilot.press("3")
        assert app.query_one(TabbedContent).active == "inventory"
        await until(
            pilot, lambda: cell(app, SOLD_OUT, "backordered", "inventory") == "1", "one waiting"
        )
        await select(pilot, app, SOLD_OUT, "inventory")
        await pilot.press("r")
        assert isinstance(app.screen, QuantityScreen)
        await pilot.press("2", "enter")
        assert len(app.screen_stack) == 1
        await until(pilot, lambda: f"restock of {SOLD_OUT} +2 queued" in notes(app), "the note")
        await until(
            pilot,
            lambda: db_status(shop, waiting) in (S.RESERVED, *LATER[S.RESERVED]),
            "the backorder to be reserved",
        )
        await until(
            pilot,
            lambda: (
                cell(app, SOLD_OUT, "backordered", "inventory") == "0"
                and (
                    cell(app, SOLD_OUT, "on_hand", "inventory"),
                    cell(app, SOLD_OUT, "reserved", "inventory"),
                )
                in (("2", "2"), ("0", "0"))  # reserved, or shipped already (3 s later)
            ),
            "the inventory row to show the stock taken",
        )
        await wait_statuses(pilot, app, {waiting: ("reserved", "packed", "shipped")})
        assert table(app, "inventory").has_focus

    drive(app, scenario)


def test_webhooks_tab_shows_backlog_and_failing_endpoints(shop: Config) -> None:
    """The same tab as on SQLite, its figures read from Redis's outbox indexes."""
    app = dashboard(shop)

    def add() -> tuple[str, str]:
        with Client(config=shop, create=False) as client:
            return add_failing_webhooks(client)

    async def scenario(pilot: Pilot[None]) -> None:
        await check_webhooks_tab(pilot, app, add, idle_timeout=TIMEOUT)

    drive(app, scenario)


def test_a_store_not_initialised_yet_says_what_to_run(kafka_config: Config) -> None:
    app = dashboard(kafka_config)

    async def scenario(pilot: Pilot[None]) -> None:
        empty = app.query_one("#empty", Static)
        await until(pilot, lambda: app.frame is not None and empty.display, "the empty state")
        assert app.frame is not None
        assert app.frame.missing
        text = " ".join(text_of(empty).split())  # the panel wraps long lines
        assert "Nothing to show yet." in text
        assert f"no realorders store under prefix {kafka_config.redis_prefix!r}" in text
        assert f"--kafka-bootstrap {kafka_config.kafka_bootstrap}" in text
        assert f"--redis-prefix {kafka_config.redis_prefix} init --inventory" in text
        assert "realorders --backend kafka" in text
        assert "--db" not in text
        assert "store unreachable" in kpi(app)

        with Client(config=kafka_config, create=True) as client:  # init while it watches
            client.init_store()
        await until(
            pilot, lambda: "No orders yet in this store." in text_of(empty), "the new empty store"
        )
        assert "engine not running" in kpi(app)
        assert app.query_one(FlowPanel).display

    drive(app, scenario)


def test_unreachable_redis_names_the_address_and_keeps_retrying() -> None:
    port = closed_port()
    config = Config(
        backend="kafka",
        kafka_bootstrap=f"127.0.0.1:{closed_port()}",
        redis_url=f"redis://127.0.0.1:{port}/0",
    )
    app = dashboard(config)

    async def scenario(pilot: Pilot[None]) -> None:
        empty = app.query_one("#empty", Static)
        await until(pilot, lambda: app.frame is not None and empty.display, "the empty state")
        assert app.frame is not None
        first = app.frame
        assert first.engine is EngineState.UNREACHABLE
        assert not first.missing
        text = " ".join(text_of(empty).split())
        assert "The dashboard cannot reach the store." in text
        assert f"cannot reach Redis at 127.0.0.1:{port}/0: connection refused" in text
        assert f"Redis 127.0.0.1:{port}/0" in text  # what it watches
        assert "keeps retrying" in text
        assert "init" not in text  # nothing to create: something to fix
        assert "store unreachable" in kpi(app)
        assert not app.query_one(FlowPanel).display
        await until(pilot, lambda: app.frame is not first, "another attempt")
        assert app.is_running

    drive(app, scenario)


def test_unreachable_kafka_is_named_at_once(shop: Config) -> None:
    """Redis holds the store but the broker is gone: a probe says so in one round trip."""
    port = closed_port()
    config = dataclasses.replace(shop, kafka_bootstrap=f"127.0.0.1:{port}")
    app = dashboard(config)

    async def scenario(pilot: Pilot[None]) -> None:
        empty = app.query_one("#empty", Static)
        started = time.monotonic()
        await until(pilot, lambda: app.frame is not None and empty.display, "the empty state")
        assert time.monotonic() - started < 10  # not kafka-python's 30 s bootstrap timeout
        text = " ".join(text_of(empty).split())
        assert f"cannot reach Kafka at 127.0.0.1:{port}" in text
        assert "connection refused" in text
        assert f"Watching Kafka 127.0.0.1:{port} (topics {shop.kafka_topic_prefix}.*)" in text
        assert "store unreachable" in kpi(app)

    drive(app, scenario)


def test_commands_named_in_hints_repeat_flags_never_secrets(tmp_path: Path) -> None:
    """What the empty state tells to run reaches the same store, and shows no secret."""
    toml = tmp_path / "realorders.toml"
    toml.write_text('redis_prefix = "shop"\n')
    env = {
        "REALORDERS_REDIS_URL": "redis://cache:6380/0",
        "REALORDERS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "REALORDERS_KAFKA_USERNAME": "orders",
        "REALORDERS_KAFKA_PASSWORD": "s3cret",
    }
    flags = {"backend": "kafka", "kafka_bootstrap": "k1:9093,k2:9093", "kafka_group": "g 1"}
    config = load_config(flags, env, toml)
    assert cli_prefix(config) == (
        f"realorders --config {toml} --backend kafka "
        "--kafka-bootstrap k1:9093,k2:9093 --kafka-group 'g 1'"
    )
    # set in code: every setting that is not a default, but no password in a URL
    config = Config(backend="kafka", redis_url="redis://:pw@cache:6380/0", redis_prefix="shop")
    assert cli_prefix(config) == "realorders --backend kafka --redis-prefix shop"
    assert cli_prefix(Config(db=tmp_path / "shop.db")) is None  # a file: --db PATH
