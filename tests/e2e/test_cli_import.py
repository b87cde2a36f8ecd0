"""realorders import: formats, idempotency, bad rows with their line, options."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from waiting import cpu_ticks

from .conftest import (
    Background,
    as_json,
    fails,
    ndjson,
    ok,
    order_line,
    wait_until,
)

if TYPE_CHECKING:
    from conftest import Cli  # tests/conftest.py: the `cli` fixture

SUMMARY_KEYS = {
    "source",
    "dry_run",
    "ok",
    "orders",
    "accepted",
    "duplicates",
    "conflicts",
    "invalid",
    "rejected",
    "seconds",
}


def _ids(cli: Cli, *args: str) -> list[str]:
    return [o["id"] for o in as_json(ok(cli, "list", "--limit", "1000", "--format", "json", *args))]


def _refused(stderr: str, source: str) -> dict[int, str]:
    """{line: reason} of the FILE:LINE: reason lines on stderr."""
    found = {}
    prefix = f"{source}:"
    for line in stderr.splitlines():
        if line.startswith(prefix):
            number, _, reason = line[len(prefix) :].partition(": ")
            assert number.isdigit(), line
            assert int(number) not in found, f"line {number} reported twice"
            found[int(number)] = reason
    return found


def _example_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


# -- the example files ------------------------------------------------------------------


def test_import_example_ndjson_then_reimport_adds_nothing(shop: Cli, examples: Path) -> None:
    cli = shop
    source = examples / "orders.ndjson"
    expected = _example_ids(source)
    summary = as_json(ok(cli, "import", str(source), "--json"))
    assert set(summary) >= SUMMARY_KEYS
    assert summary["source"] == str(source)
    assert summary["ok"] is True
    assert summary["dry_run"] is False
    assert (summary["orders"], summary["accepted"], summary["rejected"]) == (
        len(expected),
        len(expected),
        0,
    )
    listed = as_json(ok(cli, "list", "--limit", "1000", "--format", "json"))
    assert [o["id"] for o in listed] == expected[::-1]  # newest first
    assert {o["status"] for o in listed} == {"pending"}  # queued: no engine yet

    again = ok(cli, "import", str(source))
    assert f"0 accepted, {len(expected)} already present, 0 refused" in again.stderr
    assert _ids(cli) == expected[::-1]


def test_import_example_csv_groups_rows_into_orders(shop: Cli, examples: Path) -> None:
    cli = shop
    source = examples / "orders.csv"
    summary = as_json(ok(cli, "import", str(source), "--json"))
    assert (summary["orders"], summary["accepted"]) == (5, 5)
    assert _ids(cli) == ["CSV-0005", "CSV-0004", "CSV-0003", "CSV-0002", "CSV-0001"]
    first = as_json(ok(cli, "show", "CSV-0001", "--json"))
    assert first["customer_id"] == "ada"
    assert [(i["product_id"], i["quantity"]) for i in first["items"]] == [
        ("KB-01", 1),
        ("MS-02", 1),
    ]
    third = as_json(ok(cli, "show", "CSV-0003", "--json"))
    assert [i["product_id"] for i in third["items"]] == ["MN-27", "CB-10", "LP-14"]
    assert as_json(ok(cli, "show", "CSV-0005", "--json"))["customer_id"] == "O'Brien, Pat"

    again = as_json(ok(cli, "import", str(source), "--json"))
    assert (again["accepted"], again["duplicates"], again["ok"]) == (0, 5, True)


def test_import_example_json_array_with_a_generated_id(shop: Cli, examples: Path) -> None:
    cli = shop
    summary = as_json(ok(cli, "import", str(examples / "orders.json"), "--json"))
    assert (summary["orders"], summary["accepted"]) == (3, 3)
    listed = as_json(ok(cli, "list", "--format", "json"))
    assert [o["id"] for o in listed][1:] == ["JSON-0002", "JSON-0001"]
    generated = listed[0]
    assert generated["customer_id"] == "ken"
    assert len(generated["id"]) == 26
    assert generated["items"] == [{"product_id": "KB-01", "quantity": 2, "price": None}]
    shown = as_json(ok(cli, "show", generated["id"], "--json"))
    assert shown["notes"] == "no id: one is generated"


def test_reimporting_orders_without_ids_adds_them_again_and_says_so(
    shop: Cli, examples: Path
) -> None:
    # The contract says a re-import adds nothing; for orders without an id that cannot
    # hold (each import generates a new id), so the CLI says so instead.
    cli = shop
    first = ok(cli, "import", str(examples / "orders.json"))
    assert "note: 1 order(s) had no id and got a new one" in first.stderr
    again = as_json(ok(cli, "import", str(examples / "orders.json"), "--json"))
    assert (again["accepted"], again["duplicates"], again["generated_ids"]) == (1, 2, 1)
    ids = _ids(cli)
    assert len(ids) == 4
    assert {"JSON-0001", "JSON-0002"} <= set(ids)
    kens = as_json(ok(cli, "list", "--customer", "ken", "--format", "json"))
    assert len(kens) == 2
    assert kens[0]["id"] != kens[1]["id"]
    ndjson_again = as_json(ok(cli, "import", str(examples / "orders.csv"), "--json"))
    assert ndjson_again["generated_ids"] == 0


def test_bad_example_rows_are_reported_by_line_and_good_rows_kept(
    shop: Cli, examples: Path
) -> None:
    cli = shop
    source = examples / "bad-orders.ndjson"
    errors_file = cli.cwd / "rejected.ndjson"
    result = fails(
        cli, "import", str(source), "--errors-file", str(errors_file), "--json", one_line=False
    )
    refused = _refused(result.stderr, str(source))
    assert sorted(refused) == [2, 3, 4, 5, 6, 7, 8]
    assert "quantity must be a whole number from 1 to 1000000, got 0" in refused[2]
    assert "got 1.5" in refused[3]
    assert "customer_id is missing" in refused[4]
    assert "items must be a non-empty list" in refused[5]
    assert 'got "three"' in refused[6]
    assert refused[7].startswith("malformed JSON")
    assert "expected one JSON object per line, got array" in refused[8]

    summary = as_json(result)
    assert set(summary) >= SUMMARY_KEYS
    assert summary["ok"] is False
    assert (summary["accepted"], summary["invalid"], summary["conflicts"]) == (2, 7, 0)
    assert summary["rejected"] == 7
    assert sorted(_ids(cli)) == ["BAD-0001", "BAD-0009"]

    rows = ndjson(errors_file.read_text())
    assert [r["line"] for r in rows] == [2, 3, 4, 5, 6, 7, 8]
    assert all(set(r) == {"source", "line", "reason", "order_id"} for r in rows)
    assert all(r["source"] == str(source) for r in rows)
    assert [r["order_id"] for r in rows] == [
        "BAD-0002",
        "BAD-0003",
        "BAD-0004",
        "BAD-0005",
        "BAD-0006",
        None,
        None,
    ]
    assert rows[0]["reason"] == refused[2]


# -- every class of bad input, each at its exact line -----------------------------------


def test_every_bad_ndjson_row_is_refused_at_its_line_and_the_rest_kept(shop: Cli) -> None:
    cli = shop
    bad = {
        2: ('{"id": "B-1", "customer_id": "x", "items": [', "malformed JSON"),
        4: ("[1, 2]", "expected one JSON object per line, got array"),
        5: ('"just a string"', "expected one JSON object per line, got string"),
        6: (order_line("B-2", "", ("KB-01", 1)), "customer_id must not be empty"),
        7: ('{"id": "B-3", "customer_id": "x"}', "items must be a non-empty list"),
        8: (order_line("B-4", "x"), "items must be a non-empty list of objects, got []"),
        10: (order_line("B-5", "x", ("KB-01", 0)), "got 0"),
        11: (order_line("B-6", "x", ("KB-01", -1)), "got -1"),
        12: (order_line("B-7", "x", ("KB-01", 1.5)), "got 1.5"),
        13: (order_line("B-8", "x", ("KB-01", "three")), 'got "three"'),
        14: (order_line("B-9", "x", ("KB-01", 10**30)), "quantity must be a whole number"),
        15: (order_line("B-10", "x", ("KB-01", 1_000_001)), "got 1000001"),
        17: ('{"id": "B-11", "customer_id": "x", "items": ["KB-01"]}', "expected an object"),
        18: ('{"id": "B-12", "customer_id": "x", "items": [{"quantity": 1}]}', "product_id"),
        19: (order_line("B-13", "x", ("KB-01", True)), "quantity must be a whole number"),
    }
    lines: list[bytes] = []
    kept = []
    for number in range(1, 22):
        if number in bad:
            lines.append(bad[number][0].encode())
        elif number == 20:
            lines.append(b'{"id": "B-14", "customer_id": "\xff\xfe", "items": []}')
        else:
            kept.append(f"G-{number}")
            lines.append(order_line(f"G-{number}", "ann", ("KB-01", 1)).encode())
    source = cli.cwd / "mixed.ndjson"
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = fails(cli, "import", str(source), "--json", one_line=False)
    refused = _refused(result.stderr, str(source))
    assert sorted(refused) == sorted([*bad, 20])
    for number, (_, reason) in bad.items():
        assert reason in refused[number], (number, refused[number])
    assert "not valid UTF-8 (byte 0xff" in refused[20]
    summary = as_json(result)
    assert (summary["accepted"], summary["invalid"]) == (len(kept), len(bad) + 1)
    assert _ids(cli) == kept[::-1]


def test_every_bad_csv_row_refuses_its_order_at_its_line(shop: Cli) -> None:
    cli = shop
    # A UTF-8 BOM and CRLF line ends (Excel) are fine.
    rows = [
        "order_id,customer_id,product_id,quantity",  # 1
        "C-1,ann,KB-01,1",  # 2
        "C-2,bob,KB-01,0",  # 3
        "C-1,ann,MS-02,2",  # 4: joins C-1 (rows need not be adjacent)
        "C-3,cy,KB-01,-1",  # 5
        "C-4,dan,KB-01,1.5",  # 6
        "C-5,eve,KB-01,three",  # 7
        "C-6,fay,KB-01,1000000000000000000000000000000",  # 8
        "C-7,gus,KB-01,1000000",  # 9: the largest quantity allowed
        'C-8,"O\'Brien, Pat",KB-01,1',  # 10: quoted comma
        "C-9,hal,KB-01",  # 11: a field short
        "C-10,ivy,KB-01,1",  # 12
        "C-10,joe,KB-01,1",  # 13: another customer for the same order
        "C-11,,KB-01,1",  # 14: no customer
        "C-2,bob,MS-02,1",  # 15: C-2 was refused at line 3; this row goes with it
    ]
    data = ("\r\n".join(rows) + "\r\n").encode()
    source = cli.cwd / "excel.csv"
    source.write_bytes(b"\xef\xbb\xbf" + data[:-2] + b"\r\nC-12,kim,\xff\xfe,1\r\n")  # 16
    result = fails(cli, "import", str(source), "--json", one_line=False)
    refused = _refused(result.stderr, str(source))
    assert sorted(refused) == [3, 5, 6, 7, 8, 11, 13, 14, 16]
    assert refused[3] == "order 'C-2': quantity must be a whole number from 1 to 1000000, got 0"
    assert refused[5].endswith("got -1")
    assert refused[6].endswith("got 1.5")
    assert refused[7].endswith("got three")
    assert "quantity must be a whole number" in refused[8]
    assert "expected 4 fields, got 3" in refused[11]
    assert "customer 'joe' differs from 'ivy' given at line 12" in refused[13]
    assert "customer_id must not be empty" in refused[14]
    assert "not valid UTF-8" in refused[16]
    assert sorted(_ids(cli)) == ["C-1", "C-7", "C-8"]
    first = as_json(ok(cli, "show", "C-1", "--json"))
    assert [(i["product_id"], i["quantity"]) for i in first["items"]] == [
        ("KB-01", 1),
        ("MS-02", 2),
    ]
    assert as_json(ok(cli, "show", "C-8", "--json"))["customer_id"] == "O'Brien, Pat"
    assert as_json(ok(cli, "show", "C-7", "--json"))["items"][0]["quantity"] == 1_000_000


def test_bad_json_array_elements_are_refused_at_their_line(shop: Cli) -> None:
    cli = shop
    source = cli.cwd / "orders.json"
    source.write_text(
        "[\n"
        f"  {order_line('J-1', 'a', ('KB-01', 1))},\n"  # 2
        f"  {order_line('J-2', 'a', ('KB-01', 0))},\n"  # 3
        '  {"id": "J-3", "items": [{"product_id": "KB-01", "quantity": 1}]},\n'  # 4
        '  "nope",\n'  # 5
        '  {"id": "J-5",\n   "customer_id": "a",\n'  # 6-7
        '   "items": [{"product_id": "KB-01", "quantity": 1.5}]},\n'  # 8
        f"  {order_line('J-6', 'a', ('KB-01', 2))}\n"  # 9
        "]\n"
    )
    result = fails(cli, "import", str(source), one_line=False)
    refused = _refused(result.stderr, str(source))
    assert sorted(refused) == [3, 4, 5, 6]
    assert "got 0" in refused[3]
    assert "customer_id is missing" in refused[4]
    assert "expected an order object, got string" in refused[5]
    assert "got 1.5" in refused[6]
    assert "2 accepted" in result.stderr
    assert sorted(_ids(cli)) == ["J-1", "J-6"]

    broken = cli.cwd / "broken.json"
    broken.write_text(f'[\n  {order_line("K-1", "a", ("KB-01", 1))},\n  {{"id": "K-2",]\n')
    result = fails(cli, "import", str(broken), one_line=False)
    assert list(_refused(result.stderr, str(broken))) == [3]
    assert "malformed JSON" in _refused(result.stderr, str(broken))[3]
    assert "K-1" in _ids(cli)


def test_bom_and_crlf_are_fine_in_json_formats(shop: Cli) -> None:
    cli = shop
    lines = [order_line("N-1", "ann", ("KB-01", 1)), order_line("N-2", "bob", ("MS-02", 2))]
    ndjson_file = cli.cwd / "excel.ndjson"
    ndjson_file.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    assert as_json(ok(cli, "import", str(ndjson_file), "--json"))["accepted"] == 2
    json_file = cli.cwd / "excel.json"
    body = (
        "[\r\n"
        + ",\r\n".join([order_line("J-1", "cy", ("KB-01", 1)), order_line("J-2", "x")])
        + "\r\n]\r\n"
    )
    json_file.write_bytes(b"\xef\xbb\xbf" + body.encode())
    result = fails(cli, "import", str(json_file), one_line=False)
    refused = _refused(result.stderr, str(json_file))
    assert list(refused) == [3]  # CRLF counts as one line end
    assert "items must be a non-empty list" in refused[3]
    assert _ids(cli) == ["J-1", "N-2", "N-1"]


@pytest.mark.parametrize("suffix", ["ndjson", "csv", "json"])
def test_an_empty_file_is_refused(shop: Cli, suffix: str) -> None:
    cli = shop
    source = cli.cwd / f"empty.{suffix}"
    source.write_bytes(b"")
    result = fails(cli, "import", str(source), "--json", one_line=False)
    refused = _refused(result.stderr, str(source))
    assert list(refused) == [1]
    assert refused[1] in {"file is empty", "no orders in file"}
    summary = as_json(result)
    assert (summary["accepted"], summary["invalid"], summary["ok"]) == (0, 1, False)


def test_a_non_utf8_json_file_is_refused_at_the_line(shop: Cli) -> None:
    cli = shop
    source = cli.cwd / "latin1.json"
    good = order_line("L-1", "a", ("KB-01", 1))
    source.write_bytes(
        f"[\n  {good},\n".encode() + b'  {"id": "L-2", "customer_id": "Jos\xe9"}\n]\n'
    )
    result = fails(cli, "import", str(source), one_line=False)
    refused = _refused(result.stderr, str(source))
    assert list(refused) == [3]
    assert "not valid UTF-8 (byte 0xe9" in refused[3]
    assert _ids(cli) == ["L-1"]


# -- idempotency and conflicts ----------------------------------------------------------


def test_same_id_with_different_content_is_a_conflict_and_the_stored_order_is_kept(
    shop: Cli,
) -> None:
    cli = shop
    first = cli.cwd / "first.ndjson"
    first.write_text(
        order_line("O-1", "ann", ("KB-01", 1))
        + "\n"
        + order_line("O-2", "bob", ("MS-02", 2))
        + "\n"
    )
    ok(cli, "import", str(first))
    second = cli.cwd / "second.ndjson"
    second.write_text(
        order_line("O-3", "cid", ("KB-01", 1))
        + "\n"
        + order_line("O-2", "bob", ("MS-02", 2))  # same content: a no-op
        + "\n"
        + order_line("O-1", "ann", ("KB-01", 5))  # different content: conflict
        + "\n"
    )
    errors_file = cli.cwd / "errors.ndjson"
    result = fails(
        cli, "import", str(second), "--json", "--errors-file", str(errors_file), one_line=False
    )
    refused = _refused(result.stderr, str(second))
    assert list(refused) == [3]
    assert "order 'O-1' was already submitted with different content" in refused[3]
    summary = as_json(result)
    assert (summary["accepted"], summary["duplicates"], summary["conflicts"]) == (1, 1, 1)
    assert (summary["invalid"], summary["rejected"], summary["ok"]) == (0, 1, False)
    assert ndjson(errors_file.read_text()) == [
        {"source": str(second), "line": 3, "reason": refused[3], "order_id": "O-1"}
    ]
    stored = as_json(ok(cli, "show", "O-1", "--json"))
    assert stored["items"] == [{"product_id": "KB-01", "quantity": 1, "price": None}]
    assert _ids(cli) == ["O-3", "O-2", "O-1"]


def test_line_order_does_not_make_a_conflict(shop: Cli) -> None:
    cli = shop
    one = cli.cwd / "one.ndjson"
    one.write_text(order_line("R-1", "ann", ("KB-01", 1), ("MS-02", 2)) + "\n")
    two = cli.cwd / "two.ndjson"
    two.write_text(order_line("R-1", "ann", ("MS-02", 2), ("KB-01", 1)) + "\n")
    ok(cli, "import", str(one))
    summary = as_json(ok(cli, "import", str(two), "--json"))
    assert (summary["accepted"], summary["duplicates"]) == (0, 1)


# -- stdin, formats, options ------------------------------------------------------------


def test_import_from_stdin_needs_and_honours_format(shop: Cli) -> None:
    cli = shop
    text = order_line("S-1", "ann", ("KB-01", 1)) + "\n"
    summary = as_json(ok(cli, "import", "-", "--format", "ndjson", "--json", input=text))
    assert summary["source"] == "<stdin>"
    assert summary["accepted"] == 1
    csv_text = "order_id,customer_id,product_id,quantity\nS-2,bob,MS-02,3\nS-2,bob,KB-01,1\n"
    assert as_json(ok(cli, "import", "-", "-f", "csv", "--json", input=csv_text))["accepted"] == 1
    assert len(as_json(ok(cli, "show", "S-2", "--json"))["items"]) == 2
    bad = fails(cli, "import", "-", "--format", "ndjson", input='{"id": 1}\n', one_line=False)
    assert bad.stderr.startswith("<stdin>:1: ")

    result = fails(cli, "import", "-", input=text, code=2)
    assert "cannot tell the format of standard input; pass --format" in result.stderr


def test_import_from_a_live_pipe_appends_what_arrived_without_waiting_for_a_batch(
    shop: Cli,
) -> None:
    """A feeder that writes a few orders and pauses: they are queued now, not at EOF."""
    cli = shop
    env = {**os.environ, "REALORDERS_DB": str(cli.db), "NO_COLOR": "1"}
    feeder = subprocess.Popen(
        [sys.executable, "-m", "realorders", "import", "-", "-f", "ndjson", "--json"],
        cwd=cli.cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert feeder.stdin is not None
        for i in range(3):
            feeder.stdin.write((order_line(f"P-{i}", "ann", ("KB-01", 1)) + "\n").encode())
        feeder.stdin.flush()  # and keep the pipe open: the feeder is still "running"
        # While the feeder still works (starting up, however slowly: its CPU time moves),
        # keep waiting; held back = 3 not queued though it has sat idle for 20 s.
        wait_until(
            lambda: as_json(ok(cli, "stats", "--json"))["backlog"] >= 3,
            timeout=20,
            what="the pipe's orders (held back?)",
            progress=lambda: cpu_ticks(feeder.pid),
        )
        feeder.stdin.write((order_line("P-3", "ann", ("KB-01", 1)) + "\n").encode())
        out, err = feeder.communicate(timeout=60)  # closes stdin: the rest goes in at EOF
    finally:
        if feeder.poll() is None:
            feeder.kill()
    assert feeder.returncode == 0, err
    assert json.loads(out)["accepted"] == 4


def test_format_option_overrides_the_extension(shop: Cli) -> None:
    cli = shop
    source = cli.cwd / "orders.txt"
    source.write_text(order_line("T-1", "ann", ("KB-01", 1)) + "\n")
    result = fails(cli, "import", str(source), code=2)
    assert "cannot tell the format of" in result.stderr
    assert as_json(ok(cli, "import", str(source), "--format", "ndjson", "--json"))["accepted"] == 1
    jsonl = cli.cwd / "orders.jsonl"
    jsonl.write_text(order_line("T-2", "ann", ("KB-01", 1)) + "\n")
    assert as_json(ok(cli, "import", str(jsonl), "--json"))["accepted"] == 1


def test_dry_run_validates_and_changes_nothing(shop: Cli, examples: Path) -> None:
    cli = shop
    source = examples / "orders.ndjson"
    count = len(_example_ids(source))
    summary = as_json(ok(cli, "import", str(source), "--dry-run", "--json"))
    assert (summary["dry_run"], summary["accepted"], summary["ok"]) == (True, count, True)
    assert "checked" in ok(cli, "import", str(source), "--dry-run").stderr
    assert _ids(cli) == []
    assert as_json(ok(cli, "stats", "--json"))["backlog"] == 0

    bad = fails(
        cli, "import", str(examples / "bad-orders.ndjson"), "--dry-run", "--json", one_line=False
    )
    assert as_json(bad)["invalid"] == 7
    assert _ids(cli) == []

    ok(cli, "import", str(source))
    conflict = cli.cwd / "conflict.ndjson"
    conflict.write_text(order_line("ORD-0001", "someone-else", ("KB-01", 1)) + "\n")
    result = fails(cli, "import", str(conflict), "--dry-run", "--json", one_line=False)
    assert as_json(result)["conflicts"] == 1
    assert f"{conflict}:1: order 'ORD-0001' was already submitted" in result.stderr
    summary = as_json(ok(cli, "import", str(source), "--dry-run", "--json"))
    assert (summary["accepted"], summary["duplicates"]) == (0, count)


def test_batch_size_does_not_change_the_outcome(shop: Cli, examples: Path) -> None:
    cli = shop
    result = fails(
        cli,
        "import",
        str(examples / "bad-orders.ndjson"),
        "--batch-size",
        "1",
        "--json",
        one_line=False,
    )
    summary = as_json(result)
    assert (summary["accepted"], summary["invalid"]) == (2, 7)
    assert sorted(_ids(cli)) == ["BAD-0001", "BAD-0009"]


def test_ids_and_customer_names_are_stored_verbatim(shop: Cli) -> None:
    cli = shop
    names = [
        ("'; DROP TABLE orders; --", 'Robert"); DROP TABLE customers;--'),
        ('quote"d', "O'Brien, Pat"),
        ("🦄-1", "Zoë 🦄"),
        ("طلب-٢", "محمد"),
        ("注文-3", "山田太郎"),
        ("  spaced  ", "tab\there"),
    ]
    source = cli.cwd / "weird.ndjson"
    source.write_text(
        "\n".join(order_line(oid, customer, ("KB-01", 1)) for oid, customer in names) + "\n",
        encoding="utf-8",
    )
    assert as_json(ok(cli, "import", str(source), "--json"))["accepted"] == len(names)
    ok(cli, "run", "--until-idle")
    listed = as_json(ok(cli, "list", "--format", "json"))
    assert [(o["id"], o["customer_id"]) for o in listed] == names[::-1]
    assert {o["status"] for o in listed} == {"delivered"}
    for oid, customer in names[:2]:
        shown = as_json(ok(cli, "show", oid, "--json"))
        assert (shown["id"], shown["customer_id"]) == (oid, customer)
    by_customer = as_json(ok(cli, "list", "--customer", "Zoë 🦄", "--format", "json"))
    assert [o["id"] for o in by_customer] == ["🦄-1"]
    with closing(sqlite3.connect(cli.db)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"orders", "commands", "events"} <= tables
    assert "every invariant holds" in ok(cli, "check").stdout


def test_an_unknown_product_is_accepted_then_rejected_with_its_reason(shop: Cli) -> None:
    cli = shop
    source = cli.cwd / "unknown.ndjson"
    source.write_text(order_line("U-1", "ann", ("VR-99", 1), ("KB-01", 1)) + "\n")
    assert as_json(ok(cli, "import", str(source), "--json"))["accepted"] == 1
    ok(cli, "run", "--until-idle")
    shown = as_json(ok(cli, "show", "U-1", "--json"))
    assert shown["status"] == "rejected"
    assert shown["reason"] == "unknown product 'VR-99'"
    assert [(e["seq"], e["status"]) for e in shown["events"]] == [(1, "pending"), (2, "rejected")]
    assert shown["events"][1]["reason"] == "unknown product 'VR-99'"
    table = ok(cli, "show", "U-1").stdout
    assert "unknown product 'VR-99'" in table


def test_import_wait_blocks_until_the_imported_orders_settle(
    shop: Cli, background: Background
) -> None:
    cli = shop
    background.engine("pack=0.2,ship=0.2,deliver=0.2")
    source = cli.cwd / "wait.ndjson"
    source.write_text(
        "\n".join(
            [
                order_line("W-1", "ann", ("KB-01", 1)),
                order_line("W-2", "bob", ("HD-03", 5)),  # only 3 in stock: backordered
                order_line("W-3", "cid", ("NOPE", 1)),  # unknown product: rejected
            ]
        )
        + "\n"
    )
    summary = as_json(ok(cli, "import", str(source), "--wait", "--json", "--timeout", "30"))
    assert summary["accepted"] == 3
    statuses = summary["statuses"]
    assert (statuses["delivered"], statuses["backordered"], statuses["rejected"]) == (1, 1, 1)
    assert statuses["pending"] == statuses["reserved"] == statuses["packed"] == 0
    human = ok(cli, "import", str(source), "--wait")
    assert "0 accepted, 3 already present" in human.stderr


def test_import_wait_without_an_engine_says_so_and_times_out(shop: Cli) -> None:
    cli = shop
    source = cli.cwd / "wait.ndjson"
    source.write_text(order_line("W-1", "ann", ("KB-01", 1)) + "\n")
    result = fails(cli, "import", str(source), "--wait", "--timeout", "0.5", one_line=False)
    assert "no engine is running" in result.stderr
    assert "error: timed out after 0.5s waiting for imported orders to settle" in result.stderr
