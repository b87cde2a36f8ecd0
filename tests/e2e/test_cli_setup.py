"""init, products and inventory through the real console script."""

from __future__ import annotations

import csv
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import (
    Background,
    as_json,
    csv_rows,
    fails,
    ndjson,
    ok,
    order_line,
    status_of,
    stop,
    wait_until,
)

if TYPE_CHECKING:
    from conftest import Cli  # tests/conftest.py: the `cli` fixture


def _levels(cli: Cli) -> dict[str, dict[str, Any]]:
    return {
        row["product_id"]: row for row in as_json(ok(cli, "inventory", "list", "--format", "json"))
    }


def _user_version(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


# -- init -------------------------------------------------------------------------------


def test_init_creates_a_versioned_database_and_is_idempotent(cli: Cli) -> None:
    first = ok(cli, "init")
    assert cli.db.exists()
    version = _user_version(cli.db)
    assert version >= 1
    assert f"created database {cli.db} (schema v{version})" in first.stderr
    ok(cli, "products", "add", "P-1", "--name", "Pen", "--price", "1.5", "--stock", "3")

    again = ok(cli, "init")
    assert f"using existing database {cli.db} (schema v{version})" in again.stderr
    assert _user_version(cli.db) == version
    products = as_json(ok(cli, "products", "list", "--format", "json"))
    assert products == [{"product_id": "P-1", "name": "Pen", "price": 1.5}]


def test_init_loads_the_example_csv_inventory_and_reloads_it_idempotently(
    cli: Cli, examples: Path
) -> None:
    source = examples / "inventory.csv"
    with source.open(newline="") as handle:
        expected = {row["product_id"]: row for row in csv.DictReader(handle)}
    loaded = ok(cli, "init", "--inventory", str(source))
    assert f"{len(expected)} products added, 0 updated" in loaded.stderr

    products = as_json(ok(cli, "products", "list", "--format", "json"))
    assert [p["product_id"] for p in products] == sorted(expected)
    for product in products:
        row = expected[product["product_id"]]
        assert product["name"] == row["name"]
        assert product["price"] == pytest.approx(float(row["price"]))
    levels = _levels(cli)
    for product_id, row in expected.items():
        stock = int(row["stock"])
        assert levels[product_id]["on_hand"] == stock
        assert levels[product_id]["reserved"] == 0
        assert levels[product_id]["available"] == stock
        assert levels[product_id]["backordered"] == 0

    reloaded = ok(cli, "init", "--inventory", str(source))
    assert f"0 products added, {len(expected)} updated" in reloaded.stderr
    assert _levels(cli) == levels


def test_init_loads_a_json_inventory_with_camel_case_and_missing_names(cli: Cli) -> None:
    inventory = cli.cwd / "inventory.json"
    inventory.write_text(
        json.dumps(
            [
                {"product_id": "J-1", "name": "Jar", "price": 1.25, "stock": 3},
                {"productId": "J-2", "price": 10, "stock": 0},
            ]
        )
    )
    result = ok(cli, "init", "--inventory", str(inventory))
    assert "2 products added, 0 updated" in result.stderr
    products = as_json(ok(cli, "products", "list", "--format", "json"))
    assert products == [
        {"product_id": "J-1", "name": "Jar", "price": 1.25},
        {"product_id": "J-2", "name": "J-2", "price": 10.0},
    ]
    levels = _levels(cli)
    assert (levels["J-1"]["on_hand"], levels["J-2"]["on_hand"]) == (3, 0)

    inventory.write_text(json.dumps([{"product_id": "J-1", "name": "Jug", "price": 2, "stock": 9}]))
    result = ok(cli, "init", "--inventory", str(inventory))
    assert "0 products added, 1 updated" in result.stderr
    assert as_json(ok(cli, "products", "show", "J-1", "--format", "json")) == {
        "product_id": "J-1",
        "name": "Jug",
        "price": 2.0,
        "on_hand": 9,
        "reserved": 0,
        "available": 9,
        "backordered": 0,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("product_id,name,price,stock\nA,a,1,2\nB,b,-1,2\n", ":3: price must be a non-negative"),
        ("product_id,name,price,stock\nA,a,1,2\nB,b,1,lots\n", ":3: stock must be a whole number"),
        ("product_id,name,price,stock\nA,a,1,2\nA,b,1,2\n", ":3: product 'A' is listed twice"),
        ("product_id,name\nA,a\n", ":1: missing columns price, stock"),
    ],
    ids=["negative-price", "bad-stock", "duplicate", "missing-columns"],
)
def test_init_refuses_a_bad_inventory_file_at_its_line_and_loads_nothing(
    cli: Cli, content: str, message: str
) -> None:
    bad = cli.cwd / "bad.csv"
    bad.write_text(content)
    result = fails(cli, "init", "--inventory", str(bad), one_line=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert f"error: {bad}{message}" in errors[0]
    assert not cli.db.exists()  # the file is read before any database is created


def test_init_with_a_missing_inventory_file_is_a_usage_error(cli: Cli) -> None:
    result = fails(cli, "init", "--inventory", "nope.csv", code=2)
    assert result.stderr.strip() == "error: nope.csv: no such file"
    assert not cli.db.exists()  # refused before anything is created


# -- products ---------------------------------------------------------------------------


def test_products_crud_round_trip(shop: Cli) -> None:
    cli = shop
    assert (
        "added P-9"
        in ok(
            cli, "products", "add", "P-9", "--name", "Gadget", "--price", "12.5", "--stock", "7"
        ).stderr
    )
    assert as_json(ok(cli, "products", "show", "P-9", "--format", "json")) == {
        "product_id": "P-9",
        "name": "Gadget",
        "price": 12.5,
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
        "backordered": 0,
    }
    table = ok(cli, "products", "show", "P-9").stdout
    assert "Gadget" in table
    assert "12.50" in table
    assert (
        "exists already"
        in fails(cli, "products", "add", "P-9", "--name", "X", "--price", "1").stderr
    )

    assert "updated P-9" in ok(cli, "products", "update", "P-9", "--price", "15").stderr
    shown = as_json(ok(cli, "products", "show", "P-9", "--format", "json"))
    assert (shown["name"], shown["price"], shown["on_hand"]) == ("Gadget", 15.0, 7)
    ok(cli, "products", "update", "P-9", "--name", "Gizmo")
    shown = as_json(ok(cli, "products", "show", "P-9", "--format", "json"))
    assert (shown["name"], shown["price"]) == ("Gizmo", 15.0)
    assert "nothing to update" in fails(cli, "products", "update", "P-9", code=2).stderr
    assert "no product 'NOPE'" in fails(cli, "products", "update", "NOPE", "--price", "1").stderr
    assert "negative" in fails(cli, "products", "update", "P-9", "--price", "-1", code=2).stderr
    assert (
        "negative"
        in fails(cli, "products", "add", "P-8", "--name", "n", "--price", "-2", code=2).stderr
    )

    ids = ["HD-03", "KB-01", "MS-02", "P-9", "SP-07"]
    listed = as_json(ok(cli, "products", "list", "--format", "json"))
    assert [p["product_id"] for p in listed] == ids
    assert {"product_id": "P-9", "name": "Gizmo", "price": 15.0} in listed
    assert [
        r["product_id"] for r in ndjson(ok(cli, "products", "list", "--format", "ndjson").stdout)
    ] == ids
    rows = csv_rows(ok(cli, "products", "list", "--format", "csv").stdout)
    assert list(rows[0]) == ["product_id", "name", "price"]
    assert rows[ids.index("P-9")] == {"product_id": "P-9", "name": "Gizmo", "price": "15.0"}
    table = ok(cli, "products", "list").stdout
    assert all(product_id in table for product_id in ids)
    assert "Gizmo" in table

    assert "removed P-9" in ok(cli, "products", "remove", "P-9").stderr
    assert "no product 'P-9'" in fails(cli, "products", "show", "P-9").stderr
    assert "no product 'P-9'" in fails(cli, "products", "remove", "P-9").stderr
    assert "P-9" not in ok(cli, "products", "list", "--format", "csv").stdout


def test_a_product_removed_and_added_again_gets_its_new_stock(shop: Cli) -> None:
    cli = shop
    ok(cli, "products", "add", "P-1", "--name", "Pen", "--price", "1", "--stock", "4")
    ok(cli, "products", "remove", "P-1")
    ok(cli, "products", "add", "P-1", "--name", "Pen", "--price", "1", "--stock", "10")
    ok(cli, "run", "--until-idle")  # the new level of a re-added product goes through the engine
    assert _levels(cli)["P-1"]["on_hand"] == 10
    assert "every invariant holds" in ok(cli, "check").stdout


def test_products_remove_is_refused_while_open_orders_hold_its_stock(
    shop: Cli, background: Background
) -> None:
    cli = shop
    engine = background.engine("pack=60")
    ok(cli, "submit", "--customer", "ann", "--item", "HD-03=2", "--id", "HOLD")
    wait_until(lambda: status_of(cli.db, "HOLD") == "reserved", what="HOLD reserved")
    level = _levels(cli)["HD-03"]
    assert (level["on_hand"], level["reserved"], level["available"]) == (3, 2, 1)

    refused = fails(cli, "products", "remove", "HD-03")
    assert "product 'HD-03'" in refused.stderr
    assert "open orders" in refused.stderr
    below = fails(cli, "inventory", "set", "HD-03", "1")
    assert "2 units are reserved" in below.stderr
    assert "stock of HD-03 set to 5: applied" in ok(cli, "inventory", "set", "HD-03", "5").stderr
    level = _levels(cli)["HD-03"]
    assert (level["on_hand"], level["reserved"], level["available"]) == (5, 2, 3)
    refused = fails(cli, "init", "--inventory", str(cli.cwd / "catalogue.csv"), one_line=False)
    assert "error: an engine is running on this database" in refused.stderr

    assert ok(cli, "cancel", "HOLD").stdout.split() == ["HOLD", "cancelled"]
    assert _levels(cli)["HD-03"]["reserved"] == 0
    assert "removed HD-03" in ok(cli, "products", "remove", "HD-03").stderr
    assert "HD-03" not in _levels(cli)

    stopped = stop(engine)
    assert stopped.returncode == 0, stopped.stderr
    assert "every invariant holds" in ok(cli, "check").stdout


# -- inventory --------------------------------------------------------------------------


def test_inventory_set_and_restock_are_queued_until_the_engine_runs(shop: Cli) -> None:
    cli = shop
    assert "stock of KB-01 set to 5 queued" in ok(cli, "inventory", "set", "KB-01", "5").stderr
    assert "restock of MS-02 by 10 queued" in ok(cli, "inventory", "restock", "MS-02", "10").stderr
    before = _levels(cli)
    assert (before["KB-01"]["on_hand"], before["MS-02"]["on_hand"]) == (40, 60)
    ok(cli, "run", "--until-idle")
    after = _levels(cli)
    assert (after["KB-01"]["on_hand"], after["MS-02"]["on_hand"]) == (5, 70)
    assert after["MS-02"]["available"] == 70
    assert "no product 'NOPE'" in fails(cli, "inventory", "restock", "NOPE", "1").stderr
    assert "no product 'NOPE'" in fails(cli, "inventory", "set", "NOPE", "1").stderr

    rows = csv_rows(ok(cli, "inventory", "list", "--format", "csv").stdout)
    assert list(rows[0]) == [
        "product_id",
        "name",
        "on_hand",
        "reserved",
        "available",
        "backordered",
    ]
    assert {r["product_id"]: r["on_hand"] for r in rows}["KB-01"] == "5"
    lines = ndjson(ok(cli, "inventory", "list", "--format", "ndjson").stdout)
    assert [r["product_id"] for r in lines] == ["HD-03", "KB-01", "MS-02", "SP-07"]
    table = ok(cli, "inventory", "list").stdout
    assert "AVAILABLE" in table
    assert "Wireless mouse" in table


def test_restock_wakes_backordered_orders_in_arrival_order(shop: Cli) -> None:
    cli = shop
    # SP-07 has 2 in stock: the first order takes both, the next three wait.
    # Ids sort the other way round from arrival, so arrival order is what counts.
    orders = cli.cwd / "orders.ndjson"
    orders.write_text(
        "\n".join(
            [
                order_line("Z-first", "zoe", ("SP-07", 2)),
                order_line("Y-1", "yan", ("SP-07", 1)),
                order_line("M-2", "max", ("SP-07", 1)),
                order_line("A-3", "abe", ("SP-07", 1)),
            ]
        )
        + "\n"
    )
    ok(cli, "import", str(orders))
    ok(cli, "run", "--until-idle")
    waiting = as_json(ok(cli, "list", "--status", "backordered", "--format", "json"))
    assert [o["id"] for o in waiting] == ["A-3", "M-2", "Y-1"]  # newest first
    level = _levels(cli)["SP-07"]
    assert (level["on_hand"], level["available"], level["backordered"]) == (0, 0, 3)

    ok(cli, "inventory", "restock", "SP-07", "2")
    ok(cli, "run", "--until-idle")
    woken = ndjson(
        ok(cli, "watch", "--from-start", "--until-done", "--status", "reserved", "--json").stdout
    )
    assert [e["order_id"] for e in woken] == ["Z-first", "Y-1", "M-2"]
    assert [e["cursor"] for e in woken] == sorted(e["cursor"] for e in woken)
    for order_id in ("Y-1", "M-2"):
        shown = as_json(ok(cli, "show", order_id, "--json"))
        assert [e["status"] for e in shown["events"]] == [
            "pending",
            "backordered",
            "reserved",
            "packed",
            "shipped",
            "delivered",
        ]
        assert shown["events"][1]["reason"].startswith("out of stock: SP-07")
    still = as_json(ok(cli, "show", "A-3", "--json"))
    assert [e["status"] for e in still["events"]] == ["pending", "backordered"]
    assert _levels(cli)["SP-07"]["backordered"] == 1
