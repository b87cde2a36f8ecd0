"""submit, list, show, cancel, watch, stats and check through the real console script."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import (
    Background,
    as_json,
    csv_rows,
    fails,
    finish,
    ndjson,
    ok,
    order_line,
    status_of,
    stop,
    wait_until,
)

if TYPE_CHECKING:
    from conftest import Cli  # tests/conftest.py: the `cli` fixture

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ORDER_KEYS = {"id", "customer_id", "status", "items", "created_at", "updated_at"}
LIFECYCLE = ["pending", "reserved", "packed", "shipped", "delivered"]


def _statuses(cli: Cli, order_id: str) -> list[str]:
    return [e["status"] for e in as_json(ok(cli, "show", order_id, "--json"))["events"]]


# -- submit -----------------------------------------------------------------------------


def test_submit_with_flags_prints_the_id_and_is_idempotent(shop: Cli) -> None:
    cli = shop
    generated = ok(cli, "submit", "--customer", "ann", "--item", "KB-01=2", "-i", "MS-02=1")
    order_id = generated.stdout.strip()
    assert re.fullmatch(r"[0-9A-Z]{26}", order_id), generated.stdout
    shown = as_json(ok(cli, "show", order_id, "--json"))
    assert shown["customer_id"] == "ann"
    assert shown["items"] == [  # queued: not priced until the engine accepts it
        {"product_id": "KB-01", "quantity": 2, "price": None},
        {"product_id": "MS-02", "quantity": 1, "price": None},
    ]
    assert (shown["status"], shown["queued"], shown["events"]) == ("pending", True, [])
    assert ISO.match(shown["created_at"])

    args = ("submit", "-c", "bob", "-i", "HD-03=1", "--id", "S-1", "--notes", "gift wrap")
    assert ok(cli, *args).stdout.strip() == "S-1"
    duplicate = ok(cli, *args, "--json")
    assert json.loads(duplicate.stdout) == {"id": "S-1", "outcome": "duplicate"}
    assert "already submitted with the same content; nothing changed" in duplicate.stderr
    conflict = fails(cli, "submit", "-c", "bob", "-i", "HD-03=2", "--id", "S-1")
    assert "order 'S-1' was already submitted with different content" in conflict.stderr
    assert conflict.stdout == ""
    assert as_json(ok(cli, "show", "S-1", "--json"))["items"][0]["quantity"] == 1

    assert (
        json.loads(ok(cli, "submit", "-c", "cy", "-i", "KB-01=1", "--json").stdout)["outcome"]
        == "accepted"
    )
    ok(cli, "run", "--until-idle")
    assert as_json(ok(cli, "show", "S-1", "--json"))["notes"] == "gift wrap"
    assert _statuses(cli, "S-1") == LIFECYCLE


def test_submit_reads_one_json_order_on_stdin(shop: Cli) -> None:
    cli = shop
    order = {
        "id": "STDIN-1",
        "customerId": "Zoë 🦄",
        "items": [{"productId": "KB-01", "quantity": 3}],
        "notes": "camelCase",
    }
    assert ok(cli, "submit", "-", input=json.dumps(order)).stdout.strip() == "STDIN-1"
    shown = as_json(ok(cli, "show", "STDIN-1", "--json"))
    assert (shown["customer_id"], shown["notes"]) == ("Zoë 🦄", "camelCase")
    assert shown["items"] == [{"product_id": "KB-01", "quantity": 3, "price": None}]
    again = ok(cli, "submit", "-", "--json", input=json.dumps(order))
    assert json.loads(again.stdout)["outcome"] == "duplicate"
    no_id = ok(
        cli,
        "submit",
        "-",
        input='{"customer_id": "x", "items": [{"product_id": "KB-01", "quantity": 1}]}',
    )
    assert len(no_id.stdout.strip()) == 26

    bad = {
        '{"customer_id": "x", "items": [': "<stdin>:1: malformed JSON",
        "[1]": "<stdin>:1: expected one JSON order object, got array",
        "": "<stdin>:1: no order given",
        '{"customer_id": "x", "items": []}': "<stdin>:1: items must be a non-empty list",
        '\n\n{"customer_id": "x", "items": [{"product_id": "KB-01", "quantity": 0}]}': (
            "<stdin>:3: item 1: quantity must be a whole number"
        ),
        order_line("A", "x", ("KB-01", 1)) + order_line("B", "x", ("KB-01", 1)): (
            "<stdin>:1: malformed JSON"
        ),
    }
    for text, message in bad.items():
        result = cli("submit", "-", input=text)
        assert result.returncode == 1, (text, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith(f"error: {message}"), (text, result.stderr)
    mixed = fails(
        cli, "submit", "-", "--customer", "x", "--item", "KB-01=1", code=2, input=json.dumps(order)
    )
    assert "either on stdin or with --customer/--item" in mixed.stderr


def test_submit_wait_exits_0_when_delivered_and_1_when_rejected(
    shop: Cli, background: Background
) -> None:
    cli = shop
    background.engine("pack=0.1,ship=0.1,deliver=0.1")
    delivered = ok(
        cli,
        "submit",
        "-c",
        "ann",
        "-i",
        "KB-01=1",
        "--id",
        "W-1",
        "--wait",
        "--json",
        "--timeout",
        "30",
    )
    assert json.loads(delivered.stdout) == {
        "id": "W-1",
        "outcome": "accepted",
        "status": "delivered",
        "reason": None,
    }
    assert "no engine is running" not in delivered.stderr
    assert _statuses(cli, "W-1") == LIFECYCLE

    human = ok(cli, "submit", "-c", "ann", "-i", "MS-02=1", "--id", "W-2", "--wait")
    assert human.stdout.split() == ["W-2", "delivered"]

    rejected = fails(cli, "submit", "-c", "bob", "-i", "VR-99=1", "--id", "W-3", "--wait")
    assert rejected.stdout.split() == ["W-3", "rejected"]
    assert "error: order W-3 was rejected: unknown product 'VR-99'" in rejected.stderr
    rejected_json = fails(
        cli,
        "submit",
        "-c",
        "bob",
        "-i",
        "VR-99=1",
        "--id",
        "W-3",
        "--wait",
        "--json",
        one_line=False,
    )
    assert json.loads(rejected_json.stdout.splitlines()[0])["status"] == "rejected"


def test_submit_wait_without_an_engine_warns_and_times_out(shop: Cli) -> None:
    cli = shop
    result = fails(
        cli,
        "submit",
        "-c",
        "ann",
        "-i",
        "KB-01=1",
        "--id",
        "T-1",
        "--wait",
        "--timeout",
        "0.3",
        "--json",
        one_line=False,
    )
    assert "no engine is running" in result.stderr
    assert "error: timed out after 0.3s waiting for T-1 (still pending)" in result.stderr
    assert json.loads(result.stdout) == {"id": "T-1", "outcome": "accepted", "status": "pending"}


# -- list -------------------------------------------------------------------------------


def test_list_is_newest_first_in_every_format(seeded: Cli, examples: Path) -> None:
    cli = seeded
    ndjson_ids = [
        json.loads(line)["id"]
        for line in (examples / "orders.ndjson").read_text().splitlines()
        if line.strip()
    ]
    listed = as_json(ok(cli, "list", "--limit", "1000", "--format", "json"))
    assert isinstance(listed, list)
    ids = [o["id"] for o in listed]
    # orders.ndjson, then orders.csv, then orders.json were imported: newest first.
    assert ids[3:8] == ["CSV-0005", "CSV-0004", "CSV-0003", "CSV-0002", "CSV-0001"]
    assert ids[1:3] == ["JSON-0002", "JSON-0001"]
    assert ids[8:] == ndjson_ids[::-1]
    assert len(ids) == len(set(ids)) == len(ndjson_ids) + 8
    for order in listed:
        assert set(order) >= ORDER_KEYS
        assert ISO.match(order["created_at"]), order
        assert ISO.match(order["updated_at"]), order
        assert order["queued"] is False
        assert order["items"]
        for item in order["items"]:
            assert {"product_id", "quantity"} <= set(item)
    created = [datetime.fromisoformat(o["created_at"].replace("Z", "+00:00")) for o in listed]
    assert created == sorted(created, reverse=True)

    lines = ndjson(ok(cli, "list", "--limit", "1000", "--format", "ndjson").stdout)
    assert lines == listed
    rows = csv_rows(ok(cli, "list", "--limit", "1000", "--format", "csv").stdout)
    assert [r["id"] for r in rows] == ids
    assert list(rows[0]) == [
        "id",
        "customer_id",
        "status",
        "items",
        "total",
        "notes",
        "reason",
        "version",
        "created_at",
        "updated_at",
        "terminal_at",
        "queued",
    ]
    by_id = {r["id"]: r for r in rows}
    assert by_id["CSV-0005"]["customer_id"] == "O'Brien, Pat"
    assert json.loads(by_id["CSV-0001"]["items"])[0]["product_id"] == "KB-01"
    assert by_id["ORD-0021"]["status"] == "rejected"
    assert by_id["ORD-0021"]["total"] == ""
    table = ok(cli, "list", "--limit", "1000").stdout
    assert all(order_id in table for order_id in ids)
    assert "O'Brien, Pat" in table


def test_list_filters_and_limit(seeded: Cli) -> None:
    cli = seeded
    everything = as_json(ok(cli, "list", "--limit", "1000", "--format", "json"))
    counts: dict[str, int] = {}
    for order in everything:
        counts[order["status"]] = counts.get(order["status"], 0) + 1
    for status, count in counts.items():
        listed = as_json(ok(cli, "list", "--status", status, "-n", "1000", "--format", "json"))
        assert len(listed) == count
        assert {o["status"] for o in listed} == {status}
    assert as_json(ok(cli, "list", "--status", "cancelled", "--format", "json")) == []

    ada = as_json(ok(cli, "list", "--customer", "ada", "--format", "json"))
    assert ada
    assert {o["customer_id"] for o in ada} == {"ada"}
    assert [o["id"] for o in ada] == [o["id"] for o in everything if o["customer_id"] == "ada"]
    both = as_json(ok(cli, "list", "-c", "ada", "-s", "delivered", "--format", "json"))
    assert [o["id"] for o in both] == [
        o["id"] for o in everything if o["customer_id"] == "ada" and o["status"] == "delivered"
    ]

    three = as_json(ok(cli, "list", "--limit", "3", "--format", "json"))
    assert [o["id"] for o in three] == [o["id"] for o in everything[:3]]
    default = as_json(ok(cli, "list", "--format", "json"))
    assert len(default) == min(50, len(everything))
    assert "no orders match" in ok(cli, "list", "--customer", "nobody").stderr
    assert as_json(ok(cli, "list", "--customer", "nobody", "--format", "json")) == []
    assert ok(cli, "list", "--customer", "nobody", "--format", "csv").stdout.strip() == (
        "id,customer_id,status,items,total,notes,reason,version,created_at,updated_at,"
        "terminal_at,queued"
    )


def test_list_shows_queued_submissions_as_pending_first(shop: Cli) -> None:
    cli = shop
    assert "no orders yet" in ok(cli, "list").stderr
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "OLD")
    ok(cli, "run", "--until-idle")
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "Q-1")
    ok(cli, "submit", "-c", "bob", "-i", "KB-01=1", "--id", "Q-2")
    listed = as_json(ok(cli, "list", "--format", "json"))
    assert [(o["id"], o["status"], o["queued"]) for o in listed] == [
        ("Q-2", "pending", True),
        ("Q-1", "pending", True),
        ("OLD", "delivered", False),
    ]
    assert set(listed[0]) >= ORDER_KEYS
    pending = as_json(ok(cli, "list", "--status", "pending", "--format", "json"))
    assert [o["id"] for o in pending] == ["Q-2", "Q-1"]
    assert "pending (queued)" in ok(cli, "list").stdout
    assert [o["id"] for o in as_json(ok(cli, "list", "-c", "ann", "--format", "json"))] == [
        "Q-1",
        "OLD",
    ]


def test_list_customer_and_limit_keep_newest_first_with_queued_orders(shop: Cli) -> None:
    cli = shop
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "OLD")
    ok(cli, "run", "--until-idle")
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "Q-1")
    ok(cli, "submit", "-c", "bob", "-i", "KB-01=1", "--id", "Q-2")
    ok(cli, "submit", "-c", "bob", "-i", "KB-01=1", "--id", "Q-3")
    listed = as_json(ok(cli, "list", "--customer", "ann", "--limit", "2", "--format", "json"))
    assert [o["id"] for o in listed] == ["Q-1", "OLD"]


# -- show -------------------------------------------------------------------------------


def test_show_prints_items_totals_and_a_contiguous_timeline(seeded: Cli) -> None:
    cli = seeded
    for order in as_json(ok(cli, "list", "--limit", "1000", "--format", "json"))[::15]:
        shown = as_json(ok(cli, "show", order["id"], "--json"))
        events = shown["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert all({"seq", "status", "at"} <= set(e) for e in events)
        assert all(ISO.match(e["at"]) for e in events)
        assert events[0]["status"] == "pending"
        assert events[-1]["status"] == shown["status"] == order["status"]
        assert shown["version"] == len(events)
        assert ISO.match(shown["created_at"])

    shown = as_json(ok(cli, "show", "CSV-0001", "--json"))
    assert [e["status"] for e in shown["events"]] == LIFECYCLE
    assert shown["terminal_at"] == shown["events"][-1]["at"]
    lines = {(i["product_id"], i["quantity"]) for i in shown["items"]}
    assert lines == {("KB-01", 1), ("MS-02", 1)}
    priced = sum(i["price"] * i["quantity"] for i in shown["items"])
    assert shown["total"] == pytest.approx(priced)

    table = ok(cli, "show", "CSV-0001").stdout
    assert "order CSV-0001" in table
    assert "customer  ada" in table
    assert "KB-01" in table
    assert "MS-02" in table
    assert "total" in table
    assert f"{priced:,.2f}" in table
    assert "timeline" in table
    for status in LIFECYCLE:
        assert status in table

    rejected = ok(cli, "show", "ORD-0021").stdout
    assert "reason    unknown product 'VR-99'" in rejected
    assert "no order 'NOPE'" in fails(cli, "show", "NOPE").stderr


# -- cancel -----------------------------------------------------------------------------


def test_cancel_a_queued_pending_order(shop: Cli) -> None:
    cli = shop
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "P-1")
    queued = ok(cli, "cancel", "P-1", "--reason", "changed my mind")
    assert "cancellation of P-1 queued" in queued.stderr
    # A cancel already in the log when the engine reaches the order wins at once.
    ok(cli, "run", "--until-idle")
    shown = as_json(ok(cli, "show", "P-1", "--json"))
    assert shown["status"] == "cancelled"
    assert shown["reason"] == "changed my mind"
    last = shown["events"][-1]
    assert (last["status"], last["reason"]) == ("cancelled", "changed my mind")
    assert [e["status"] for e in shown["events"]] == ["pending", "cancelled"]
    assert [e["seq"] for e in shown["events"]] == list(range(1, len(shown["events"]) + 1))
    level = {r["product_id"]: r for r in as_json(ok(cli, "inventory", "list", "--format", "json"))}[
        "KB-01"
    ]
    assert (level["on_hand"], level["reserved"]) == (40, 0)
    again = fails(cli, "cancel", "P-1")
    assert "order 'P-1' is cancelled" in again.stderr


def test_cancel_accepted_for_a_pending_order_takes_effect(shop: Cli) -> None:
    cli = shop
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "P-1")
    ok(cli, "cancel", "P-1")
    ok(cli, "run", "--until-idle")
    assert as_json(ok(cli, "show", "P-1", "--json"))["status"] == "cancelled"


def test_cancel_reserved_and_backordered_orders_and_refuse_shipped_ones(
    shop: Cli, background: Background
) -> None:
    cli = shop
    engine = background.engine("pack=60")
    # SP-07 has 2 in stock: R-1 reserves both, B-1 waits.
    ok(cli, "submit", "-c", "ann", "-i", "SP-07=2", "--id", "R-1")
    ok(cli, "submit", "-c", "bob", "-i", "SP-07=1", "--id", "B-1")
    wait_until(lambda: status_of(cli.db, "B-1") == "backordered", what="B-1 backordered")
    assert status_of(cli.db, "R-1") == "reserved"

    assert ok(cli, "cancel", "B-1", "-r", "gone").stdout.split() == ["B-1", "cancelled"]
    shown = as_json(ok(cli, "show", "B-1", "--json"))
    assert [e["status"] for e in shown["events"]] == ["pending", "backordered", "cancelled"]
    assert (shown["reason"], shown["events"][-1]["reason"]) == ("gone", "gone")
    result = ok(cli, "cancel", "R-1", "--reason", "customer called")
    assert result.stdout.split() == ["R-1", "cancelled"]
    shown = as_json(ok(cli, "show", "R-1", "--json"))
    assert [e["status"] for e in shown["events"]] == ["pending", "reserved", "cancelled"]
    assert shown["events"][-1]["reason"] == "customer called"

    ok(cli, "submit", "-c", "cy", "-i", "HD-03=9", "--id", "B-2")
    wait_until(lambda: status_of(cli.db, "B-2") == "backordered", what="B-2 backordered")
    assert ok(cli, "cancel", "B-2").stdout.split() == ["B-2", "cancelled"]
    shown = as_json(ok(cli, "show", "B-2", "--json"))
    assert [e["status"] for e in shown["events"]] == ["pending", "backordered", "cancelled"]
    assert shown["reason"] == "cancelled by request"
    stopped = stop(engine)
    assert stopped.returncode == 0, stopped.stderr

    engine = background.engine("pack=0,ship=0,deliver=60")
    ok(cli, "submit", "-c", "dan", "-i", "KB-01=1", "--id", "SHIP")
    wait_until(lambda: status_of(cli.db, "SHIP") == "shipped", what="SHIP shipped")
    refused = fails(cli, "cancel", "SHIP")
    assert "order 'SHIP' is shipped; only orders not yet shipped can be cancelled" in (
        refused.stderr
    )
    levels = {r["product_id"]: r for r in as_json(ok(cli, "inventory", "list", "--format", "json"))}
    assert (levels["SP-07"]["reserved"], levels["SP-07"]["on_hand"]) == (0, 2)
    assert (levels["HD-03"]["backordered"], levels["KB-01"]["on_hand"]) == (0, 39)
    assert stop(engine).returncode == 0
    assert "every invariant holds" in ok(cli, "check").stdout


def test_stock_released_by_a_cancel_wakes_backordered_orders(
    shop: Cli, background: Background
) -> None:
    cli = shop
    background.engine("pack=60")
    ok(cli, "submit", "-c", "ann", "-i", "SP-07=2", "--id", "R-1")
    ok(cli, "submit", "-c", "bob", "-i", "SP-07=1", "--id", "B-1")
    wait_until(lambda: status_of(cli.db, "B-1") == "backordered", what="B-1 backordered")
    assert ok(cli, "cancel", "R-1").stdout.split() == ["R-1", "cancelled"]
    wait_until(lambda: status_of(cli.db, "B-1") == "reserved", what="B-1 woken")
    assert _statuses(cli, "B-1") == ["pending", "backordered", "reserved"]
    level = {r["product_id"]: r for r in as_json(ok(cli, "inventory", "list", "--format", "json"))}[
        "SP-07"
    ]
    assert (level["on_hand"], level["reserved"], level["backordered"]) == (2, 1, 0)


def test_cancel_refuses_delivered_rejected_and_unknown_orders(seeded: Cli) -> None:
    cli = seeded
    delivered = fails(cli, "cancel", "CSV-0001", "--reason", "too late")
    assert "order 'CSV-0001' is delivered; only orders not yet shipped can be cancelled" in (
        delivered.stderr
    )
    assert "order 'ORD-0021' is rejected" in fails(cli, "cancel", "ORD-0021").stderr
    assert "no order 'NOPE'" in fails(cli, "cancel", "NOPE").stderr
    assert _statuses(cli, "CSV-0001") == LIFECYCLE


# -- watch ------------------------------------------------------------------------------


def test_watch_named_orders_until_done_as_ndjson_when_piped(
    shop: Cli, background: Background
) -> None:
    cli = shop
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "A")
    ok(cli, "submit", "-c", "bob", "-i", "MS-02=1", "--id", "B")
    ok(cli, "submit", "-c", "cy", "-i", "NOPE=1", "--id", "C")
    watcher = background.follower("watch", "A", "C", "--from-start", "--until-done")
    ok(cli, "run", "--until-idle")
    done = finish(watcher)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    stdout = done.stdout
    events = ndjson(stdout)  # piped, no --json: NDJSON anyway
    assert {e["order_id"] for e in events} == {"A", "C"}
    assert [e["status"] for e in events if e["order_id"] == "A"] == LIFECYCLE
    assert [e["seq"] for e in events if e["order_id"] == "A"] == [1, 2, 3, 4, 5]
    assert [(e["status"], e.get("reason")) for e in events if e["order_id"] == "C"] == [
        ("pending", None),
        ("rejected", "unknown product 'NOPE'"),
    ]
    assert all({"order_id", "seq", "status", "at", "cursor"} <= set(e) for e in events)
    assert all(ISO.match(e["at"]) for e in events)
    cursors = [e["cursor"] for e in events]
    assert cursors == sorted(cursors)


def test_watch_from_start_until_done_replays_finished_orders(seeded: Cli) -> None:
    cli = seeded
    events = ndjson(ok(cli, "watch", "CSV-0001", "--from-start", "--until-done").stdout)
    assert [e["status"] for e in events] == LIFECYCLE


def test_watch_replays_history_filtered_by_status(seeded: Cli) -> None:
    cli = seeded
    everything = as_json(ok(cli, "list", "--limit", "1000", "--format", "json"))
    delivered = {o["id"] for o in everything if o["status"] == "delivered"}
    events = ndjson(
        ok(cli, "watch", "--from-start", "--until-done", "--status", "delivered", "--json").stdout
    )
    assert {e["status"] for e in events} == {"delivered"}
    assert {e["order_id"] for e in events} == delivered
    assert len(events) == len(delivered)
    pending = ndjson(ok(cli, "watch", "--from-start", "--until-done", "-s", "pending").stdout)
    assert len(pending) == len(everything)
    # Without --from-start only new events are shown: nothing moves, so nothing is printed.
    assert ok(cli, "watch", "--until-done").stdout == ""


def test_watch_follows_a_running_engine_live(shop: Cli, background: Background) -> None:
    cli = shop
    background.engine("pack=0.2,ship=0.2,deliver=0.2")
    watcher = background.follower("watch", "LIVE", "--json", "--until-done", "--timeout", "30")
    ok(cli, "submit", "-c", "ann", "-i", "KB-01=1", "--id", "LIVE")
    done = finish(watcher)
    assert done.returncode == 0, done.stderr
    events = ndjson(done.stdout)
    assert [(e["order_id"], e["seq"], e["status"]) for e in events] == [
        ("LIVE", n, status) for n, status in enumerate(LIFECYCLE, 1)
    ]
    ats = [e["at"] for e in events]
    assert ats == sorted(ats)
    assert ats[0] < ats[-1]  # the delays are visible in the stream


def test_watch_timeout_exits_1(shop: Cli) -> None:
    result = fails(shop, "watch", "--timeout", "0.3")
    assert "error: watch timed out after 0.3s" in result.stderr


# -- stats and check --------------------------------------------------------------------


def test_stats_counts_latency_and_backlog(seeded: Cli) -> None:
    cli = seeded
    everything = as_json(ok(cli, "list", "--limit", "1000", "--format", "json"))
    data = as_json(ok(cli, "stats", "--json"))
    assert data["orders"] == len(everything)
    for status in (
        "pending",
        "reserved",
        "backordered",
        "packed",
        "shipped",
        "delivered",
        "rejected",
        "cancelled",
    ):
        assert data["by_status"][status] == sum(1 for o in everything if o["status"] == status)
    assert sum(data["by_status"].values()) == data["orders"]
    latency = data["latency_seconds"]
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["p99"]
    # Rates only over a window the test controls: back to before the fixture's first order
    # (its template may have been built minutes ago, for an earlier test), plus an hour of
    # slack for the command to start. The default 60 s window assumes a fast machine.
    first = min(datetime.fromisoformat(o["created_at"]).timestamp() for o in everything)
    window = str(math.ceil(time.time() - first) + 3600)
    throughput = as_json(ok(cli, "stats", "--json", "--window", window))["throughput"]
    assert throughput["window_seconds"] == pytest.approx(float(window))
    assert throughput["orders_per_second"] >= 0
    assert throughput["events_per_second"] > 0
    assert data["backlog"] == 0
    assert data["engine"]["running"] is False

    table = ok(cli, "stats").stdout
    assert re.search(rf"delivered\s+│?\s*{data['by_status']['delivered']}\b", table), table
    assert "throughput" in table
    assert "p50" in table
    assert "p95" in table
    assert "p99" in table
    assert "backlog     0 commands; engine not running" in table

    assert "(last 5s)" in ok(cli, "stats", "--window", "5").stdout
    assert as_json(ok(cli, "stats", "--json", "--window", "5"))["throughput"][
        "window_seconds"
    ] == pytest.approx(5)

    ok(cli, "submit", "-c", "new", "-i", "KB-01=1")
    ok(cli, "cancel", "CSV-0003")
    assert as_json(ok(cli, "stats", "--json"))["backlog"] == 2


def test_stats_on_an_empty_database(shop: Cli) -> None:
    data = as_json(ok(shop, "stats", "--json"))
    assert data["orders"] == 0
    assert data["latency_seconds"]["p50"] is None
    assert "backlog     0 commands" in ok(shop, "stats").stdout


def test_check_passes_then_reports_a_broken_invariant(seeded: Cli) -> None:
    cli = seeded
    result = ok(cli, "check")
    assert re.search(
        r"ok: \d+ orders, [\d,]+ events, \d+ products — every invariant holds", result.stdout
    )
    report = as_json(ok(cli, "check", "--json"))
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["orders"] == as_json(ok(cli, "stats", "--json"))["orders"]

    with closing(sqlite3.connect(cli.db)) as conn:
        conn.execute("UPDATE stock SET on_hand = on_hand + 7 WHERE product_id = 'KB-01'")
        conn.commit()
    broken = fails(cli, "check", one_line=False)
    assert "stock 'KB-01': on_hand" in broken.stderr
    assert broken.stderr.splitlines()[-1] == "error: check failed: 1 problems"
    assert "every invariant holds" not in broken.stdout
    as_report = cli("check", "--json")
    assert as_report.returncode == 1
    assert json.loads(as_report.stdout)["ok"] is False
