"""run (foreground, --until-idle, signals, one engine per database), demo, global options."""

from __future__ import annotations

import json
import re
import signal
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import (
    Background,
    as_json,
    db_progress,
    engine_running,
    fails,
    finish,
    ok,
    order_line,
    status_of,
    stop,
    wait_until,
)

if TYPE_CHECKING:
    from conftest import Cli  # tests/conftest.py: the `cli` fixture


def test_run_until_idle_processes_every_queued_command_and_returns(shop: Cli) -> None:
    cli = shop
    source = cli.cwd / "orders.ndjson"
    source.write_text(
        "\n".join(order_line(f"O-{n}", f"c{n % 3}", ("KB-01", 1), ("MS-02", 2)) for n in range(30))
        + "\n"
    )
    ok(cli, "import", str(source))
    ok(cli, "cancel", "O-0")
    before = as_json(ok(cli, "stats", "--json"))
    assert (before["backlog"], before["orders"]) == (31, 0)

    result = ok(cli, "run", "--until-idle", "--batch-size", "7")
    assert f"engine starting on {cli.db}: 31 commands waiting" in result.stderr
    assert "Ctrl-C to stop" not in result.stderr
    assert "engine stopped at position 31: 31 commands" in result.stderr
    after = as_json(ok(cli, "stats", "--json"))
    assert after["backlog"] == 0
    # the cancel was in the log before the engine reached O-0: it wins
    assert (after["by_status"]["delivered"], after["by_status"]["cancelled"]) == (29, 1)
    assert after["engine"] == {"running": False, "position": 31}
    level = {r["product_id"]: r for r in as_json(ok(cli, "inventory", "list", "--format", "json"))}[
        "KB-01"
    ]
    assert (level["on_hand"], level["reserved"]) == (11, 0)

    again = ok(cli, "run", "--until-idle")
    assert "0 commands waiting" in again.stderr
    assert "engine stopped at position 31: 0 commands" in again.stderr


def test_run_until_idle_waits_for_fulfilment_delays(shop: Cli) -> None:
    cli = shop
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "D-1")
    ok(cli, "run", "--until-idle", "--delays", "pack=0.2,ship=0.2,deliver=0.2")
    shown = as_json(ok(cli, "show", "D-1", "--json"))
    assert shown["status"] == "delivered"
    # the pending->reserved step is immediate, each later stage waits its delay
    stamps = [e["at"] for e in shown["events"]]
    assert stamps == sorted(stamps)
    assert stamps[2] > stamps[1]


def test_sigterm_stops_the_engine_cleanly_and_a_restart_resumes_in_flight_orders(
    shop: Cli, background: Background
) -> None:
    cli = shop
    engine = background.engine("pack=60")
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "F-1")
    ok(cli, "submit", "-c", "bob", "-i", "MS-02=1", "--id", "F-2")
    wait_until(lambda: status_of(cli.db, "F-2") == "reserved", what="F-2 reserved")
    assert as_json(ok(cli, "stats", "--json"))["engine"]["running"] is True

    stopped = stop(engine, signal.SIGTERM)
    assert stopped.returncode == 0, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert "engine stopped at position 2" in stopped.stderr
    assert not engine_running(cli.db)
    assert as_json(ok(cli, "stats", "--json"))["engine"]["running"] is False
    assert status_of(cli.db, "F-1") == "reserved"

    ok(cli, "run", "--until-idle")  # no delays now: the re-armed timers fire at once
    for order_id in ("F-1", "F-2"):
        shown = as_json(ok(cli, "show", order_id, "--json"))
        assert [e["status"] for e in shown["events"]] == [
            "pending",
            "reserved",
            "packed",
            "shipped",
            "delivered",
        ]
    assert "every invariant holds" in ok(cli, "check").stdout


def test_sigint_stops_the_engine_cleanly_too(shop: Cli, background: Background) -> None:
    engine = background.engine()
    stopped = stop(engine, signal.SIGINT)
    assert stopped.returncode in (0, 130), stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert not engine_running(shop.db)


def test_a_second_engine_on_the_same_database_is_refused(shop: Cli, background: Background) -> None:
    cli = shop
    engine = background.engine()
    for args in (("run", "--until-idle"), ("run",)):
        result = cli(*args, timeout=30)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert errors == [
            f"error: another engine (pid {engine.pid}) is already running on {cli.db}"
        ]
    assert engine.poll() is None  # the first engine is unharmed
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "X", "--wait", "--timeout", "20")
    assert stop(engine).returncode == 0
    assert "engine stopped" in ok(cli, "run", "--until-idle").stderr


def test_a_refused_second_engine_prints_only_its_error(shop: Cli, background: Background) -> None:
    background.engine()
    result = fails(shop, "run", "--until-idle")
    assert "another engine" in result.stderr
    assert "engine starting" not in result.stderr


