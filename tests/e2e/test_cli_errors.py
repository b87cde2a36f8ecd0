"""Errors: exit codes, one line on stderr, never a traceback."""

from __future__ import annotations

import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from realorders import Client
from realorders.errors import InputError

from .conftest import Background, fails, stop

if TYPE_CHECKING:
    from conftest import Cli  # tests/conftest.py: the `cli` fixture


@pytest.mark.parametrize(
    "args",
    [
        ("products", "list"),
        ("products", "show", "KB-01"),
        ("products", "add", "P", "--name", "n", "--price", "1"),
        ("products", "remove", "P"),
        ("inventory", "list"),
        ("inventory", "set", "KB-01", "1"),
        ("inventory", "restock", "KB-01", "1"),
        ("submit", "--customer", "ann", "--item", "KB-01=1"),
        ("import", "ORDERS"),
        ("run", "--until-idle"),
        ("list",),
        ("show", "X"),
        ("cancel", "X"),
        ("watch", "--timeout", "1"),
        ("stats",),
        ("check",),
    ],
    ids=lambda args: "-".join(a for a in args if not a.startswith("-"))[:30],
)
def test_every_command_but_init_fails_clearly_on_a_missing_database(
    cli: Cli, examples: Path, args: tuple[str, ...]
) -> None:
    args = tuple(str(examples / "orders.ndjson") if a == "ORDERS" else a for a in args)
    result = fails(cli, *args)
    assert result.stderr.strip() == (
        f"error: no database at {cli.db} (run `realorders init` first, or pass --db)"
    )
    assert result.stdout == ""
    assert not cli.db.exists()


def test_submit_from_stdin_on_a_missing_database(cli: Cli) -> None:
    result = fails(cli, "submit", "-", input='{"customer_id": "a", "items": []}')
    assert "no database at" in result.stderr
    assert not cli.db.exists()


def test_a_file_that_is_not_a_database(cli: Cli) -> None:
    cli.db.write_text("these are not the tables you are looking for\n" * 100)
    for args in (("list",), ("init",)):
        result = fails(cli, *args)
        assert f"error: {cli.db}: not a realorders database" in result.stderr


def test_a_database_from_a_newer_version(shop: Cli) -> None:
    with closing(sqlite3.connect(shop.db)) as conn:
        conn.execute("PRAGMA user_version = 99")
        conn.commit()
    result = fails(shop, "list")
    assert "database schema version 99 is newer than this realorders understands" in (result.stderr)


USAGE_OK = [
    (("submit",), "an order needs --customer and at least one --item"),
    (("submit", "-c", "ann"), "an order needs --customer and at least one --item"),
    (("submit", "orders.json"), "submit takes '-'"),
    (("products", "update", "KB-01"), "nothing to update"),
    (("products", "add", "P", "--name", "n", "--price", "-1"), "not negative"),
    (("run", "--delays", "pack=x"), "--delays"),
    (("--backend", "mongo", "list"), "unknown backend 'mongo'"),
    (("import", "missing.csv"), "missing.csv: no such file"),
    (("import", "folder.csv"), "folder.csv: is a directory, not a file"),
]

# Realorders' own checks: one "error: …" line, exit 2.
USAGE_OWN = [
    (("import", "x.ndjson", "--format", "xml"), "unknown format 'xml'"),
    (("import", "-"), "cannot tell the format of standard input"),
    (("submit", "-c", "ann", "-i", "KB-01=0"), "--item 'KB-01=0'"),
    (("submit", "-c", "ann", "-i", "KB01"), "--item 'KB01'"),
    (("dashboard", "--stuck-after", "lost=5m"), "--stuck-after: unknown state 'lost'"),
    (("dashboard", "--stuck-after", "delivered=5m"), "for a non-terminal state"),
    (("dashboard", "--stuck-after", "packed=soon"), "'soon' is not a duration"),
    (("dashboard",), "the dashboard needs a terminal"),
    (("demo", "--dashboard"), "the dashboard needs a terminal"),
]

