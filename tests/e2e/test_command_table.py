"""The whole command table, every command with every flag, once per backend.

Each test runs on a store of its own, built through the real console script:
``sqlite`` (a database file, ``--db``) and ``kafka`` (the session's real broker
and Redis from tests/services.py, in a namespace of its own). The store is
selected by global flags on every call, so those flags are exercised by every
command. Engines are real ``realorders run --delays pack=0,ship=0,deliver=0``
processes; every wait is for progress the store reports (``--wait``,
``watch --until-done``, ``stats --json``; tests/waiting.py gives up only when
nothing moves), never a guess at machine speed. The one sleep waits out the
engines' heartbeat window (15 s) once, on Kafka: only time shows a missing heartbeat.

:data:`TABLE` is the command table as ``realorders --help`` and each
``realorders COMMAND --help`` print it (:func:`test_the_table_is_the_cli` keeps
it honest). Each family test owns some commands (:data:`FAMILIES`) and ends by
asserting that its own invocations used every flag of them, in every spelling.

Commands a backend does not offer (``dlq`` on SQLite, ``--db`` and ``demo`` on
Kafka, the Kafka and Redis settings on SQLite) and commands that need a
terminal (``dashboard``, ``demo --dashboard``) must exit 2 with one
``error: …`` line on stderr that says what is needed, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import pytest
from waiting import cpu_ticks, wait_for

from realorders import Client
from realorders.config import load_config
from realorders.deliveries import DeliveryStatus
from realorders.delivery import new_delivery
from realorders.tokens import Scope

from .conftest import csv_rows, error_lines, fails, ndjson, ok

T = TypeVar("T")

pytestmark = pytest.mark.slow

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("kafka", id="kafka", marks=pytest.mark.services),
]

#: generous: a slow CI machine, a broker's group join, a transaction per batch
WAIT = 120.0
#: the engine runs with no fulfilment delay: an order settles as soon as it is read
ZERO_DELAYS = "pack=0,ship=0,deliver=0"
#: an engine's heartbeat counts as fresh this long (ENGINE_STALE of the distributed mode)
HEARTBEAT_STALE = 15.0

# -- the command table -------------------------------------------------------------------

#: command ("" is the root, "products add" a subcommand) -> {long option: short alias or None}
TABLE: dict[str, dict[str, str | None]] = {
    "": {
        "--config": None,
        "--db": None,
        "--backend": None,
        "--kafka-bootstrap": None,
        "--kafka-security-protocol": None,
        "--kafka-sasl-mechanism": None,
        "--kafka-username": None,
        "--kafka-ca-file": None,
        "--kafka-topic-prefix": None,
        "--kafka-partitions": None,
        "--kafka-replication-factor": None,
        "--kafka-group": None,
        "--redis-url": None,
        "--redis-ca-file": None,
        "--redis-prefix": None,
        "--debug": None,
        "--version": None,
        "--help": "-h",
    },
    "init": {"--inventory": None, "--help": "-h"},
    "dashboard": {"--refresh": None, "--stuck-after": None, "--rows": None, "--help": "-h"},
    "run": {
        "--until-idle": None,
        "--delays": None,
        "--batch-size": None,
        "--notify": None,
        "--help": "-h",
    },
    "notify": {"--time-scale": None, "--concurrency": None, "--timeout": None, "--help": "-h"},
    "bridge order-events": {
        "--topic": None,
        "--group": None,
        "--dead-letters": None,
        "--publish": None,
        "--help": "-h",
    },
    "demo": {"--path": None, "--speed": None, "--dashboard": None, "--serve": None, "--help": "-h"},
    "serve": {
        "--host": None,
        "--port": None,
        "--workers": None,
        "--no-auth": None,
        "--max-body": None,
        "--max-backlog": None,
        "--heartbeat": None,
        "--stream-buffer": None,
        "--client-timeout": None,
        "--certfile": None,
        "--keyfile": None,
        "--access-log": None,
        "--no-access-log": None,
        "--notify": None,
        "--compat": None,
        "--help": "-h",
    },
    "submit": {
        "--customer": "-c",
        "--item": "-i",
        "--id": None,
        "--notes": None,
        "--wait": None,
        "--timeout": None,
        "--json": None,
        "--help": "-h",
    },
    "import": {
        "--format": "-f",
        "--batch-size": None,
        "--dry-run": None,
        "--errors-file": None,
        "--wait": None,
        "--timeout": None,
        "--json": None,
        "--help": "-h",
    },
    "list": {
        "--status": "-s",
        "--customer": "-c",
        "--limit": "-n",
        "--format": None,
        "--help": "-h",
    },
    "show": {"--json": None, "--help": "-h"},
    "cancel": {"--reason": "-r", "--timeout": None, "--help": "-h"},
    "watch": {
        "--status": "-s",
        "--json": None,
        "--until-done": None,
        "--from-start": None,
        "--timeout": None,
        "--help": "-h",
    },
    "stats": {"--json": None, "--window": None, "--help": "-h"},
    "check": {"--json": None, "--help": "-h"},
    "products": {"--help": "-h"},
    "products list": {"--format": None, "--help": "-h"},
    "products show": {"--format": None, "--help": "-h"},
    "products add": {"--name": None, "--price": None, "--stock": None, "--help": "-h"},
    "products update": {"--name": None, "--price": None, "--help": "-h"},
    "products remove": {"--help": "-h"},
    "inventory": {"--help": "-h"},
    "inventory list": {"--format": None, "--help": "-h"},
    "inventory set": {"--timeout": None, "--help": "-h"},
    "inventory restock": {"--timeout": None, "--help": "-h"},
    "config": {"--help": "-h"},
    "config show": {"--json": None, "--help": "-h"},
    "bridge": {"--help": "-h"},
    "dlq": {"--help": "-h"},
    "dlq list": {"--format": "-f", "--all": None, "--help": "-h"},
    "dlq replay": {"--value-file": None, "--help": "-h"},
    "tokens": {"--help": "-h"},
    "tokens create": {"--scope": None, "--json": None, "--help": "-h"},
    "tokens list": {"--format": None, "--help": "-h"},
    "tokens revoke": {"--help": "-h"},
    "webhooks": {"--help": "-h"},
    "webhooks add": {
        "--events": None,
        "--customer": None,
        "--description": None,
        "--json": None,
        "--help": "-h",
    },
    "webhooks list": {"--format": None, "--help": "-h"},
    "webhooks show": {"--json": None, "--help": "-h"},
    "webhooks update": {
        "--url": None,
        "--events": None,
        "--customer": None,
        "--description": None,
        "--help": "-h",
    },
    "webhooks disable": {"--reason": None, "--help": "-h"},
    "webhooks enable": {"--help": "-h"},
    "webhooks remove": {"--help": "-h"},
    "webhooks rotate-secret": {"--grace": None, "--help": "-h"},
    "webhooks deliveries": {
        "--failed": None,
        "--order": None,
        "--limit": "-n",
        "--format": None,
        "--help": "-h",
    },
    "webhooks replay": {"--since": None, "--order": None, "--failed": None, "--help": "-h"},
}
GROUPS = frozenset({"products", "inventory", "config", "dlq", "tokens", "webhooks", "bridge"})
#: global options that take no value
ROOT_SWITCHES = frozenset({"--debug", "--version", "--help", "-h"})
#: the settings of the distributed mode only
KAFKA_ONLY = [name for name in TABLE[""] if name.startswith(("--kafka-", "--redis-"))]

#: the test that owns each command: it must use every flag of it (help: the table test)
FAMILIES: dict[str, frozenset[str]] = {
    "test_global_options": frozenset({"", "config show"}),
    "test_catalogue_and_stock": frozenset(
        {
            "init",
            "products list",
            "products show",
            "products add",
            "products update",
            "products remove",
            "inventory list",
            "inventory set",
            "inventory restock",
        }
    ),
    "test_orders": frozenset({"submit", "show", "cancel", "list"}),
    "test_import": frozenset({"import"}),
    "test_engine": frozenset({"run"}),
    "test_tracking": frozenset({"watch", "stats", "check"}),
    "test_dead_letters": frozenset({"dlq list", "dlq replay"}),
    "test_terminal_commands": frozenset({"dashboard", "demo"}),
    "test_tokens": frozenset({"tokens create", "tokens list", "tokens revoke"}),
    "test_webhooks": frozenset(
        {
            "webhooks add",
            "webhooks list",
            "webhooks show",
            "webhooks update",
            "webhooks disable",
            "webhooks enable",
            "webhooks remove",
            "webhooks rotate-secret",
        }
    ),
    "test_webhook_deliveries": frozenset({"webhooks deliveries", "webhooks replay"}),
    "test_serve": frozenset({"serve"}),
    "test_notify": frozenset({"notify"}),
    "test_bridge": frozenset({"bridge order-events"}),
}

# A catalogue whose stock levels the expected statuses rely on (examples/ may change).
CATALOGUE: list[dict[str, Any]] = [
    {"product_id": "KB-01", "name": "Mechanical keyboard", "price": 89.0, "stock": 40},
    {"product_id": "MS-02", "name": "Wireless mouse", "price": 24.5, "stock": 60},
    {"product_id": "SP-07", "name": "Desk speakers", "price": 69.0, "stock": 2},
    {"product_id": "HD-03", "name": "Headphones", "price": 179.0, "stock": 3},
    {"product_id": "OUT-01", "name": "Sold out gadget", "price": 12.5, "stock": 0},
]
STATUSES = [
    "pending",
    "reserved",
    "backordered",
    "packed",
    "shipped",
    "delivered",
    "rejected",
    "cancelled",
]
FLOW = ["pending", "reserved", "packed", "shipped", "delivered"]


def statuses(**counts: int) -> dict[str, int]:
    """Orders per status, every status a key (as ``stats`` and ``import --wait`` give them)."""
    return {status: counts.get(status, 0) for status in STATUSES}


# -- running the console script ------------------------------------------------------------


def console_script() -> list[str]:
    script = Path(sys.executable).parent / "realorders"
    if not script.exists():
        pytest.fail("the realorders console script is not installed (pip install -e '.[dev]')")
    return [str(script)]


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any REALORDERS_* setting: flags select the store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALORDERS_")}
    return {**env, "NO_COLOR": "1", "COLUMNS": "200", **(extra or {})}


@dataclass
class Engine:
    """A background ``realorders run``; its stdout and stderr go to a log file."""

    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> tuple[int, str]:
        """SIGTERM (the engine commits and leaves), then kill after 60 s: (exit code, log)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode, self.output()