@pytest.mark.parametrize(
    ("delays", "message"),
    [
        ("pack=x", "'x' is not a number of seconds"),
        ("wrap=1", "expected pack=S, ship=S or deliver=S"),
        ("pack=-1", "seconds must be between 0 and 86400"),
    ],
)
def test_run_refuses_bad_delays_as_a_usage_error(shop: Cli, delays: str, message: str) -> None:
    result = fails(shop, "run", "--until-idle", "--delays", delays, code=2)
    assert message in result.stderr


def test_concurrent_imports_and_a_running_engine_lose_nothing(
    shop: Cli, background: Background
) -> None:
    cli = shop
    many = 1500
    first = cli.cwd / "a.ndjson"
    first.write_text(
        "\n".join(order_line(f"A-{n}", f"a{n % 20}", ("MS-02", 1)) for n in range(many)) + "\n"
    )
    second = cli.cwd / "b.csv"
    second.write_text(
        "order_id,customer_id,product_id,quantity\n"
        + "".join(f"B-{n},b{n % 30},KB-01,1\nB-{n},b{n % 30},HD-03,2\n" for n in range(many))
    )
    engine = background.engine()
    imports = [
        background.start("import", str(first), "--json", "--batch-size", "50"),
        background.start("import", str(second), "--json", "--batch-size", "50"),
    ]

    def work() -> tuple[int, int, int]:
        return db_progress(cli.db)

    # each for as long as orders still go in or through (a minute at most without)
    results = [finish(proc, timeout=60, progress=work) for proc in imports]
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "locked" not in result.stderr
        assert "Traceback" not in result.stderr
        summary = json.loads(result.stdout)
        assert (summary["accepted"], summary["rejected"], summary["ok"]) == (many, 0, True)

    def settled() -> dict[str, Any] | None:
        data = as_json(ok(cli, "stats", "--json"))
        return data if data["backlog"] == 0 and data["orders"] == 2 * many else None

    # for as long as the engine still gets through commands (30 s at most without)
    data = wait_until(settled, timeout=30, what="the engine to catch up", progress=work)
    assert data["by_status"]["pending"] == data["by_status"]["reserved"] == 0
    assert data["by_status"]["delivered"] + data["by_status"]["backordered"] == 2 * many
    stopped = stop(engine)
    assert stopped.returncode == 0, stopped.stderr
    assert "locked" not in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert re.search(
        r"ok: 3,000 orders, [\d,]+ events, 4 products — every invariant holds",
        ok(cli, "check").stdout,
    )


def test_demo_runs_the_examples_and_every_invariant_holds(cli: Cli, tmp_path: Path) -> None:
    where = tmp_path / "demo"
    result = ok(cli, "demo", "--speed", "20", "--path", str(where), timeout=120)
    assert "every invariant holds" in result.stdout
    assert "finished:" in result.stdout
    assert "delivered" in result.stdout
    assert (where / "demo.db").exists()
    assert not cli.db.exists()  # the demo never touches the user's database
    assert "every invariant holds" in ok(cli, "--db", str(where / "demo.db"), "check").stdout


# -- global options ---------------------------------------------------------------------


def test_db_option_wins_over_the_environment(cli: Cli) -> None:
    other = cli.cwd / "other.db"
    ok(cli, "--db", str(other), "init")
    assert other.exists()
    assert not cli.db.exists()
    ok(cli, "--db", str(other), "products", "add", "P", "--name", "Pen", "--price", "1")
    ok(cli, "init")
    assert as_json(ok(cli, "products", "list", "--format", "json")) == []
    assert [
        p["product_id"]
        for p in as_json(ok(cli, "--db", str(other), "products", "list", "--format", "json"))
    ] == ["P"]
    relative = ok(cli, "--db", "rel.db", "init")
    assert (cli.cwd / "rel.db").exists(), relative.stderr


def test_backend_option_and_environment(cli: Cli) -> None:
    ok(cli, "--backend", "sqlite", "init")
    ok(cli, "list", env={"REALORDERS_BACKEND": "sqlite"})
    unknown = fails(cli, "--backend", "mongo", "list", code=2)
    assert "unknown backend 'mongo'" in unknown.stderr
    from_env = fails(cli, "list", code=2, env={"REALORDERS_BACKEND": "redis"})
    assert "unknown backend 'redis'" in from_env.stderr


def test_version_and_help(cli: Cli) -> None:
    assert ok(cli, "--version").stdout.strip() == f"realorders {version('realorders')}"
    text = ok(cli, "--help").stdout
    for command in (
        "init",
        "products",
        "inventory",
        "submit",
        "import",
        "run",
        "list",
        "show",
        "cancel",
        "watch",
        "stats",
        "check",
        "demo",
    ):
        assert re.search(rf"^\s*│?\s*{command}\b", text, re.MULTILINE), command
    assert "Exit codes" in text