# Found by option parsing (typer/click): exit 2 with click's usage text.
USAGE_PARSING = [
    (("list", "--format", "xml"), "'xml' is not one of"),
    (("list", "--status", "bogus"), "'bogus' is not one of"),
    (("list", "--limit", "0"), "--limit"),
    (("list", "--nope"), "No such option: --nope"),
    (("bogus",), "No such command 'bogus'"),
    (("show",), "Missing argument"),
    (("products", "add", "P"), "Missing option '--name'"),
    (("inventory", "restock", "KB-01", "0"), "not a whole number of units from 1"),
    (("inventory", "restock", "KB-01", "²"), "not a whole number of units from 1"),
    (("inventory", "restock", "KB-01", "9" * 5000), "more units than any stock level"),
    (("inventory", "restock", "KB-01", "2", "MS-02"), "has no quantity"),
    (("inventory", "set", "KB-01", "-1"), "-1"),
    (("stats", "--window", "0"), "--window"),
    (("demo", "--speed", "50"), "--speed"),
    (("dashboard", "--refresh", "0"), "--refresh"),
]


def _name(value: object) -> str | None:
    return " ".join(value) if isinstance(value, tuple) else None


@pytest.mark.parametrize(("args", "message"), USAGE_OK + USAGE_OWN, ids=_name)
def test_usage_errors_exit_2_with_one_line(shop: Cli, args: tuple[str, ...], message: str) -> None:
    (shop.cwd / "folder.csv").mkdir()
    result = fails(shop, *args, code=2, input="")
    assert message in result.stderr


@pytest.mark.parametrize(("args", "message"), USAGE_PARSING, ids=_name)
def test_option_parsing_errors_exit_2_with_usage(
    shop: Cli, args: tuple[str, ...], message: str
) -> None:
    result = shop(*args)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "unexpected" not in result.stderr
    assert message in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # one clear line, with where to look for help
    assert lines[0].startswith("error: ")
    assert "--help')" in lines[0]


def test_option_parsing_errors_are_one_line(shop: Cli) -> None:
    result = shop("list", "--format", "xml")
    assert result.returncode == 2
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1, result.stderr


def test_no_arguments_prints_usage(cli: Cli) -> None:
    result = cli()
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 2)
    assert "Usage: realorders" in result.stdout + result.stderr
    assert "unexpected" not in result.stderr
    assert not cli.db.exists()


def test_interrupting_watch_exits_130(shop: Cli, background: Background) -> None:
    watcher = background.follower("watch")
    stopped = stop(watcher, signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert stopped.stderr.strip() in ("", "interrupted")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("inventory", "restock", "KB-01", "10000000000000"),
            "error: restock quantity must be from 1 to 1,000,000,000, got 10000000000000 for KB-01",
        ),
        (
            ("inventory", "set", "KB-01", "10000000000000"),
            "error: stock must be from 0 to 1,000,000,000, got 10000000000000",
        ),
        (
            ("products", "add", "ZZ-9", "--name", "n", "--price", "1", "--stock", "10" * 11),
            f"error: stock must be at most 1,000,000,000, got {'10' * 11}",
        ),
    ],
    ids=["restock", "set", "add"],
)
def test_stock_beyond_the_limit_is_refused(shop: Cli, args: tuple[str, ...], message: str) -> None:
    assert InputError.exit_code == 1  # bad input, not a usage error (exit 2)
    result = fails(shop, *args, code=InputError.exit_code)
    assert result.stderr.strip() == message
    assert result.stdout == ""
    with Client(shop.db, create=False) as client:  # nothing was queued, nothing changed
        assert client.engine_info().backlog == 0
        (level,) = [lv for lv in client.levels() if lv.product_id == "KB-01"]
        assert level.on_hand == 40