@dataclass
class Store:
    """One store (a SQLite file, or topics and keys of their own) and the console script."""

    backend: str
    cwd: Path
    options: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    kafka_bootstrap: str = ""
    prefix: str = ""
    calls: list[tuple[str, ...]] = field(default_factory=list)
    engines: list[Engine] = field(default_factory=list)

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = WAIT + 60,
        options: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Ran:
        argv = (*(self.options if options is None else options), *args)
        self.calls.append(argv)
        # never the terminal pytest may run in: the CLI must behave as in a script
        stdin: dict[str, Any] = (
            {"stdin": subprocess.DEVNULL} if input is None else {"input": input.encode()}
        )
        proc = subprocess.run(
            [*console_script(), *argv],
            cwd=self.cwd,
            capture_output=True,
            timeout=timeout,
            env=clean_env({**self.env, **(env or {})}),
            check=False,
            **stdin,
        )
        return Ran(proc.returncode, proc.stdout.decode(), proc.stderr.decode())

    def json(self, *args: str, **kwargs: Any) -> Any:
        """Run a command that must succeed (``__call__``'s keywords) and parse its JSON."""
        return json.loads(ok(self, *args, **kwargs).stdout)

    # -- the engine

    def background(self, name: str, *args: str, options: Sequence[str] | None = None) -> Engine:
        """The console script with ARGS in the background, its output in ``NAME.log``; stopped
        (SIGTERM, by PID) with the store's engines."""
        argv = (*(self.options if options is None else options), *args)
        self.calls.append(argv)
        log = self.cwd / f"{name}.log"
        with log.open("wb") as out:  # the child keeps its own handle
            proc = subprocess.Popen(
                [*console_script(), *argv],
                cwd=self.cwd,
                env=clean_env(self.env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        started = Engine(proc, log)
        self.engines.append(started)
        return started

    def engine(self, *extra: str) -> Engine:
        """``realorders run`` in the background, returned once it is processing."""
        engine = self.background(
            f"engine-{len(self.engines) + 1}", "run", "--delays", ZERO_DELAYS, *extra
        )
        proc = engine.proc

        def look() -> tuple[bool, int | None, int]:
            """(processing, the engine's CPU ticks, its log's size): the last two move
            while it starts, however slow the machine."""
            if proc.poll() is not None:
                raise AssertionError(f"the engine exited {proc.returncode}")
            log_text = engine.output()
            # Kafka: the engine has joined the group and owns partitions
            joined = self.backend != "kafka" or "now owns partitions" in log_text
            running = joined and bool(self.stats()["engine"]["running"])
            return running, cpu_ticks(proc.pid), len(log_text)

        try:
            poll(look, lambda seen: seen[0], progress=lambda seen: seen[1:], what="the engine")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nengine log:\n{engine.output()}") from None
        return engine

    def serve(self, *args: str) -> tuple[Engine, str]:
        """``realorders serve ARGS`` in the background: the process and its URL, once it answers."""
        server = self.background(f"serve-{len(self.engines) + 1}", "serve", *args)
        proc = server.proc

        def look() -> tuple[str | None, int | None, int]:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited {proc.returncode}:\n{server.output()}")
            found = re.search(r"^serving .* at (\S+)", server.output(), re.M)
            return (found.group(1) if found else None), cpu_ticks(proc.pid), len(server.output())

        url = poll(look, lambda seen: seen[0], progress=lambda seen: seen[1:], what="serve")[0]
        assert url is not None
        return server, url

    def serve_demo(self, *args: str) -> tuple[Engine, str]:
        """``realorders demo ARGS --serve`` in the background, once its flow is done."""
        demo = self.background("demo-serve", "demo", *args)
        proc = demo.proc
        poll(
            lambda: (proc.poll(), "keeps running" in demo.output(), len(demo.output())),
            lambda seen: seen[1] or seen[0] is not None,
            progress=lambda seen: seen[2],
            what="the demo's flow",
        )
        found = re.search(r"HTTP API at (\S+)", demo.output())
        assert found is not None, demo.output()
        return demo, found.group(1)

    def stop_engines(self) -> None:
        for engine in self.engines:
            engine.stop()

    # -- reading the store

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.json("stats", "--json")
        return data

    def order(self, order_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.json("show", order_id, "--json")
        return data

    def status(self, order_id: str) -> str:
        return str(self.order(order_id)["status"])

    def reaches(self, order_id: str, status: str) -> dict[str, Any]:
        """Poll ``show --json`` until the order has ``status`` (e.g. backordered)."""
        return poll(
            lambda: self.order(order_id),
            lambda seen: seen["status"] == status,
            progress=lambda seen: (seen["status"], seen["version"]),
            what=f"{order_id} to be {status}",
        )

    def settled(self, orders: int) -> dict[str, Any]:
        """Poll ``stats --json`` until ``orders`` orders exist, none moves and the backlog is 0."""

        def done(data: dict[str, Any]) -> bool:
            moving = sum(data["by_status"][s] for s in ("pending", "reserved", "packed", "shipped"))
            return data["orders"] == orders and data["backlog"] == 0 and not moving

        return poll(
            self.stats,
            done,
            progress=lambda d: (d["orders"], d["backlog"], d["by_status"], d["engine"]["position"]),
            what=f"{orders} orders to settle",
        )

    def init(self) -> None:
        ok(self, "init", "--inventory", str(write_catalogue(self.cwd / "catalogue.csv")))

    # -- the flags this store's calls used

    def used(self) -> dict[str, set[str]]:
        """Command -> every option spelling its invocations used ("" for the global ones)."""
        used: dict[str, set[str]] = {}
        for argv in self.calls:
            command, flags = parse_call(argv)
            for name, spellings in flags.items():
                used.setdefault(name, set()).update(spellings)
            used.setdefault(command, set())
        return used

    def assert_covered(self, family: str) -> None:
        """Every flag of the family's commands, long and short, was used at least once."""
        used = self.used()
        missing = {
            command: sorted(
                spelling
                for option, alias in TABLE[command].items()
                if option != "--help"
                for spelling in (option, alias)
                if spelling is not None and spelling not in used.get(command, set())
            )
            for command in FAMILIES[family]
        }
        missing = {command: spellings for command, spellings in missing.items() if spellings}
        assert not missing, f"flags never exercised by {family}: {missing}"


def parse_call(argv: Sequence[str]) -> tuple[str, dict[str, set[str]]]:
    """The command an argv runs and the option spellings it gives, per command ("" root)."""
    flags: dict[str, set[str]] = {"": set()}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name = argv[i].split("=", 1)[0]
        flags[""].add(name)
        i += 1 if name in ROOT_SWITCHES or "=" in argv[i] else 2
    if i >= len(argv):
        return "", flags
    command = argv[i]
    i += 1
    if command in GROUPS and i < len(argv) and not argv[i].startswith("-"):
        command = f"{command} {argv[i]}"
        i += 1
    flags[command] = {a.split("=", 1)[0] for a in argv[i:] if a.startswith("-") and len(a) > 1}
    return command, flags


def poll(
    sample: Callable[[], T],
    done: Callable[[T], object] = bool,
    *,
    progress: Callable[[T], object] | None = None,
    what: str,
) -> T:
    """Sample until ``done``; give up only after :data:`WAIT` s without progress (waiting.py).

    ``progress`` measures the work (by default the sample itself): while it changes, the
    wait goes on, so a slow machine is waited for and a stuck store fails.
    """
    return wait_for(sample, done, progress=progress, idle_timeout=WAIT, interval=0.2, what=what)


def refused(store: Store, *args: str, needs: str, **kwargs: Any) -> str:
    """A command this backend does not offer: exit 2, one ``error:`` line naming ``needs``."""
    result = fails(store, *args, code=2, **kwargs)
    line: str = error_lines(result.stderr)[0]
    assert needs.lower() in line.lower(), line
    return line


def write_catalogue(path: Path, rows: Sequence[Mapping[str, Any]] = CATALOGUE) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(list(rows)))
        return path
    lines = ["product_id,name,price,stock"]
    lines += [f"{r['product_id']},{r['name']},{r['price']},{r['stock']}" for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def order(order_id: str | None, customer: str, *items: tuple[str, int], **extra: Any) -> str:
    data: dict[str, Any] = {} if order_id is None else {"id": order_id}
    data["customer_id"] = customer
    data["items"] = [{"product_id": p, "quantity": q} for p, q in items]
    return json.dumps({**data, **extra})


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def events_of(records: list[dict[str, Any]], order_id: str) -> list[str]:
    return [r["status"] for r in records if r["order_id"] == order_id]


# -- the store, once per backend -----------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on ``request.param``, selected by global flags on every call."""
    if request.param == "kafka":
        kafka = request.getfixturevalue("kafka_server")
        redis = request.getfixturevalue("redis_server")
        prefix: str = request.getfixturevalue("kafka_prefix")
        options = (
            "--backend",
            "kafka",
            "--kafka-bootstrap",
            str(kafka.bootstrap),
            "--redis-url",
            str(redis.url),
            "--kafka-topic-prefix",
            prefix,
            "--redis-prefix",
            prefix,
            "--kafka-group",
            f"{prefix}-engine",
            "--kafka-partitions",
            "2",
        )
        shop = Store(
            "kafka", tmp_path, options, kafka_bootstrap=str(kafka.bootstrap), prefix=prefix
        )
    else:
        shop = Store("sqlite", tmp_path, ("--backend", "sqlite", "--db", str(tmp_path / "shop.db")))
    try:
        yield shop
    finally:
        shop.stop_engines()


def stop_engine(engine: Engine) -> str:
    """Stop a background engine; SIGTERM is its normal way to stop: exit 0, a last line."""
    code, log = engine.stop()
    assert "Traceback" not in log, log
    assert code == 0, log
    assert "engine stopped at position" in log, log
    return log


# -- the table itself ----------------------------------------------------------------------


def parse_help(text: str) -> tuple[dict[str, str | None], list[str]]:
    """({long option: short alias}, [subcommands]) from a ``--help`` text.

    A section is an unindented line ending in ':' ("Options:", "Commands:", or a
    panel such as "Distributed mode (--backend kafka):"); options are read from
    every section but commands and arguments.
    """
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = sections.setdefault(line[:-1], [])
        elif current is not None and line.strip():
            current.append(line)
    options: dict[str, str | None] = {}
    listed = [name for name in sections if "commands" not in name.lower()]  # option panels too
    for line in (line for name in listed if name != "Arguments" for line in sections[name]):
        found = re.match(r"^  (-[\w-]+)(?:, (--[\w-]+))?(?: / (--[\w-]+))?(?=\s|$)", line)
        if found:
            first, second, negative = found.groups()
            if second is None:
                options[first] = None
            else:
                options[second] = first
            if negative is not None:  # a switch pair (--x / --no-x): two options
                options[negative] = None
    commands = [
        m.group(1)
        for name in sections
        if "commands" in name.lower()
        for line in sections[name]
        if (m := re.match(r"^  ([a-z][\w-]*)(?:\s{2,}|$)", line))
    ]
    return options, commands


def test_the_table_is_the_cli(store: Store) -> None:
    """``--help`` of every command and group, after this backend's flags, is :data:`TABLE`.

    Help needs no store: on Kafka nothing was initialised and nothing may connect.
    Both spellings are used, alternately (every call costs an interpreter start).
    """
    root = ok(store, "-h")
    assert root.stdout.startswith("Usage: realorders [OPTIONS] COMMAND"), root.stdout
    options, commands = parse_help(root.stdout)
    found: dict[str, dict[str, str | None]] = {"": options}
    level: list[tuple[str, ...]] = [(name,) for name in commands]

    def helped(numbered: tuple[int, tuple[str, ...]]) -> Ran:
        index, path = numbered
        ran: Ran = ok(store, *path, "--help" if index % 2 else "-h")  # ok() returns Any
        return ran

    with ThreadPoolExecutor(max_workers=4) as pool:
        while level:
            helps = list(pool.map(helped, enumerate(level)))
            below: list[tuple[str, ...]] = []
            for path, result in zip(level, helps, strict=True):
                name = " ".join(path)
                assert result.stdout.startswith(f"Usage: realorders {name} "), result.stdout
                options, subcommands = parse_help(result.stdout)
                found[name] = options
                below += [(*path, sub) for sub in subcommands]
            level = below
    assert found == TABLE
    owned = set().union(*FAMILIES.values())
    assert owned == set(TABLE) - GROUPS, "each command belongs to exactly one family test"


# -- init, products, inventory -------------------------------------------------------------


def test_catalogue_and_stock(store: Store) -> None:
    cwd = store.cwd
    first = ok(store, "init")
    again = ok(store, "init")  # idempotent
    if store.backend == "kafka":
        assert "store ready on Kafka" in first.stderr, first.stderr
        assert f"topic {store.prefix}.commands: exists" in again.stderr, again.stderr
    else:
        assert "created database" in first.stderr, first.stderr
        assert "using existing database" in again.stderr, again.stderr
    loaded = ok(store, "init", "--inventory", str(write_catalogue(cwd / "catalogue.json")))
    assert "loaded" in loaded.stderr
    assert "5 products added, 0 updated" in loaded.stderr
    repriced = [
        {**row, "price": 99.0} if row["product_id"] == "KB-01" else row for row in CATALOGUE
    ]
    csv_file = write_catalogue(cwd / "catalogue.csv", repriced)
    assert "0 products added, 5 updated" in ok(store, "init", "--inventory", str(csv_file)).stderr
    refused(store, "init", "--inventory", str(cwd / "missing.csv"), needs="no such file")

    # products
    listed = store.json("products", "list", "--format", "json")
    expected = [
        {k: v for k, v in row.items() if k != "stock"}
        for row in sorted(repriced, key=lambda r: str(r["product_id"]))
    ]
    assert listed == expected
    assert ndjson(ok(store, "products", "list", "--format", "ndjson").stdout) == expected
    as_csv = csv_rows(ok(store, "products", "list", "--format", "csv").stdout)
    assert [(r["product_id"], float(r["price"])) for r in as_csv] == [
        (r["product_id"], r["price"]) for r in expected
    ]
    table = ok(store, "products", "list", "--format", "table").stdout
    assert all(r["product_id"] in table for r in expected)
    assert "Mechanical keyboard" in table

    added = ok(store, "products", "add", "LP-14", "--name", "Laptop stand", "--price", "34")
    assert "added LP-14" in added.stderr
    ok(store, "products", "add", "CB-10", "--name", "USB-C cable", "--price", "9.9", "--stock", "5")
    assert store.json("products", "show", "CB-10", "--format", "json") == {
        "product_id": "CB-10",
        "name": "USB-C cable",
        "price": 9.9,
        "on_hand": 5,
        "reserved": 0,
        "available": 5,
        "backordered": 0,
    }
    assert store.json("products", "show", "LP-14", "--format", "json")["on_hand"] == 0
    fails(store, "products", "add", "KB-01", "--name", "again", "--price", "1")  # exists: 1
    refused(store, "products", "add", "XX-1", "--name", "x", "--price", "-1", needs="price")
    ok(store, "products", "update", "LP-14", "--name", "Stand")
    ok(store, "products", "update", "LP-14", "--price", "30.5")
    ok(store, "products", "update", "CB-10", "--name", "Cable", "--price", "8")
    refused(store, "products", "update", "LP-14", needs="--name")
    (shown,) = ndjson(ok(store, "products", "show", "LP-14", "--format", "ndjson").stdout)
    assert (shown["name"], shown["price"]) == ("Stand", 30.5)
    (cable,) = csv_rows(ok(store, "products", "show", "CB-10", "--format", "csv").stdout)
    assert (cable["name"], float(cable["price"]), cable["on_hand"]) == ("Cable", 8.0, "5")
    assert "Stand" in ok(store, "products", "show", "LP-14", "--format", "table").stdout
    assert "removed LP-14" in ok(store, "products", "remove", "LP-14").stderr
    fails(store, "products", "show", "LP-14", "--format", "json")  # gone: not found, 1
    fails(store, "products", "remove", "LP-14")

    # stock: queued without an engine, applied by one
    queued = ok(store, "inventory", "restock", "SP-07", "3", "--timeout", str(WAIT))
    assert "restock of SP-07 by 3 queued" in queued.stderr, queued.stderr
    engine = store.engine()

    def level(product_id: str) -> dict[str, Any]:
        rows = store.json("inventory", "list", "--format", "json")
        return next(r for r in rows if r["product_id"] == product_id)

    poll(lambda: level("SP-07"), lambda sp: sp["on_hand"] == 5, what="the queued restock")
    set_ = ok(store, "inventory", "set", "KB-01", "12", "--timeout", str(WAIT))
    assert "stock of KB-01 set to 12: applied" in set_.stderr, set_.stderr
    assert level("KB-01") == {
        "product_id": "KB-01",
        "name": "Mechanical keyboard",
        "price": 99.0,
        "on_hand": 12,
        "reserved": 0,
        "available": 12,
        "backordered": 0,
    }
    ok(store, "submit", "-c", "ada", "-i", "HD-03=10", "--id", "CAT-1")
    store.reaches("CAT-1", "backordered")
    assert level("HD-03")["backordered"] == 1
    fails(store, "products", "remove", "HD-03")  # an open order includes it
    restocked = ok(store, "inventory", "restock", "HD-03", "7", "--timeout", str(WAIT))
    assert "restock of HD-03 by 7: applied" in restocked.stderr
    ok(store, "watch", "CAT-1", "--from-start", "--until-done", "--timeout", str(WAIT))
    assert store.status("CAT-1") == "delivered"  # the restock woke it
    refused(store, "inventory", "restock", "KB-01", "0", needs="QTY")
    # one delivery of several products; a bad pair queues none of it
    fails(store, "inventory", "restock", "KB-01", "2", "NOPE-1", "4")
    refused(store, "inventory", "restock", "KB-01", "2", "SP-07", needs="QTY")
    delivery = ok(store, "inventory", "restock", "KB-01", "2", "SP-07", "1", "--timeout", str(WAIT))
    assert "restock of KB-01 by 2, SP-07 by 1: applied" in delivery.stderr, delivery.stderr
    refused(store, "inventory", "set", "KB-01", "--timeout", "x", "1", needs="--timeout")
    fails(store, "inventory", "set", "NOPE-1", "4")

    levels = store.json("inventory", "list", "--format", "json")
    assert {r["product_id"]: r["on_hand"] for r in levels} == {
        "CB-10": 5,
        "HD-03": 0,
        "KB-01": 14,
        "MS-02": 60,
        "OUT-01": 0,
        "SP-07": 6,
    }
    assert ndjson(ok(store, "inventory", "list", "--format", "ndjson").stdout) == levels
    as_csv = csv_rows(ok(store, "inventory", "list", "--format", "csv").stdout)
    assert [(r["product_id"], int(r["available"])) for r in as_csv] == [
        (r["product_id"], r["available"]) for r in levels
    ]
    assert "AVAILABLE" in ok(store, "inventory", "list").stdout
    assert store.json("check", "--json")["ok"] is True
    stop_engine(engine)
    store.assert_covered("test_catalogue_and_stock")


# -- submit, show, cancel, list ------------------------------------------------------------


def test_orders(store: Store) -> None:
    store.init()
    # no engine yet: submissions and cancellations queue
    assert ok(store, "submit", "--customer", "ada", "--item", "KB-01=1", "--id", "Q-1").stdout == (
        "Q-1\n"
    )
    (queued,) = store.json("list", "--format", "json")
    assert (queued["id"], queued["status"], queued["queued"]) == ("Q-1", "pending", True)
    later = ok(store, "cancel", "Q-1", "-r", "changed my mind", "--timeout", str(WAIT))
    assert "cancellation of Q-1 queued" in later.stderr, later.stderr
    late = fails(
        store,
        "submit",
        "-c",
        "bob",
        "-i",
        "KB-01=1",
        "--wait",
        "--timeout",
        "1",
        "--json",
        one_line=False,
    )
    assert "no engine is running" in late.stderr, late.stderr
    assert "timed out after 1.0s" in error_lines(late.stderr)[-1], late.stderr
    (record,) = ndjson(late.stdout)
    assert record["status"] == "pending"
    assert record["outcome"] == "accepted"

    engine = store.engine()
    ok(store, "watch", "Q-1", "--from-start", "--until-done", "--timeout", str(WAIT))
    cancelled = store.order("Q-1")
    assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "changed my mind")
    assert [e["status"] for e in cancelled["events"]] == ["pending", "cancelled"]

    args = ("-c", "grace", "-i", "KB-01=2", "-i", "MS-02=1", "--id", "A-1", "--notes", "gift")
    done = ok(store, "submit", *args, "--wait", "--timeout", str(WAIT), "--json")
    assert ndjson(done.stdout) == [
        {"id": "A-1", "outcome": "accepted", "status": "delivered", "reason": None}
    ]
    again = ok(store, "submit", *args)
    assert again.stdout == "A-1\n"
    assert "already submitted with the same content" in again.stderr
    fails(store, "submit", "-c", "other", "-i", "KB-01=1", "--id", "A-1")  # same id, other order
    stdin = order("S-1", "linus", ("MS-02", 3), notes="from stdin")
    piped = ok(store, "submit", "-", "--wait", "--timeout", str(WAIT), input=stdin)
    assert piped.stdout.split() == ["S-1", "delivered"]
    rejected = fails(
        store,
        "submit",
        "-c",
        "ada",
        "-i",
        "NOPE-1=1",
        "--id",
        "R-1",
        "--wait",
        "--json",
        "--timeout",
        str(WAIT),
    )
    assert ndjson(rejected.stdout)[0]["status"] == "rejected"
    assert "order R-1 was rejected" in rejected.stderr, rejected.stderr
    refused(store, "submit", "-c", "ada", "-i", "KB-01=lots", needs="KB-01=lots")
    refused(store, "submit", "-c", "ada", needs="--item")
    refused(store, "submit", "order.json", needs="submit takes '-'")

    ok(store, "submit", "-c", "bob", "-i", "OUT-01=1", "--id", "B-1")
    store.reaches("B-1", "backordered")
    dropped = ok(store, "cancel", "B-1", "--reason", "too slow", "--timeout", str(WAIT))
    assert dropped.stdout.split() == ["B-1", "cancelled"]
    assert store.order("B-1")["reason"] == "too slow"
    fails(store, "cancel", "A-1")  # delivered already
    fails(store, "cancel", "NOPE-0")

    shown = store.order("A-1")
    assert (shown["status"], shown["notes"], shown["total"]) == ("delivered", "gift", 202.5)
    assert [(i["product_id"], i["quantity"], i["price"]) for i in shown["items"]] == [
        ("KB-01", 2, 89.0),
        ("MS-02", 1, 24.5),
    ]
    assert [(e["seq"], e["status"]) for e in shown["events"]] == list(enumerate(FLOW, 1))
    text = ok(store, "show", "A-1").stdout
    assert "order A-1  delivered" in text
    assert "gift" in text
    assert "202.50" in text
    fails(store, "show", "NOPE-0")

    late_id = record["id"]  # the order that timed out waiting: the engine took it since
    ok(store, "watch", late_id, "--from-start", "--until-done", "--timeout", str(WAIT))
    everything = store.json("list", "--format", "json")
    by_id = {o["id"]: o["status"] for o in everything}
    assert by_id == {
        "Q-1": "cancelled",
        late_id: "delivered",
        "A-1": "delivered",
        "S-1": "delivered",
        "R-1": "rejected",
        "B-1": "cancelled",
    }
    assert not any(o["queued"] for o in everything)
    delivered = store.json("list", "-s", "delivered", "--format", "json")
    assert {o["id"] for o in delivered} == {late_id, "A-1", "S-1"}
    mine = ndjson(ok(store, "list", "--customer", "bob", "--format", "ndjson").stdout)
    assert {o["id"] for o in mine} == {late_id, "B-1"}
    two = csv_rows(ok(store, "list", "-n", "2", "--format", "csv").stdout)
    assert len(two) == 2
    assert {r["id"] for r in two} <= set(by_id)
    one = store.json(
        "list", "--status", "cancelled", "-c", "bob", "--limit", "5", "--format", "json"
    )
    assert [o["id"] for o in one] == ["B-1"]
    table = ok(store, "list", "--format", "table").stdout
    assert all(order_id in table for order_id in by_id), table
    empty = ok(store, "list", "-s", "shipped")
    assert "no orders match" in empty.stderr
    refused(store, "list", "--format", "yaml", needs="--format")
    stop_engine(engine)
    store.assert_covered("test_orders")


# -- import --------------------------------------------------------------------------------


def test_import(store: Store) -> None:
    cwd = store.cwd
    store.init()
    orders = write_lines(
        cwd / "orders.ndjson",
        order("I-1", "ada", ("KB-01", 1)),
        order("I-2", "bob", ("MS-02", 2), ("KB-01", 1)),
        order("I-3", "cy", ("OUT-01", 1)),  # no stock: backordered
        order("I-4", "dee", ("NOPE-9", 1)),  # unknown product: rejected by the engine
        order("I-5", "eve", ("KB-01", 1), notes="ring twice"),
        order("I-6", "fay", ("OUT-01", 2)),
    )
    dry = store.json("import", str(orders), "--dry-run", "--json")
    assert (dry["dry_run"], dry["ok"], dry["accepted"], dry["rejected"]) == (True, True, 6, 0)
    assert "statuses" not in dry
    assert store.json("list", "--format", "json") == []  # a dry run changes nothing

    bad = write_lines(
        cwd / "bad.ndjson",
        order("G-1", "ada", ("KB-01", 1)),
        json.dumps({"id": "G-2", "items": [{"product_id": "KB-01", "quantity": 1}]}),
        "not json",
        order("G-4", "ada", ("KB-01", 0)),
    )
    errors = cwd / "refused.ndjson"
    partly = fails(
        store, "import", str(bad), "--errors-file", str(errors), "--json", one_line=False
    )
    summary = json.loads(partly.stdout)
    assert (summary["ok"], summary["accepted"], summary["invalid"]) == (False, 1, 3)
    assert [e["line"] for e in ndjson(errors.read_text())] == [2, 3, 4]
    assert [line.split(":")[1] for line in error_lines(partly.stderr)] == ["2", "3", "4"]

    # no engine: --wait gives up after --timeout, with one line
    pre = write_lines(cwd / "pre.ndjson", order("P-1", "ada", ("KB-01", 1)))
    timed_out = fails(
        store, "import", str(pre), "--wait", "--timeout", "1", "--json", one_line=False
    )
    assert "no engine is running" in timed_out.stderr, timed_out.stderr
    assert "timed out after 1.0s" in error_lines(timed_out.stderr)[-1], timed_out.stderr

    engine = store.engine()
    waited = store.json(
        "import", str(orders), "--batch-size", "2", "--wait", "--timeout", str(WAIT), "--json"
    )
    assert (waited["accepted"], waited["ok"]) == (6, True)
    assert waited["statuses"] == statuses(delivered=3, backordered=2, rejected=1)

    as_csv = cwd / "orders.txt"  # no telling extension: --format says what it is
    as_csv.write_text(
        "order_id,customer_id,product_id,quantity\nC-1,ada,KB-01,1\nC-1,ada,MS-02,1\n"
        "C-2,grace,HD-03,1\n"
    )
    refused(store, "import", str(as_csv), needs="format")
    from_csv = store.json("import", str(as_csv), "-f", "csv", "--wait", "--json")
    assert (from_csv["orders"], from_csv["statuses"]) == (2, statuses(delivered=2))
    as_json = cwd / "orders.data"
    as_json.write_text(
        "[" + ", ".join([order("J-1", "bo", ("MS-02", 1)), order("J-2", "bo", ("OUT-01", 1))]) + "]"
    )
    said = ok(store, "import", str(as_json), "--format", "json", "--wait", "--timeout", str(WAIT))
    assert f"imported {as_json}: 2 accepted, 0 already present, 0 refused" in said.stderr
    assert "settled: backordered 1, delivered 1" in said.stderr, said.stderr
    piped = store.json(
        "import",
        "-",
        "-f",
        "ndjson",
        "--wait",
        "--timeout",
        str(WAIT),
        "--json",
        input=order("T-1", "stdin", ("KB-01", 1)) + "\n",
    )
    assert (piped["source"], piped["statuses"]) == ("<stdin>", statuses(delivered=1))
    repeat = store.json("import", str(orders), "--wait", "--json")
    assert (repeat["accepted"], repeat["duplicates"], repeat["ok"]) == (0, 6, True)
    assert "statuses" not in repeat  # nothing new to wait for
    refused(store, "import", str(cwd / "missing.ndjson"), needs="no such file")

    # G-1 and P-1 from before the engine, then 6 + 2 + 2 + 1
    done = store.settled(13)
    assert done["by_status"] == statuses(delivered=9, backordered=3, rejected=1)
    assert store.json("check", "--json")["ok"] is True
    stop_engine(engine)
    store.assert_covered("test_import")


# -- run -----------------------------------------------------------------------------------


def test_engine(store: Store) -> None:
    store.init()
    for order_id, product in (("R-1", "KB-01"), ("R-2", "MS-02"), ("R-3", "OUT-01")):
        ok(store, "submit", "-c", "ada", "-i", f"{product}=1", "--id", order_id)
    refused(store, "run", "--delays", "pack=soon", needs="--delays")
    refused(store, "run", "--batch-size", "0", needs="--batch-size")
    idle = ok(
        store, "run", "--until-idle", "--delays", ZERO_DELAYS, "--batch-size", "1", "--notify"
    )
    assert "3 commands waiting" in idle.stderr, idle.stderr
    # --notify: a deliverer beside the engine (no endpoint here: it sends nothing)
    assert "notify delivering webhooks in this process" in idle.stderr, idle.stderr
    assert "notify stopped: 0 delivered" in idle.stderr, idle.stderr
    assert re.search(r"3 commands, 12 events, 2 orders finished", idle.stderr), idle.stderr
    assert [store.status(i) for i in ("R-1", "R-2", "R-3")] == [
        "delivered",
        "delivered",
        "backordered",
    ]

    engine = store.engine("--batch-size", "500")
    ok(
        store,
        "submit",
        "-c",
        "ada",
        "-i",
        "KB-01=1",
        "--id",
        "R-4",
        "--wait",
        "--timeout",
        str(WAIT),
    )
    if store.backend == "kafka":
        # the distributed mode scales out: a second engine joins, takes partitions, leaves
        second = ok(store, "run", "--until-idle", "--delays", ZERO_DELAYS)
        assert "now owns partitions" in second.stderr, second.stderr
    else:
        busy = fails(store, "run", "--until-idle")
        assert "another engine (pid" in busy.stderr
        assert "already running" in busy.stderr
    ok(store, "inventory", "restock", "OUT-01", "1", "--timeout", str(WAIT))
    ok(store, "watch", "R-3", "--from-start", "--until-done", "--timeout", str(WAIT))
    assert store.status("R-3") == "delivered"  # woken by the restock
    ok(
        store,
        "submit",
        "-c",
        "ada",
        "-i",
        "KB-01=1",
        "--id",
        "R-5",
        "--wait",
        "--timeout",
        str(WAIT),
    )
    assert store.stats()["engine"]["running"] is True
    log = stop_engine(engine)
    assert "Ctrl-C to stop" in log, log
    assert store.stats()["engine"]["running"] is False
    assert store.json("check", "--json") == {
        "ok": True,
        "orders": 5,
        "events": 26,  # pending, backordered, reserved, packed, shipped, delivered
        "products": 5,
        "problems": [],
        "more_problems": 0,
    }
    store.assert_covered("test_engine")


# -- watch, stats, check -------------------------------------------------------------------


def test_tracking(store: Store) -> None:
    store.init()
    engine = store.engine()
    ok(
        store,
        "submit",
        "-c",
        "ada",
        "-i",
        "KB-01=1",
        "--id",
        "W-1",
        "--wait",
        "--timeout",
        str(WAIT),
    )
    ok(store, "submit", "-c", "bob", "-i", "OUT-01=1", "--id", "W-2")
    fails(
        store,
        "submit",
        "-c",
        "cy",
        "-i",
        "NOPE-1=1",
        "--id",
        "W-3",
        "--wait",
        "--timeout",
        str(WAIT),
    )
    store.reaches("W-2", "backordered")

    mine = ndjson(
        ok(
            store, "watch", "W-1", "--from-start", "--until-done", "--json", "--timeout", str(WAIT)
        ).stdout
    )
    assert [(r["order_id"], r["seq"], r["status"]) for r in mine] == [
        ("W-1", seq, status) for seq, status in enumerate(FLOW, 1)
    ]
    assert all(isinstance(r["cursor"], int) and r["at"].endswith("Z") for r in mine)
    # piped: NDJSON without --json too
    two = ndjson(ok(store, "watch", "W-1", "W-3", "--from-start", "--until-done").stdout)
    assert events_of(two, "W-1") == FLOW
    assert events_of(two, "W-3") == ["pending", "rejected"]
    assert {r["order_id"] for r in two} == {"W-1", "W-3"}
    # no ids: until nothing is left to move (a backorder waits for stock, it does not move)
    delivered = ndjson(
        ok(store, "watch", "-s", "delivered", "--from-start", "--until-done", "--json").stdout
    )
    assert [(r["order_id"], r["status"]) for r in delivered] == [("W-1", "delivered")]
    waiting = ok(store, "watch", "--status", "backordered", "--from-start", "--until-done")
    (backordered,) = ndjson(waiting.stdout)
    assert (backordered["order_id"], backordered["reason"]) == (
        "W-2",
        "out of stock: OUT-01 needs 1, 0 available",
    )
    # from the end (the default): a finished order shows nothing and returns
    assert ok(store, "watch", "W-1", "--until-done", "--timeout", str(WAIT)).stdout == ""
    stuck = fails(store, "watch", "W-2", "--until-done", "--timeout", "1")
    assert "watch timed out after 1.0s" in stuck.stderr

    stats = store.json("stats", "--json", "--window", "3600")
    assert stats["orders"] == 3
    assert stats["by_status"] == statuses(delivered=1, backordered=1, rejected=1)
    assert (stats["finished"], stats["backlog"], stats["engine"]["running"]) == (2, 0, True)
    assert stats["throughput"]["window_seconds"] == 3600.0
    assert stats["latency_seconds"]["p50"] is not None
    table = ok(store, "stats", "--window", "5").stdout
    assert "backlog     0 commands; engine running" in table, table
    assert "(last 5s)" in table, table
    assert "submit→terminal" in table, table
    refused(store, "stats", "--window", "0", needs="--window")

    report = store.json("check", "--json")
    assert report == {
        "ok": True,
        "orders": 3,
        "events": 9,
        "products": 5,
        "problems": [],
        "more_problems": 0,
    }
    said = ok(store, "check").stdout
    assert said == "ok: 3 orders, 9 events, 5 products — every invariant holds\n", said
    stop_engine(engine)
    store.assert_covered("test_tracking")


def test_stats_webhooks(store: Store) -> None:
    """``stats`` sums the webhook endpoints and their deliveries (the outbox's counts on
    either backend): silent about webhooks until an endpoint exists, then one line, and
    ``webhooks`` in ``--json`` beside the keys it always had. Totals only: no id, no URL."""
    store.init()
    keys = [
        "orders", "by_status", "in_flight", "finished", "throughput", "latency_seconds",
        "backlog", "engine", "webhooks",
    ]  # fmt: skip
    none = store.json("stats", "--json")
    assert list(none) == keys
    assert none["webhooks"] == dict.fromkeys(
        ("endpoints", "enabled", "disabled", "backlog", "failed", "failing"), 0
    )
    assert "webhooks" not in ok(store, "stats").stdout

    crm = store.json("webhooks", "add", "https://crm.example/in?key=k1", "--json")["endpoint_id"]
    gone = store.json("webhooks", "add", "http://127.0.0.1:9/in", "--json")["endpoint_id"]
    # what the deliverer would leave: crm owes 3; gone owes 1 and gave 1 up (then a 410)
    settings = {f"REALORDERS_{k.upper()}": v for k, v in option_values(store.options).items()}
    with Client(config=load_config({}, settings)) as client:
        now = time.time()
        owed = [new_delivery(crm, f"W-{n}", 1, n, now) for n in (1, 2, 3)]
        owed += [new_delivery(gone, "W-9", seq, 10 + seq, now) for seq in (1, 2)]
        assert client.backend.deliveries.enqueue(owed, 20) == 5
        assert client.backend.deliveries.record(
            gone, "W-9", 1, status=DeliveryStatus.FAILED, attempts=1, next_at=None,
            last_code=410, last_error=None, last_latency_ms=1.0, response_excerpt=None, at=now,
        )  # fmt: skip
    ok(store, "webhooks", "disable", gone, "--reason", "410 Gone from the receiver")

    stats = store.json("stats", "--json")
    assert list(stats) == keys
    assert stats["webhooks"] == {
        "endpoints": 2, "enabled": 1, "disabled": 1, "backlog": 4, "failed": 1, "failing": 1,
    }  # fmt: skip
    table = ok(store, "stats").stdout
    line = "webhooks    2 endpoints (1 enabled, 1 disabled); 4 deliveries pending, 1 failed"
    assert line in table, table
    for secret in (crm, gone, "crm.example", "key=k1"):
        assert secret not in table, table


# -- dlq -----------------------------------------------------------------------------------


def poison(store: Store, *records: tuple[bytes, bytes]) -> None:
    """Write records that are not commands to the commands topic, as a foreign producer may."""
    from kafka import KafkaProducer  # the distributed mode's own client library

    producer = KafkaProducer(bootstrap_servers=store.kafka_bootstrap)
    for key, value in records:
        producer.send(f"{store.prefix}.commands", key=key, value=value)
    producer.flush()
    producer.close()


def test_dead_letters(store: Store) -> None:
    store.init()
    fixed = store.cwd / "fixed.json"
    fixed.write_text(
        json.dumps(
            {
                "kind": "submit",
                "order_id": "FIX-1",
                "body": json.loads(order("FIX-1", "ada", ("KB-01", 1))),
            }
        )
    )
    if store.backend == "sqlite":
        # bad input is refused at intake: there are no dead letters to list or replay
        for args in (
            ("dlq", "list"),
            ("dlq", "list", "-f", "json", "--all"),
            ("dlq", "list", "--format", "csv"),
            ("dlq", "replay", "0"),
            ("dlq", "replay", "0", "--value-file", str(fixed)),
        ):
            refused(store, *args, needs="--backend kafka")
        store.assert_covered("test_dead_letters")
        return

    engine = store.engine()
    ok(
        store,
        "submit",
        "-c",
        "ada",
        "-i",
        "KB-01=1",
        "--id",
        "D-1",
        "--wait",
        "--timeout",
        str(WAIT),
    )
    ok(store, "submit", "-c", "bob", "-i", "OUT-01=1", "--id", "D-2")
    store.reaches("D-2", "backordered")
    # records on the commands topic that are not commands, as a foreign producer might write
    topic = f"{store.prefix}.commands"
    poison(
        store,
        (b"FIX-1", b'{"kind": "submit", "order_id": "FIX-1", "bo'),
        (b"o9", json.dumps({"kind": "refund", "body": {}}).encode()),
    )
    letters: list[dict[str, Any]] = poll(
        lambda: store.json("dlq", "list", "-f", "json"),
        lambda found: len(found) == 2,
        progress=len,
        what="two dead letters",
    )
    assert sorted(d["reason"].split(":")[0] for d in letters) == [
        "not JSON",
        "unknown command kind 'refund'",
    ]
    assert all(d["source"].startswith(f"{topic}:") and not d["replayed"] for d in letters)
    junk = next(d["offset"] for d in letters if d["reason"].startswith("not JSON"))
    refund = next(d["offset"] for d in letters if d["offset"] != junk)
    assert ndjson(ok(store, "dlq", "list", "--format", "ndjson").stdout) == letters
    as_csv = csv_rows(ok(store, "dlq", "list", "-f", "csv").stdout)
    assert [int(r["offset"]) for r in as_csv] == [d["offset"] for d in letters]
    assert "unknown command kind 'refund'" in ok(store, "dlq", "list").stdout

    still = fails(store, "dlq", "replay", str(junk))
    assert "still not a command" in still.stderr, still.stderr
    fails(store, "dlq", "replay", "999")
    refused(store, "dlq", "replay", str(junk), str(refund), "--value-file", str(fixed), needs="one")
    replayed = ok(store, "dlq", "replay", str(junk), "--value-file", str(fixed))
    assert "order FIX-1 accepted" in replayed.stderr, replayed.stderr
    assert "replayed already" in fails(store, "dlq", "replay", str(junk)).stderr
    ok(store, "watch", "FIX-1", "--from-start", "--until-done", "--timeout", str(WAIT))
    assert store.status("FIX-1") == "delivered"
    left = store.json("dlq", "list", "--format", "json")
    assert [d["offset"] for d in left] == [refund]
    every = store.json("dlq", "list", "--all", "-f", "json")
    assert {d["offset"]: d["replayed"] for d in every} == {junk: True, refund: False}

    # Setting poison aside must not silence the engine. With nothing else to do after it,
    # past its heartbeat window the engine must still count as running, so that clients
    # wait for it (cancel confirms) instead of saying "queued: no engine is running".
    poison(store, (b"o10", json.dumps({"kind": "refund", "body": {}}).encode()))
    poll(
        lambda: store.json("dlq", "list", "--all", "-f", "json"),
        lambda found: len(found) == 3,
        progress=len,
        what="a third dead letter",
    )
    dead_at = time.monotonic()
    time.sleep(max(0.0, dead_at + HEARTBEAT_STALE + 2 - time.monotonic()))
    running = store.stats()["engine"]["running"]
    assert running is True, "the engine stopped heartbeating after it set poison aside"
    cancelled = ok(store, "cancel", "D-2", "--timeout", str(WAIT))
    assert cancelled.stdout.split() == ["D-2", "cancelled"], cancelled.stderr
    stop_engine(engine)
    assert store.json("check", "--json")["ok"] is True
    store.assert_covered("test_dead_letters")


# -- serve ------------------------------------------------------------------------------


@pytest.mark.parametrize("store", BACKENDS, indirect=True)
def test_serve(store: Store, tmp_path: Path) -> None:
    """Every flag of ``serve``: refusals in one line, then two real servers answering HTTP
    (one with tokens, two workers and small limits; one on TLS without tokens)."""
    import ssl

    import httpx
    import trustme

    store.init()
    refused(store, "serve", "--no-auth", "--host", "0.0.0.0", "--port", "0", needs="loopback")
    refused(store, "serve", "--certfile", str(tmp_path / "cert.pem"), needs="--keyfile")
    refused(store, "serve", "--workers", "0", needs="--workers")
    refused(store, "serve", "--max-body", "10", needs="--max-body")
    token = ok(store, "tokens", "create", "web", "--scope", "write").stdout.strip()
    server, url = store.serve(
        "--host", "127.0.0.1", "--port", "0", "--workers", "2", "--max-body", "4096",
        "--max-backlog", "0", "--heartbeat", "0.5", "--client-timeout", "5", "--no-access-log",
        "--stream-buffer", "100", "--notify", "--compat", "none",
    )  # fmt: skip
    order = {"customer_id": "ada", "items": [{"product_id": "KB-01", "quantity": 1}]}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        poll(lambda: http.get("/healthz").status_code, lambda code: code == 200, what="healthz")
        assert http.post("/v1/orders", json={**order, "id": "S-1"}).status_code == 201
        assert http.post("/v1/orders", json={**order, "notes": "x" * 5000}).status_code == 413
        assert http.get("/api/order").status_code == 404  # --compat none, in every worker
        # no engine runs: S-1 waits, so the backlog (1) is over --max-backlog 0
        pushed_back = poll(
            lambda: http.post("/v1/orders", json={**order, "id": "S-2"}),
            lambda response: response.status_code == 503,
            what="503 for the backlog",
        )
        assert pushed_back.headers["retry-after"] == "1"
        with http.stream("GET", "/v1/events") as stream:
            assert next(line for line in stream.iter_lines() if line == ": keepalive")
    assert server.stop()[0] == 0
    assert "rid=" not in server.output()  # --no-access-log
    assert "notify stopped: 0 delivered" in server.output()  # --notify, with no endpoint
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    tls, url = store.serve(
        "--no-auth", "--port", "0", "--access-log", "--compat", "earlier-api",
        "--certfile", str(tmp_path / "cert.pem"), "--keyfile", str(tmp_path / "key.pem"),
    )  # fmt: skip
    assert url.startswith("https://127.0.0.1:")
    trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with httpx.Client(base_url=url, verify=trusted) as http:
        products = poll(lambda: http.get("/v1/products"), lambda r: r.status_code == 200,
                        what="products over TLS")  # fmt: skip
        assert [p["product_id"] for p in products.json()][:2] == ["HD-03", "KB-01"]
        earlier = http.get("/API/Product/HD-03").json()  # the earlier C# system's route
        assert earlier == {"id": "HD-03", "name": "Headphones", "price": 179.0, "quantity": 3}
    assert tls.stop()[0] == 0
    assert re.search(r'"GET /v1/products" 200 .* rid=', tls.output()), tls.output()
    store.assert_covered("test_serve")


# -- tokens ------------------------------------------------------------------------------

TOKEN = re.compile(r"ro_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def test_notify(store: Store) -> None:
    """``notify`` in the background delivers every event to a real receiver that checks each
    signature; SIGTERM stops it with exit 0 and a summary."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from standardwebhooks.webhooks import Webhook

    refused(store, "notify", "--concurrency", "0", needs="--concurrency")
    store.init()
    received: dict[str, tuple[str, int]] = {}
    secret: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                data = Webhook(secret[0]).verify(body, headers)["data"]
            except Exception:
                self.send_response(400)
            else:
                received[headers["webhook-id"]] = (data["order_id"], data["seq"])
                self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        secret.append(store.json("webhooks", "add", url, "--json")["secret"])
        notifier = store.background(
            "notify", "notify", "--time-scale", "0.001", "--concurrency", "4", "--timeout", "5"
        )
        for order_id in ("W-1", "W-2", "W-3"):
            ok(store, "submit", "-c", "ada", "-i", "KB-01=1", "--id", order_id)
        ok(store, "run", "--until-idle", "--delays", ZERO_DELAYS)
        expected = 15  # three orders: pending, reserved, packed, shipped, delivered
        poll(lambda: len(received), lambda n: n >= expected, what="the webhooks")
        assert sorted(received.values()) == [
            (o, s) for o in ("W-1", "W-2", "W-3") for s in range(1, 6)
        ], received
        code, log = notifier.stop()
        assert "Traceback" not in log, log
        assert code == 0, log
        assert "notify stopped: 15 delivered" in log, log
    finally:
        server.shutdown()
        server.server_close()
    store.assert_covered("test_notify")


def test_tokens(store: Store) -> None:
    """Tokens for the HTTP server live in the store (SQLite file, or Redis) and work through
    the Client the server uses: a token printed once authenticates until it is revoked."""
    fails(store, "tokens", "list")  # no store yet: one line, exit 1
    store.init()
    empty = ok(store, "tokens", "list")
    assert empty.stdout == "", empty.stdout
    assert "no tokens" in empty.stderr, empty.stderr
    assert store.json("tokens", "list", "--format", "json") == []

    # create: only the token on stdout, one line on stderr saying it is not shown again
    created = ok(store, "tokens", "create", "ci", "--scope", "write")
    assert TOKEN.fullmatch(created.stdout.rstrip("\n")), created.stdout
    assert created.stdout.count("\n") == 1, created.stdout
    (note,) = error_lines(created.stderr)
    assert "not be shown again" in note, note
    ci_token = created.stdout.strip()
    ops = store.json("tokens", "create", "ops", "--scope", "admin", "--json")
    assert sorted(ops) == ["created_at", "name", "scope", "token", "token_id"]
    assert (ops["name"], ops["scope"]) == ("ops", "admin")
    assert ops["token"].startswith(f"ro_{ops['token_id']}_")
    assert ops["created_at"].endswith("Z")
    reader = ok(store, "tokens", "create", "reader").stdout.strip()  # default scope: read
    ok(store, "tokens", "create", "rw", "--json", "--scope", "read")

    assert "exists already" in fails(store, "tokens", "create", "ci", "--scope", "read").stderr
    refused(store, "tokens", "create", "no spaces", needs="token name")
    refused(store, "tokens", "create", "x" * 65, "--json", needs="token name")
    refused(store, "tokens", "create", "root", "--scope", "root", needs="--scope")

    # list: oldest first, revoked ones marked, never a secret or a digest
    listed = store.json("tokens", "list", "--format", "json")
    assert [(t["name"], t["scope"]) for t in listed] == [
        ("ci", "write"),
        ("ops", "admin"),
        ("reader", "read"),
        ("rw", "read"),
    ]
    assert all(
        sorted(t) == ["created_at", "name", "revoked_at", "scope", "token_id"] for t in listed
    )
    assert all(t["revoked_at"] is None for t in listed)
    table = ok(store, "tokens", "list", "--format", "table").stdout
    for secret in (ci_token, ops["token"], reader):
        assert secret.split("_", 2)[2] not in table
    assert all(t["token_id"] in table for t in listed)

    # what the server will do with a presented token
    settings = {f"REALORDERS_{k.upper()}": v for k, v in option_values(store.options).items()}
    with Client(config=load_config({}, settings)) as client:
        ci = client.authenticate(ci_token)
        assert ci is not None
        assert (ci.name, ci.scope.value) == ("ci", "write")
        admin = client.authenticate(ops["token"])
        assert admin is not None
        assert admin.scope is Scope.ADMIN
        assert admin.scope.allows(Scope.WRITE)
        assert client.authenticate(ci_token[:-1]) is None

        # revoke by name and by id; a revoked token stops working at once
        assert "revoked token ci" in ok(store, "tokens", "revoke", "ci").stderr
        assert client.authenticate(ci_token) is None
        ok(store, "tokens", "revoke", ops["token_id"])
        assert client.authenticate(ops["token"]) is None
        assert client.authenticate(reader) is not None
    assert "no active token" in fails(store, "tokens", "revoke", "ci").stderr
    fails(store, "tokens", "revoke", "nobody")

    after = store.json("tokens", "list", "--format", "json")
    assert [t["name"] for t in after if t["revoked_at"] is not None] == ["ci", "ops"]
    marked = ok(store, "tokens", "list").stdout
    assert marked.count("revoked") == 2, marked
    assert marked.count("active") == 2, marked
    # the name of a revoked token is free again
    again = ok(store, "tokens", "create", "ci", "--scope", "admin").stdout.strip()
    assert again != ci_token
    assert len(store.json("tokens", "list", "--format", "json")) == 5
    store.assert_covered("test_tokens")


# -- webhooks ----------------------------------------------------------------------------

WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")


def test_webhooks(store: Store) -> None:
    """Webhook endpoints live in the store (SQLite file, or Redis): the secret printed once is
    the one the store holds for signing, no listing shows one, and a rotation keeps the old
    secret valid for its grace period."""
    fails(store, "webhooks", "list")  # no store yet: one line, exit 1
    store.init()
    empty = ok(store, "webhooks", "list")
    assert empty.stdout == "", empty.stdout
    assert "no webhook endpoints" in empty.stderr, empty.stderr
    assert store.json("webhooks", "list", "--format", "json") == []

    # add: only the secret on stdout, one line on stderr saying it is not shown again
    added = ok(
        store, "webhooks", "add", "https://crm.example/in?src=realorders",
        "--events", "delivered,shipped", "--customer", "ada", "--description", "the CRM",
    )  # fmt: skip
    assert WEBHOOK_SECRET.fullmatch(added.stdout.rstrip("\n")), added.stdout
    (note,) = error_lines(added.stderr)
    assert "not be shown again" in note, note
    crm_secret = added.stdout.strip()
    ops = store.json("webhooks", "add", "http://127.0.0.1:9000/ops", "--json")
    assert sorted(ops) == [
        "created_at", "customer_id", "description", "disabled_reason", "enabled",
        "endpoint_id", "events", "secret", "updated_at", "url",
    ]  # fmt: skip
    assert (ops["events"], ops["customer_id"], ops["enabled"]) == (None, None, True)
    assert WEBHOOK_SECRET.fullmatch(ops["secret"]), ops
    assert re.fullmatch(r"we_[0-9a-f]{12}", ops["endpoint_id"]), ops
    refused(store, "webhooks", "add", "ftp://crm.example/", needs="http:// or https://")
    refused(store, "webhooks", "add", "https://u:pw@crm.example/", "--json", needs="password")
    refused(store, "webhooks", "add", "https://crm.example/", "--events", "lost", needs="lost")
    refused(store, "webhooks", "add", "https://crm.example/", "--customer", "", needs="customer")
    refused(
        store, "webhooks", "add", "https://crm.example/", "--description", "two\nlines",
        needs="control character",
    )  # fmt: skip

    # list and show: oldest first, never a secret
    listed = store.json("webhooks", "list", "--format", "json")
    assert [(e["url"], e["events"], e["customer_id"]) for e in listed] == [
        ("https://crm.example/in?src=realorders", ["shipped", "delivered"], "ada"),
        ("http://127.0.0.1:9000/ops", None, None),
    ]
    crm_id, ops_id = (e["endpoint_id"] for e in listed)
    assert listed[1] == {k: v for k, v in ops.items() if k != "secret"}
    table = ok(store, "webhooks", "list", "--format", "table").stdout
    shown = ok(store, "webhooks", "show", crm_id).stdout
    for text in (table, shown):
        assert "whsec_" not in text, text
        assert crm_id in text, text
    assert ops_id in table, table
    assert re.search(r"^events\s+shipped,delivered$", shown, re.M), shown
    assert store.json("webhooks", "show", crm_id, "--json") == listed[0]

    # update: only what is given changes; '' clears the customer and the description
    ok(store, "webhooks", "update", crm_id, "--url", "https://crm.example/v2", "--events", "all")
    ok(store, "webhooks", "update", crm_id, "--customer", "", "--description", "")
    ok(store, "webhooks", "update", crm_id, "--customer", "bob", "--description", "moved")
    crm = store.json("webhooks", "show", crm_id, "--json")
    assert (crm["url"], crm["events"], crm["customer_id"], crm["description"]) == (
        "https://crm.example/v2", None, "bob", "moved",
    )  # fmt: skip
    assert crm["created_at"] == listed[0]["created_at"]
    refused(store, "webhooks", "update", crm_id, needs="nothing to update")
    refused(store, "webhooks", "update", crm_id, "--url", "crm.example", needs="http://")

    # disable and enable: kept, marked with the reason
    ok(store, "webhooks", "disable", crm_id, "--reason", "receiver answers 410")
    ok(store, "webhooks", "disable", ops_id)  # the default reason
    marked = ok(store, "webhooks", "list").stdout
    assert "disabled: receiver answers 410" in marked, marked
    assert "disabled: disabled by an operator" in marked, marked
    ok(store, "webhooks", "enable", crm_id)
    states = store.json("webhooks", "list", "--format", "json")
    assert [(e["enabled"], e["disabled_reason"]) for e in states] == [
        (True, None),
        (False, "disabled by an operator"),
    ]

    # rotate-secret: the new secret alone on stdout; the old one stays valid for the grace
    settings = {f"REALORDERS_{k.upper()}": v for k, v in option_values(store.options).items()}
    with Client(config=load_config({}, settings)) as client:
        assert client.webhook_secrets(crm_id) == [crm_secret]
        assert client.webhook_secrets(ops_id) == [ops["secret"]]
        rotated = ok(store, "webhooks", "rotate-secret", crm_id).stdout
        assert WEBHOOK_SECRET.fullmatch(rotated.rstrip("\n")), rotated
        assert client.webhook_secrets(crm_id) == [rotated.strip(), crm_secret]
        at_once = ok(store, "webhooks", "rotate-secret", ops_id, "--grace", "0").stdout.strip()
        assert client.webhook_secrets(ops_id) == [at_once]
        refused(store, "webhooks", "rotate-secret", ops_id, "--grace", "-1", needs="grace")
        assert client.webhook_secrets(ops_id) == [at_once]

    # remove: gone with its secrets; every command names an unknown id in one line
    ok(store, "webhooks", "remove", ops_id)
    for args in (
        ("remove", ops_id),
        ("show", ops_id),
        ("enable", ops_id),
        ("disable", ops_id),
        ("update", ops_id, "--events", "shipped"),
        ("rotate-secret", ops_id),
    ):
        assert "no webhook endpoint" in fails(store, "webhooks", *args).stderr
    assert [e["endpoint_id"] for e in store.json("webhooks", "list", "--format", "json")] == [
        crm_id
    ]
    store.assert_covered("test_webhooks")


def test_webhook_deliveries(store: Store) -> None:
    """Operators see each delivery of the outbox in the store (attempts, status code or error,
    latency, next try, the answer's start) and replay settled ones; an unknown endpoint and a
    bad --since are one line each. The outbox is filled through the store's Client, as
    ``notify`` fills it (test_notify runs the deliverer itself)."""
    from datetime import UTC, datetime

    from realorders.deliveries import DeliveryStatus
    from realorders.delivery import new_delivery

    fails(store, "webhooks", "deliveries")  # no store yet: one line, exit 1
    store.init()
    crm = store.json("webhooks", "add", "https://crm.example/in", "--json")["endpoint_id"]
    ops = store.json("webhooks", "add", "http://127.0.0.1:9/ops", "--json")["endpoint_id"]
    empty = ok(store, "webhooks", "deliveries")
    assert (empty.stdout, error_lines(empty.stderr)) == ("", ["no deliveries"]), empty
    assert store.json("webhooks", "deliveries", crm, "--format", "json") == []

    now = time.time()
    settings = {f"REALORDERS_{k.upper()}": v for k, v in option_values(store.options).items()}
    with Client(config=load_config({}, settings)) as client:
        outbox = client.backend.deliveries
        rows = {
            "delivered": new_delivery(crm, "W-1", 1, 1, now - 7200),
            "failed": new_delivery(crm, "W-1", 2, 2, now - 7100),
            "waiting": new_delivery(crm, "W-1", 3, 3, now - 7000),  # behind W-1/2: due now
            "recent": new_delivery(crm, "W-2", 1, 4, now - 60),
            "retry": new_delivery(crm, "W-3", 1, 5, now - 40),
            "gone": new_delivery(ops, "W-1", 1, 1, now - 7200),
        }
        assert outbox.enqueue(list(rows.values()), 5) == 6
        outcomes: list[tuple[str, DeliveryStatus, dict[str, Any]]] = [
            ("delivered", DeliveryStatus.DELIVERED, {"last_code": 204, "at": now - 7190}),
            ("failed", DeliveryStatus.FAILED, {"last_code": 500, "at": now - 30}),
            ("recent", DeliveryStatus.DELIVERED, {"last_code": 200, "at": now - 50}),
            ("gone", DeliveryStatus.FAILED, {"last_code": 410, "at": now - 10}),
            (
                "retry",
                DeliveryStatus.PENDING,
                {"next_at": now + 600, "last_error": "connection refused", "at": now - 20},
            ),
        ]
        for name, status, outcome in outcomes:
            d = rows[name]
            answered = "last_code" in outcome
            assert outbox.record(
                d.endpoint_id, d.order_id, d.seq, status=status, attempts=2,
                next_at=outcome.get("next_at"), last_code=outcome.get("last_code"),
                last_error=outcome.get("last_error"),
                last_latency_ms=12.4 if answered else None,
                response_excerpt='{"error": "boom",\n "detail": "' + "x" * 150 + '"}'
                if name == "failed" else None,
                at=outcome["at"],
            )  # fmt: skip

    # newest change first, across endpoints; filters combine; --limit / -n
    every = store.json("webhooks", "deliveries", "--format", "json")
    assert [(d["endpoint_id"], d["order_id"], d["seq"]) for d in every] == [
        (ops, "W-1", 1), (crm, "W-3", 1), (crm, "W-1", 2), (crm, "W-2", 1), (crm, "W-1", 3),
        (crm, "W-1", 1),
    ]  # fmt: skip
    assert every[2]["msg_id"] == rows["failed"].msg_id
    assert (every[2]["status"], every[2]["last_code"], every[2]["attempts"]) == ("failed", 500, 2)
    assert every[2]["response_excerpt"].startswith('{"error": "boom",\n')
    failed = store.json("webhooks", "deliveries", crm, "--failed", "--format", "json")
    assert [(d["order_id"], d["seq"]) for d in failed] == [("W-1", 2)]
    on_w1 = store.json("webhooks", "deliveries", "--order", "W-1", "-n", "2", "--format", "json")
    assert [(d["endpoint_id"], d["seq"]) for d in on_w1] == [(ops, 1), (crm, 2)]
    assert len(store.json("webhooks", "deliveries", "--limit", "3", "--format", "json")) == 3
    assert store.json("webhooks", "deliveries", "--order", "W-9", "--format", "json") == []

    # the table: one line each (the answer cut, its newline gone), failed and next try shown
    table = ok(store, "webhooks", "deliveries", crm, "--limit", "5").stdout
    cells = [re.split(r"\s*│\s*", line.strip()) for line in table.splitlines()[2:]]
    assert [row[1:3] for row in cells] == [["W-3", "1"], ["W-1", "2"], ["W-2", "1"], ["W-1", "3"],
                                          ["W-1", "1"]], table  # fmt: skip
    assert cells[1][3:9] == [rows["failed"].msg_id, "failed", "2", "500", "12 ms", "-"], table
    assert cells[1][9].startswith('{"error": "boom", "detail": "xxx'), table  # one line
    assert cells[1][9].endswith("…"), table  # cut
    assert cells[0][4:8] == ["pending", "2", "connection refused", "-"], table
    assert re.fullmatch(r"in (9m \d+s|10m)", cells[0][8]), table
    assert cells[3][4:9] == ["pending", "0", "-", "-", "due now"], table
    assert "ENDPOINT" not in table.splitlines()[0], table  # one endpoint asked: no column
    assert crm in ok(store, "webhooks", "deliveries", "--failed").stdout
    unknown = fails(store, "webhooks", "deliveries", "we_000000000000")
    assert "no webhook endpoint 'we_000000000000'" in unknown.stderr
    refused(store, "webhooks", "deliveries", "--limit", "0", needs="--limit")

    # replay: settled ones only, as filtered; pending ones (a retry, a waiting event) stay
    def replay(*args: str) -> str:
        line: str = ok(store, "webhooks", "replay", *args).stdout.strip()
        return line

    assert replay(crm, "--failed") == f"1 delivery of {crm} requeued"
    assert replay(crm, "--since", "30m") == f"1 delivery of {crm} requeued"  # W-2
    assert replay(crm, "--order", "W-1", "--failed") == f"0 deliveries of {crm} requeued"
    assert replay(crm) == f"1 delivery of {crm} requeued"  # W-1/1, the last settled one
    again = store.json("webhooks", "deliveries", crm, "--format", "json")
    assert {d["status"] for d in again} == {"pending"}, again
    assert {d["attempts"] for d in again if d["order_id"] != "W-3"} == {0}, again
    ok(store, "webhooks", "disable", ops)
    before = datetime.fromtimestamp(now - 7300, UTC).isoformat()
    later = datetime.fromtimestamp(now - 7100, UTC).isoformat().replace("+00:00", "Z")
    assert replay(ops, "--since", later) == f"0 deliveries of {ops} requeued"
    assert replay(ops, "--since", before, "--order", "W-1", "--failed") == (
        f"1 delivery of {ops} requeued; the endpoint is disabled: they go out once it is enabled"
    )
    refused(store, "webhooks", "replay", crm, "--since", "yesterday", needs="--since")
    refused(store, "webhooks", "replay", crm, "--since", "90", needs="--since")
    refused(store, "webhooks", "replay", crm, "--since", "2999-01-01", needs="future")
    assert "no webhook endpoint" in fails(store, "webhooks", "replay", "we_000000000000").stderr
    store.assert_covered("test_webhook_deliveries")


# -- global options and config show --------------------------------------------------------


def option_values(options: Sequence[str]) -> dict[str, str]:
    """{setting name: value} of a store's ``--flag value`` pairs."""
    pairs = zip(options[::2], options[1::2], strict=True)
    return {flag.removeprefix("--").replace("-", "_"): value for flag, value in pairs}


def config_file(store: Store) -> Path:
    """The store's own flags as a TOML config file (its relative paths: from its directory)."""
    path = store.cwd / "realorders.conf.toml"
    path.write_text(
        "".join(
            f"{name} = {value if name == 'kafka_partitions' else json.dumps(value)}\n"
            for name, value in option_values(store.options).items()
        )
    )
    return path


def other_backend_flags(pem: Path) -> dict[str, dict[str, str]]:
    """Per backend, the flags of the other one, each with a value valid there."""
    return {
        "kafka": {"--db": "other.db"},
        "sqlite": {
            "--kafka-bootstrap": "127.0.0.1:9092",
            "--kafka-security-protocol": "PLAINTEXT",
            "--kafka-sasl-mechanism": "PLAIN",
            "--kafka-username": "orders",
            "--kafka-ca-file": str(pem),
            "--kafka-topic-prefix": "shop",
            "--kafka-partitions": "3",
            "--kafka-replication-factor": "1",
            "--kafka-group": "shop-engine",
            "--redis-url": "redis://127.0.0.1:6379/0",
            "--redis-ca-file": str(pem),
            "--redis-prefix": "shop",
        },
    }


def not_ignored(store: Store, flags: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Give each flag of the other backend; each must exit 2 with one line naming it.

    Returned rather than asserted, so that a test checks everything else first.
    """
    problems: list[str] = []
    for flag, value in flags[store.backend].items():
        result = store(flag, value, "stats", "--json")
        lines = error_lines(result.stderr)
        named = "--backend kafka" if flag in KAFKA_ONLY else flag
        if not (
            result.returncode == 2
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and named in lines[0]
            and "Traceback" not in result.stderr
        ):
            problems.append(
                f"{store.backend}: {flag} {value} must exit 2 with one line naming {named}; "
                f"got exit {result.returncode}, stderr {result.stderr!r}"
            )
    return problems


def test_global_options(store: Store, request: pytest.FixtureRequest) -> None:
    cwd = store.cwd
    assert ok(store, "--version").stdout == f"realorders {version('realorders')}\n"
    store.init()
    catalogue = store.json("products", "list", "--format", "json")
    assert [p["product_id"] for p in catalogue] == sorted(r["product_id"] for r in CATALOGUE)

    shown = store.json("config", "show", "--json")
    assert shown["config_file"] is None
    given = option_values(store.options)
    for name, value in given.items():
        expected: object = int(value) if name == "kafka_partitions" else value
        assert shown["settings"][name] == {"value": expected, "source": "flag"}, name
    text = ok(store, "config", "show")
    assert re.search(rf"^backend\s+{store.backend}\s+flag$", text.stdout, re.M), text.stdout
    assert "config file: none" in text.stderr

    # the same store from a config file, and no flag
    toml = config_file(store)
    from_file = store.json("config", "show", "--json", options=("--config", str(toml)))
    assert from_file["config_file"] == str(toml)
    assert from_file["settings"]["backend"]["value"] == store.backend
    assert from_file["settings"]["backend"]["source"].startswith("file"), from_file
    same = store.json("products", "list", "--format", "json", options=("--config", str(toml)))
    assert same == catalogue

    # --debug: the traceback an error otherwise hides
    debugged = store("--debug", "show", "NOPE-0")
    assert debugged.returncode == 1, debugged.stderr
    assert "Traceback (most recent call last)" in debugged.stderr
    assert "NotFoundError" in debugged.stderr
    refused(store, "--backend", "mysql", "stats", needs="--backend")

    pem = cwd / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n")
    if store.backend == "sqlite":
        problems = not_ignored(store, other_backend_flags(pem))
        store.assert_covered("test_global_options")
        assert not problems, "\n".join(problems)
        return

    refused(store, "--kafka-partitions", "0", "stats", needs="--kafka-partitions")
    refused(store, "--redis-url", "http://cache:6379", "stats", needs="--redis-url")
    refused(store, "--kafka-ca-file", str(cwd / "missing.pem"), "stats", needs="--kafka-ca-file")
    refused(store, "--redis-ca-file", str(cwd / "missing.pem"), "stats", needs="--redis-ca-file")
    tls = ("--kafka-ca-file", str(pem), "--redis-ca-file", str(pem))
    settings = store.json(*tls, "config", "show", "--json")["settings"]
    assert settings["kafka_ca_file"] == {"value": str(pem), "source": "flag"}
    assert settings["redis_ca_file"] == {"value": str(pem), "source": "flag"}
    plain = store.json(
        "--kafka-security-protocol", "PLAINTEXT", "products", "list", "--format", "json"
    )
    assert plain == catalogue

    # topics of their own: a replication factor the broker can give, and one it cannot
    fresh = (*store.options, "--kafka-topic-prefix", f"{store.prefix}r1")
    created = ok(store, "--kafka-replication-factor", "1", "init", options=fresh)
    assert f"topic {store.prefix}r1.commands: created" in created.stderr, created.stderr

    # SASL/PLAIN: the password only from the environment, never a flag
    sasl = request.getfixturevalue("sasl_kafka_server")
    prefix = f"{store.prefix}s"
    given["kafka_bootstrap"] = str(sasl.bootstrap)
    secured = (
        "--backend",
        "kafka",
        "--kafka-bootstrap",
        str(sasl.bootstrap),
        "--kafka-security-protocol",
        "SASL_PLAINTEXT",
        "--kafka-sasl-mechanism",
        "PLAIN",
        "--kafka-username",
        str(sasl.sasl_user),
        "--redis-url",
        given["redis_url"],
        "--kafka-topic-prefix",
        prefix,
        "--redis-prefix",
        prefix,
        "--kafka-group",
        f"{prefix}-engine",
        "--kafka-partitions",
        "1",
    )
    wrong = fails(store, "init", options=secured, env={"REALORDERS_KAFKA_PASSWORD": "nope"})
    assert "refused the credentials" in wrong.stderr
    assert "nope" not in wrong.stderr
    password = {"REALORDERS_KAFKA_PASSWORD": str(sasl.sasl_password)}
    catalogue_file = str(write_catalogue(cwd / "catalogue.csv"))
    ok(store, "init", "--inventory", catalogue_file, options=secured, env=password)
    ok(
        store,
        "submit",
        "-c",
        "ada",
        "-i",
        "KB-01=1",
        "--id",
        "SASL-1",
        options=secured,
        env=password,
    )
    ran = ok(store, "run", "--until-idle", "--delays", ZERO_DELAYS, options=secured, env=password)
    assert "1 commands, 5 events, 1 orders finished" in ran.stderr, ran.stderr
    seen = store.json("show", "SASL-1", "--json", options=secured, env=password)
    assert seen["status"] == "delivered"
    shown = store.json("config", "show", "--json", options=secured, env=password)
    assert shown["settings"]["kafka_password"]["value"] != sasl.sasl_password  # masked
    assert shown["settings"]["kafka_sasl_mechanism"] == {"value": "PLAIN", "source": "flag"}

    problems = not_ignored(store, other_backend_flags(pem))
    # a replication factor the broker cannot give: one clear line, not a request's repr
    fresh = (*store.options, "--kafka-topic-prefix", f"{store.prefix}r3")
    too_many = fails(store, "--kafka-replication-factor", "3", "init", options=fresh, code=2)
    assert "replication factor 3" in too_many.stderr, too_many.stderr
    assert "1 broker(s)" in too_many.stderr, too_many.stderr
    store.assert_covered("test_global_options")
    assert not problems, "\n".join(problems)


# -- dashboard and demo: the forms that need no terminal -----------------------------------

NEEDS_A_TERMINAL = "needs a terminal"


def test_terminal_commands(store: Store) -> None:
    """Without a terminal (stdin is /dev/null, output a pipe) the dashboard is refused with one
    line; its flags are checked first. ``demo`` without ``--dashboard`` runs in a pipe."""
    cwd = store.cwd
    store.init()
    refused(store, "dashboard", needs=NEEDS_A_TERMINAL)
    refused(
        store,
        "dashboard",
        "--refresh",
        "0.5",
        "--rows",
        "20",
        "--stuck-after",
        "reserved=30s,backordered=10m",
        needs=NEEDS_A_TERMINAL,
    )
    refused(store, "dashboard", "--stuck-after", "stalled=1m", needs="--stuck-after")
    refused(store, "dashboard", "--rows", "5", needs="--rows")
    refused(store, "dashboard", "--refresh", "0", needs="--refresh")
    # on kafka the demo is refused before it asks for a terminal
    demo_needs = NEEDS_A_TERMINAL if store.backend == "sqlite" else "--backend kafka"
    refused(store, "demo", "--dashboard", "--path", str(cwd / "d0"), needs=demo_needs)
    refused(store, "demo", "--speed", "50", needs="--speed")
    if store.backend == "kafka":
        # the demo plays on a scratch SQLite database: with --backend kafka it must say so
        # and stop, not write a SQLite file while the operator watches for Kafka
        refused(store, "demo", "--speed", "20", "--path", str(cwd / "d1"), needs="kafka")
        refused(store, "demo", "--serve", "--path", str(cwd / "d1"), needs="kafka")
        assert not (cwd / "d1" / "demo.db").exists()
        store.assert_covered("test_terminal_commands")
        return
    # sqlite: the demo's own database, not --db; --serve keeps serving until SIGTERM
    served, url = store.serve_demo("--speed", "20", "--path", str(cwd / "d2"), "--serve")
    import httpx

    with httpx.Client(base_url=url) as http:
        listed = poll(
            lambda: http.get("/v1/orders", params={"limit": 1000}).json()["data"],
            lambda orders: len(orders) == 48,
            what="the demo's orders over HTTP",
        )
    assert {o["id"] for o in listed} >= {"ORD-0001"}
    assert "curl -N" in served.output()
    assert served.stop()[0] == 0
    demo = ok(
        store, "demo", "--speed", "20", "--path", str(cwd / "d1"), options=("--backend", "sqlite")
    )
    db = cwd / "d1" / "demo.db"
    assert f"demo database: {db}" in demo.stderr, demo.stderr
    assert "check: every invariant holds" in demo.stdout, demo.stdout
    finished = re.search(r"^finished: (.*)$", demo.stdout, re.M)
    assert finished is not None, demo.stdout
    counts = {s: int(n) for n, s in (part.split() for part in finished.group(1).split(", "))}
    theirs = ("--backend", "sqlite", "--db", str(db))
    stats = store.json("stats", "--json", options=theirs)
    assert {s: n for s, n in stats["by_status"].items() if n} == counts
    assert stats["orders"] == sum(counts.values())
    assert stats["backlog"] == 0
    assert store.json("check", "--json", options=theirs)["ok"] is True
    store.assert_covered("test_terminal_commands")


def test_bridge(store: Store, request: pytest.FixtureRequest, kafka_prefix: str) -> None:
    """``bridge order-events`` submits the earlier topic's ``OrderCreated`` messages once and
    sets the rest aside; on SQLite the Kafka flags name the broker that holds the topic."""
    from kafka import KafkaProducer

    from realorders.config import Config
    from realorders.engine.backends.distributed.admin import admin_client

    kafka = request.getfixturevalue("kafka_server")
    topic, dead = f"{kafka_prefix}.order-events", f"{kafka_prefix}.order-events.dlq"
    broker = Config(kafka_bootstrap=str(kafka.bootstrap))
    admin = admin_client(broker)
    try:
        admin.create_topics(
            {topic: {"num_partitions": 2, "replication_factor": 1}}, wait_for_metadata=True
        )
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=str(kafka.bootstrap))
    for n in range(1, 4):
        message = {
            "EventType": "OrderCreated",
            "OrderId": f"LEGACY-{n}",
            "CustomerId": "ada",
            "Items": [{"ProductId": "KB-01", "Quantity": 1}],
            "Status": "Created",
            "Timestamp": "2026-12-03T10:00:00Z",
        }
        producer.send(topic, key=f"LEGACY-{n}".encode(), value=json.dumps(message).encode())
    producer.send(topic, key=b"LEGACY-X", value=b'{"EventType": "OrderShipped"}')
    producer.flush()
    producer.close()

    store.init()
    store.engine()
    options = store.options
    if store.backend == "sqlite":  # the broker of the earlier topic, beside the database
        refused(store, "--kafka-bootstrap", str(kafka.bootstrap), "list", needs="--backend kafka")
        options = (*options, "--kafka-bootstrap", str(kafka.bootstrap))
    bridge = store.background(
        "bridge",
        *("bridge", "order-events", "--topic", topic, "--group", f"{kafka_prefix}-legacy"),
        *("--dead-letters", dead, "--publish"),
        options=options,
    )
    wait_for(
        lambda: [store("show", f"LEGACY-{n}", "--json").returncode for n in range(1, 4)],
        lambda codes: codes == [0, 0, 0],
        progress=lambda codes: (codes, bridge.output()),
        what="the bridge to take the three orders in",
    )
    for n in range(1, 4):
        store.reaches(f"LEGACY-{n}", "delivered")
    code, log = bridge.stop()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert "dead letter " in log, log
    assert "EventType 'OrderShipped' is not 'OrderCreated'" in log, log
    # --publish: the three came from the topic, so none is written back to it
    assert "bridge stopped: 3 orders submitted, 0 duplicates, 1 dead letters, 0 published" in log
    store.assert_covered("test_bridge")
