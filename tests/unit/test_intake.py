"""The order-file contract: every input rule, the line each error names, and streaming."""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realorders.domain import LineItem, Order
from realorders.errors import InputError
from realorders.intake import (
    Format,
    ParsedOrder,
    RowError,
    detect_format,
    order_from_obj,
    parse_item_spec,
    parse_order_json,
    read_orders,
    validate_quantity,
)

FORMATS: tuple[Format, ...] = ("csv", "json", "ndjson")
RULE = "quantity must be a whole number from 1 to 1000000"


def counter() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"gen-{next(numbers)}"


def read(data: bytes | Any, fmt: Format, **kwargs: Any) -> list[ParsedOrder | RowError]:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    return list(read_orders(stream, fmt, "in", id_factory=counter(), **kwargs))


def orders(results: Iterable[ParsedOrder | RowError]) -> list[Order]:
    return [r.order for r in results if isinstance(r, ParsedOrder)]


def errors(results: Iterable[ParsedOrder | RowError]) -> list[RowError]:
    return [r for r in results if isinstance(r, RowError)]


def only_error(results: list[ParsedOrder | RowError]) -> RowError:
    assert len(results) == 1, results
    assert isinstance(results[0], RowError)
    return results[0]


def order_obj(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "A1",
        "customer_id": "ada",
        "items": [{"product_id": "KB-01", "quantity": 2}],
    }
    obj.update(changes)
    return {key: value for key, value in obj.items() if value is not ...}


def ndjson(*objs: Any) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objs)


GOOD = Order("A1", "ada", (LineItem("KB-01", 2),))


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``size`` bytes per read, to split tokens and characters."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size, self.at = data, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.data[self.at : self.at + min(self.size, len(buffer))]
        buffer[: len(chunk)] = chunk
        self.at += len(chunk)
        return len(chunk)


class Generated(io.RawIOBase):
    """A stream made on demand from a generator of byte strings, counting what it served."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self.parts, self.rest, self.served = parts, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.rest:
            self.rest = next(self.parts, b"")
            if not self.rest:
                return 0
        chunk, self.rest = self.rest[: len(buffer)], self.rest[len(buffer) :]
        buffer[: len(chunk)] = chunk
        self.served += len(chunk)
        return len(chunk)


# -- RowError, detect_format --------------------------------------------------------------


def test_row_error_prints_and_serialises() -> None:
    error = RowError("orders.csv", 7, "bad thing", "A1")
    assert str(error) == "orders.csv:7: bad thing"
    assert error.to_dict() == {
        "source": "orders.csv",
        "line": 7,
        "reason": "bad thing",
        "order_id": "A1",
    }
    assert RowError("<stdin>", 1, "x").to_dict()["order_id"] is None


@pytest.mark.parametrize(
    ("path", "explicit", "expected"),
    [
        ("a.csv", None, "csv"),
        ("a.CSV", None, "csv"),
        ("dir.v2/a.json", None, "json"),
        ("a.ndjson", None, "ndjson"),
        ("a.jsonl", None, "ndjson"),
        ("a.csv", "json", "json"),
        ("a.txt", "NDJSON", "ndjson"),
        (None, "jsonl", "ndjson"),
        ("-", "csv", "csv"),
    ],
)
def test_detect_format(path: str | None, explicit: str | None, expected: str) -> None:
    assert detect_format(path, explicit) == expected


@pytest.mark.parametrize(
    ("path", "explicit", "message"),
    [
        ("orders.txt", None, "cannot tell the format of orders.txt; pass --format csv|json|ndjson"),
        ("orders", None, "cannot tell the format of orders; pass --format"),
        (None, None, "cannot tell the format of standard input; pass --format"),
        ("-", None, "cannot tell the format of standard input; pass --format"),
        ("a.csv", "xml", "unknown format 'xml'; use csv, json or ndjson"),
    ],
)
def test_detect_format_refuses(path: str | None, explicit: str | None, message: str) -> None:
    with pytest.raises(InputError, match="^" + message.replace("|", r"\|")):
        detect_format(path, explicit)


def test_unknown_format_raises_at_once() -> None:
    with pytest.raises(InputError, match="unknown format 'xml'"):
        read_orders(io.BytesIO(b""), "xml", "in")  # type: ignore[arg-type]


# -- quantity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        (1_000_000, 1_000_000),
        ("3", 3),
        (" 3 ", 3),
        ("007", 7),
        ("1000000", 1_000_000),
        ("0" * 30 + "1", 1),
    ],
)
def test_validate_quantity_accepts(value: object, expected: int) -> None:
    assert validate_quantity(value) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0"),
        (-1, "-1"),
        (1_000_001, "1000001"),
        (10**30, "1000000000000000000000000000000"),
        (1.5, "1.5"),
        (1.0, "1.0"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        ([1], "[1]"),
        ("three", "three"),
        ("1.5", "1.5"),
        ("3.0", "3.0"),
        ("-3", "-3"),
        ("+3", "+3"),
        ("1_000", "1_000"),
        ("\u0663", "\u0663"),  # an Arabic-Indic three: a digit, but not an ASCII one
        ("", "an empty field"),
        ("  ", "an empty field"),
        ("9" * 5000, "9" * 39 + "…"),
    ],
)
def test_validate_quantity_refuses(value: object, shown: str) -> None:
    with pytest.raises(ValueError, match="^" + RULE) as caught:
        validate_quantity(value)
    assert str(caught.value) == f"{RULE}, got {shown}"


# -- the JSON order object -------------------------------------------------------------------


def test_good_order_and_its_variants() -> None:
    camel = {"orderId": "A1", "customerId": "ada", "items": [{"productId": "KB-01", "quantity": 2}]}
    extra = order_obj(priority="high", items=[{"product_id": "KB-01", "quantity": 2, "x": 1}])
    results = read(ndjson(order_obj(), camel, extra, order_obj(notes=None)), "ndjson")
    assert orders(results) == [GOOD] * 4
    assert [r.line for r in results if isinstance(r, ParsedOrder)] == [1, 2, 3, 4]


def test_missing_or_null_id_is_generated() -> None:
    got = orders(read(ndjson(order_obj(id=...), order_obj(id=None)), "ndjson"))
    assert [o.id for o in got] == ["gen-1", "gen-2"]


@pytest.mark.parametrize(
    "value",
    [
        'it\'s "quoted"',
        "'; DROP TABLE orders; --",
        "🛒🚚",
        "заказ-1",
        "注文",
        "طلب",
        "x" * 200,
        " padded ",
        "a,b\nc",
    ],
)
def test_ids_and_text_are_stored_verbatim(value: str) -> None:
    obj = order_obj(
        id=value, customer_id=value, notes=value, items=[{"product_id": value, "quantity": 1}]
    )
    fmt: Format
    for fmt, data in (("ndjson", ndjson(obj)), ("json", json.dumps([obj]).encode())):
        assert orders(read(data, fmt)) == [Order(value, value, (LineItem(value, 1),), value)]


def test_duplicate_product_lines_are_kept_as_given() -> None:
    items = [{"product_id": "P", "quantity": 1}, {"product_id": "P", "quantity": 1}]
    assert orders(read(ndjson(order_obj(items=items)), "ndjson"))[0].items == (
        LineItem("P", 1),
        LineItem("P", 1),
    )


def test_empty_and_unicode_notes_are_kept() -> None:
    got = orders(read(ndjson(order_obj(notes=""), order_obj(notes="ring twice 🔔")), "ndjson"))
    assert [o.notes for o in got] == ["", "ring twice 🔔"]


BAD_ORDERS: list[tuple[Any, str]] = [
    (order_obj(customer_id=...), "customer_id is missing"),
    (order_obj(customer_id=None), "customer_id is missing"),
    (order_obj(customer_id=7), "customer_id must be a string, got 7"),
    (order_obj(customer_id=""), "customer_id must not be empty"),
    (order_obj(customer_id="  "), "customer_id must not be empty"),
    (order_obj(customer_id="c" * 201), "customer_id is longer than 200 characters"),
    (order_obj(id=""), "id must not be empty"),
    (order_obj(id=" \t"), "id must not be empty"),
    (order_obj(id="x" * 201), "id is longer than 200 characters"),
    (order_obj(id=5), "id must be a string, got 5"),
    ({**order_obj(), "orderId": "B2"}, "id and orderId disagree"),
    (order_obj(items=...), "items must be a non-empty list of objects, got nothing"),
    (order_obj(items=[]), "items must be a non-empty list of objects, got []"),
    (order_obj(items={"p": 1}), 'items must be a non-empty list of objects, got {"p":1}'),
    (order_obj(items=[3]), "item 1: expected an object, got number"),
    (order_obj(items=[{"quantity": 1}]), "item 1: product_id is missing"),
    (order_obj(items=[{"product_id": "", "quantity": 1}]), "item 1: product_id must not be empty"),
    (
        order_obj(items=[{"product_id": 9, "quantity": 1}]),
        "item 1: product_id must be a string, got 9",
    ),
    (order_obj(items=[{"product_id": "P"}]), "item 1: quantity is missing"),
    (order_obj(notes=5), "notes must be a string or null, got 5"),
    (order_obj(notes=["a"]), 'notes must be a string or null, got ["a"]'),
]
BAD_QUANTITIES = [
    ("3", '"3"'),
    ("three", '"three"'),
    (0, "0"),
    (-2, "-2"),
    (1.5, "1.5"),
    (1.0, "1.0"),
    (True, "true"),
    (None, "null"),
    (1_000_001, "1000001"),
]
for _value, _shown in BAD_QUANTITIES:
    _items = [{"product_id": "P", "quantity": 1}, {"product_id": "Q", "quantity": _value}]
    BAD_ORDERS.append((order_obj(items=_items), f"item 2: {RULE}, got {_shown}"))


@pytest.mark.parametrize(("obj", "reason"), BAD_ORDERS)
def test_bad_order_is_reported_at_its_line_between_good_ones(obj: Any, reason: str) -> None:
    data = ndjson(order_obj(id="before"), obj, order_obj(id="after"))
    results = read(data, "ndjson")
    assert [o.id for o in orders(results)] == ["before", "after"]
    [error] = errors(results)
    assert (error.source, error.line, error.reason) == ("in", 2, reason)
    assert results[1] is error  # yielded in file order


@pytest.mark.parametrize(("obj", "reason"), BAD_ORDERS)
def test_bad_order_in_a_json_array(obj: Any, reason: str) -> None:
    data = b"[\n" + b",\n".join(orjson.dumps(o) for o in (order_obj(id="x"), obj)) + b"\n]"
    results = read(data, "json")
    assert [o.id for o in orders(results)] == ["x"]
    assert [(e.line, e.reason) for e in errors(results)] == [(3, reason)]


def test_row_error_carries_the_order_id_when_known() -> None:
    results = read(
        ndjson(order_obj(id="Z9", customer_id=""), order_obj(id=..., items=[])), "ndjson"
    )
    assert [e.order_id for e in errors(results)] == ["Z9", None]


def test_big_integers_are_refused_in_both_json_readers() -> None:
    text = b'{"customer_id": "c", "items": [{"product_id": "p", "quantity": 10000000000000000000000000000000}]}'  # noqa: E501
    assert read(b"[" + text + b"]", "json")[0].reason.endswith(  # type: ignore[union-attr]
        "got 10000000000000000000000000000000"
    )
    assert read(text, "ndjson")[0].reason == f"item 1: {RULE}, got 1e+31"  # type: ignore[union-attr]


def test_lone_surrogates_are_refused() -> None:
    data = b'[{"customer_id": "\\ud800", "items": [{"product_id": "p", "quantity": 1}]}]'
    assert "surrogate" in only_error(read(data, "json")).reason
    assert "malformed JSON" in only_error(read(data[1:-1], "ndjson")).reason


def test_order_from_obj_raises_input_error_with_place() -> None:
    assert order_from_obj(order_obj(), "f.json", 3) == GOOD
    assert order_from_obj(order_obj(id=...), "f.json", 3, counter()).id == "gen-1"
    with pytest.raises(InputError) as caught:
        order_from_obj(order_obj(customer_id=""), "f.json", 3)
    assert (caught.value.source, caught.value.line) == ("f.json", 3)
    assert str(caught.value) == "f.json:3: customer_id must not be empty"
    with pytest.raises(InputError, match="expected an order object, got array"):
        order_from_obj([], "f.json", 1)


# -- parse_order_json, parse_item_spec ---------------------------------------------------


def test_parse_order_json() -> None:
    assert parse_order_json(orjson.dumps(order_obj())) == GOOD
    assert parse_order_json(b"\xef\xbb\xbf" + orjson.dumps(order_obj()) + b"\r\n") == GOOD


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"", 1, "no order given"),
        (b" \n", 1, "no order given"),
        (b'{"a": 1}\n{"b": 2}', 2, "malformed JSON: expected exactly one JSON object"),
        (b'{\n  "id": "A",\n  "customer_id" "x"\n}', 3, "malformed JSON"),
        (b"\n\n[1]", 3, "expected one JSON order object, got array"),
        (b'{"customer_id":\n "caf\xe9"}', 2, "line is not valid UTF-8 (byte 0xe9 at column 6)"),
        (b'\n\n  {"id": "A", "customer_id": "c", "items": []}', 3, "items must be a non-empty"),
    ],
)
def test_parse_order_json_refuses(data: bytes, line: int, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_order_json(data, "order.json")
    assert (caught.value.source, caught.value.line) == ("order.json", line)
    assert reason in caught.value.reason


def test_parse_order_json_names_stdin_by_default() -> None:
    with pytest.raises(InputError, match=r"^<stdin>:1: no order given"):
        parse_order_json(b"")


@pytest.mark.parametrize(
    ("spec", "item"),
    [
        ("sku-1=3", LineItem("sku-1", 3)),
        ("a=b=2", LineItem("a=b", 2)),
        ("KB-01= 1000000", LineItem("KB-01", 1_000_000)),
        ("🧦=1", LineItem("🧦", 1)),
    ],
)
def test_parse_item_spec(spec: str, item: LineItem) -> None:
    assert parse_item_spec(spec) == item


@pytest.mark.parametrize(
    "spec",
    ["sku", "sku=", "=3", " =3", "sku=0", "sku=1.5", "sku=x", "s=-1", "s=1000001", "\udcff=1"],
)
def test_parse_item_spec_refuses(spec: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_item_spec(spec)
    assert str(caught.value) == (
        f"--item {spec!r}: expected PRODUCT=QTY with QTY a whole number from 1 to 1000000"
    )


# -- NDJSON ------------------------------------------------------------------------------------


def test_ndjson_skips_blank_lines_and_counts_them() -> None:
    data = b"\n" + ndjson(order_obj(id="a")) + b"  \t\r\n\r\n" + ndjson(order_obj(id="b"))
    results = read(data, "ndjson")
    assert [(r.line, r.order.id) for r in results] == [(2, "a"), (5, "b")]  # type: ignore[union-attr]


def test_ndjson_bom_and_crlf() -> None:
    data = (
        b"\xef\xbb\xbf" + orjson.dumps(order_obj()) + b"\r\n" + orjson.dumps(order_obj()) + b"\r\n"
    )
    assert orders(read(data, "ndjson")) == [GOOD, GOOD]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "malformed JSON: "),
        (b'{"id": "A1",', "malformed JSON: "),
        (b'{"a": NaN}', "malformed JSON: "),
        (b"{} {}", "malformed JSON: "),
        (b"[1, 2]", "expected one JSON object per line, got array"),
        (b"42", "expected one JSON object per line, got number"),
        (b'"order"', "expected one JSON object per line, got string"),
        (b"null", "expected one JSON object per line, got null"),
        (b"true", "expected one JSON object per line, got boolean"),
        (b'{"customer_id": "caf\xe9"}', "line is not valid UTF-8 (byte 0xe9 at column 21)"),
        (b"\xff", "line is not valid UTF-8 (byte 0xff at column 1)"),
    ],
)
def test_ndjson_bad_lines_do_not_stop_the_file(line: bytes, reason: str) -> None:
    data = ndjson(order_obj(id="a")) + line + b"\n" + ndjson(order_obj(id="b"))
    results = read(data, "ndjson")
    assert [o.id for o in orders(results)] == ["a", "b"]
    [error] = errors(results)
    assert error.line == 2
    assert error.reason.startswith(reason)


def test_ndjson_utf8_column_counts_characters() -> None:
    data = '{"customer_id": "é🙂'.encode() + b"\xff" + b'"}\n'
    assert only_error(read(data, "ndjson")).reason.endswith("(byte 0xff at column 20)")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("data", [b"", b"\n", b"  \r\n\t\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"])
def test_empty_file_is_one_error(fmt: Format, data: bytes) -> None:
    error = only_error(read(data, fmt))
    assert (error.source, error.line, error.reason) == ("in", 1, "file is empty")


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("csv", b"customer_id,product_id,quantity\r\n"),
        ("csv", b"customer,sku,qty\n,,\n\n"),
        ("json", b"[]"),
        ("json", b"\xef\xbb\xbf [ \r\n ]\r\n"),
    ],
)
def test_no_orders_is_one_error(fmt: Format, data: bytes) -> None:
    error = only_error(read(data, fmt))
    assert (error.line, error.reason) == (1, "no orders in file")


def test_a_huge_line_is_reported_and_skipped() -> None:
    data = ndjson(order_obj(id="a")) + b"x" * (9 * 2**20) + b"\n" + ndjson(order_obj(id="b"))
    results = read(data, "ndjson")
    assert [o.id for o in orders(results)] == ["a", "b"]
    assert [(e.line, e.reason) for e in errors(results)] == [(2, "line is longer than 8 MiB")]


# -- JSON ---------------------------------------------------------------------------------------


def test_json_array_elements_report_the_line_they_start_on() -> None:
    data = (
        b'[\n  {"id": "a", "customer_id": "c",\n   "items": [{"product_id": "p", "quantity": 1}]},'
        b'\n\n  {"id": "b",\n   "customer_id": "c", "items": [{"product_id": "p", "quantity": 1}]}'
        b"\n]\n"
    )
    results = read(data, "json")
    assert [(r.line, r.order.id) for r in results] == [(2, "a"), (5, "b")]  # type: ignore[union-attr]


def test_json_single_object_is_one_order() -> None:
    data = b"\xef\xbb\xbf\r\n\r\n" + json.dumps(order_obj(), indent=2).encode().replace(
        b"\n", b"\r\n"
    )
    results = read(data, "json")
    assert [(r.line, r.order) for r in results] == [(3, GOOD)]  # type: ignore[union-attr]


def test_json_element_that_is_not_an_object() -> None:
    data = b'[\n"A1",\n' + orjson.dumps(order_obj()) + b",\n[],\nnull]"
    results = read(data, "json")
    assert orders(results) == [GOOD]
    assert [(e.line, e.reason) for e in errors(results)] == [
        (2, "expected an order object, got string"),
        (4, "expected an order object, got array"),
        (5, "expected an order object, got null"),
    ]


@pytest.mark.parametrize(
    ("tail", "line", "reason"),
    [
        (b',\n{"id": "b", "customer_id" "c"}]', 3, "malformed JSON: Expecting ':' delimiter"),
        (b",\n\n  ]", 4, "malformed JSON: trailing comma before ']'"),
        (b"\n\n", 4, "malformed JSON: the array is not closed"),
        (b",\n\n", 4, "malformed JSON: the array is not closed"),
        (b'\n{"id": "b"}]', 3, "malformed JSON: expected ',' or ']' after the value, got '{'"),
        (
            b',\n{"id": NaN}, ' + orjson.dumps(order_obj()) + b"]",
            3,
            "malformed JSON: NaN is not valid JSON",
        ),
        (b',\n{"id": -Infinity}]', 3, "malformed JSON: -Infinity is not valid JSON"),
        (b",\n" + b"[" * 100_000 + b"]" * 100_000 + b"]", 3, "malformed JSON: nested too deeply"),
        (
            b',\n{"id": "caf\xc3\xa9 \xff", "x": 1}]',
            3,
            "line is not valid UTF-8 (byte 0xff at column 14)",
        ),
        (b"]\n\n]", 4, "malformed JSON: unexpected data after the top-level value"),
        (b"]\n\xff", 3, "line is not valid UTF-8 (byte 0xff at column 1)"),
        (b'\n, "unterminated', 3, "malformed JSON: Unterminated string"),
        (b',\n{"id": "a\nb"}]', 3, "malformed JSON: Invalid control character"),
    ],
)
def test_malformed_json_stops_but_keeps_what_came_before(
    tail: bytes, line: int, reason: str
) -> None:
    data = b"[\n" + orjson.dumps(order_obj(id="a")) + tail
    results = read(data, "json")
    assert [o.id for o in orders(results)] == ["a"]
    assert [(e.line, e.reason[: len(reason)]) for e in errors(results)] == [(line, reason)]
    assert results[-1] is errors(results)[0]  # nothing after a malformed spot


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"42", "expected a JSON array of orders or one order object, got number"),
        (b'\n"orders"', "expected a JSON array of orders or one order object, got string"),
        (b"nope", "malformed JSON: Expecting value"),
        (b"\xff[]", "line is not valid UTF-8 (byte 0xff at column 1)"),
    ],
)
def test_json_top_level_that_is_no_order(data: bytes, reason: str) -> None:
    assert only_error(read(data, "json")).reason == reason


def test_json_objects_one_per_line_get_a_hint() -> None:
    results = read(ndjson(order_obj(), order_obj()), "json")
    assert orders(results) == [GOOD]
    assert errors(results)[0].line == 2
    assert "use --format ndjson" in errors(results)[0].reason


def test_json_elements_split_across_reads() -> None:
    """Numbers, strings and multi-byte characters cut by the read boundary still decode."""
    objs = [
        order_obj(id=f"é{n}🙂", items=[{"product_id": "p", "quantity": 10 ** (n % 7)}])
        for n in range(40)
    ]
    data = json.dumps(objs, indent=1, ensure_ascii=False).encode()
    for size in (1, 2, 3, 5, 64):
        got = read(io.BufferedReader(Trickle(data, size), buffer_size=size), "json")
        assert orders(got) == orders(read(data, "json"))
        assert len(got) == 40


def test_json_large_array_beyond_one_chunk() -> None:
    objs = [order_obj(id=f"o{n}", notes="n" * (n % 300)) for n in range(2000)]
    data = b"[\n" + b",\n".join(orjson.dumps(o) for o in objs) + b"\n]"
    results = read(data, "json")
    assert [r.line for r in results] == list(range(2, 2002))
    assert [o.id for o in orders(results)] == [f"o{n}" for n in range(2000)]


# -- CSV -------------------------------------------------------------------------------------


def csv_read(text: str, **kwargs: Any) -> list[ParsedOrder | RowError]:
    return read(text.encode(), "csv", **kwargs)


def test_csv_rows_sharing_an_order_id_form_one_order() -> None:
    results = csv_read(
        "order_id,customer_id,product_id,quantity,notes\n"
        "A,ada,KB-01,1,\n"
        "B,bob,MS-02,2,gift\n"
        "A,ada,MS-02,3,leave at door\n"
        "A,ada,KB-01,1,\n"
    )
    assert results == [
        ParsedOrder(
            Order(
                "A",
                "ada",
                (LineItem("KB-01", 1), LineItem("MS-02", 3), LineItem("KB-01", 1)),
                "leave at door",
            ),
            2,
        ),
        ParsedOrder(Order("B", "bob", (LineItem("MS-02", 2),), "gift"), 3),
    ]


@pytest.mark.parametrize(
    "header",
    [
        "order_id,customer_id,product_id,quantity",
        "orderId,customerId,productId,qty",
        "ID,Customer,SKU,Quantity",
        " id , CUSTOMER , Product , QTY ",
    ],
)
def test_csv_header_synonyms(header: str) -> None:
    assert orders(csv_read(f"{header}\nA1,ada,KB-01,2\n")) == [GOOD]


def test_csv_columns_in_any_order_and_extra_columns_ignored() -> None:
    text = "qty,colour,customer_id,order_id,sku\n2,red,ada,A1,KB-01\n"
    assert orders(csv_read(text)) == [GOOD]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("order_id,customer_id,product_id", "missing column quantity; the header has"),
        ("order_id,product,qty", "missing column customer_id;"),
        ("a,b", "missing columns customer_id, product_id, quantity; the header has 'a', 'b'"),
        ("customer_id;product_id;quantity", "(fields must be separated by commas)"),
        ("customer,customer_id,sku,qty", "columns 'customer' and 'customer_id' both give"),
    ],
)
def test_csv_missing_columns_is_one_error(header: str, reason: str) -> None:
    error = only_error(csv_read(f"{header}\nA1,ada,KB-01,2\nA2,bob,KB-01,1\n"))
    assert error.line == 1
    assert reason in error.reason


def test_csv_bom_crlf_trimmed_quantity_and_quoted_newlines() -> None:
    data = (
        b"\xef\xbb\xbforder_id,customer_id,product_id,quantity,notes\r\n"
        b'A1,ada,KB-01, 2 ,"two\r\nlines"\r\n'
        b'"B\r\n2","bo,b","x""y",1,\r\n'
        b"C,carl,Z,0,\r\n"
    )
    results = read(data, "csv")
    assert orders(results) == [
        Order("A1", "ada", (LineItem("KB-01", 2),), "two\r\nlines"),
        Order("B\r\n2", "bo,b", (LineItem('x"y', 1),)),
    ]
    assert [r.line for r in results if isinstance(r, ParsedOrder)] == [2, 4]
    assert [(e.line, e.reason) for e in errors(results)] == [(6, f"order 'C': {RULE}, got 0")]


def test_csv_blank_order_id_or_no_column_makes_one_line_orders() -> None:
    results = csv_read("order_id,customer_id,product_id,quantity\n,ada,KB-01,2\n  ,ada,KB-01,2\n")
    assert [o.id for o in orders(results)] == ["gen-1", "gen-2"]
    results = csv_read("customer_id,product_id,quantity\nada,KB-01,2\nada,KB-01,2\n")
    assert orders(results) == [
        Order("gen-1", "ada", (LineItem("KB-01", 2),)),
        Order("gen-2", "ada", (LineItem("KB-01", 2),)),
    ]


def test_csv_orders_come_out_in_file_order() -> None:
    text = "order_id,customer_id,product_id,quantity\nA,a,p,1\n,b,p,1\nC,c,p,1\nA,a,q,1\n"
    assert [o.id for o in orders(csv_read(text))] == ["A", "gen-1", "C"]


def test_csv_customer_conflict_refuses_the_whole_order() -> None:
    results = csv_read(
        "order_id,customer_id,product_id,quantity\nX,a,p,1\nY,y,p,1\nX,b,q,1\nX,a,r,1\nX,c,r,1\n"
    )
    assert [o.id for o in orders(results)] == ["Y"]
    assert [(e.line, e.reason, e.order_id) for e in errors(results)] == [
        (4, "order 'X': customer 'b' differs from 'a' given at line 2; order refused", "X")
    ]


def test_csv_notes_conflict_refuses_the_order() -> None:
    text = "order_id,customer_id,product_id,quantity,notes\nX,a,p,1,one\nX,a,q,1,\nX,a,r,1,two\n"
    [error] = csv_read(text)
    assert (error.line, error.reason) == (  # type: ignore[union-attr]
        4,
        "order 'X': notes differ from those on the order's earlier rows; order refused",
    )


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("A,a,p,1.5", f"order 'A': {RULE}, got 1.5"),
        ("A,a,p,three", f"order 'A': {RULE}, got three"),
        ("A,a,p,", f"order 'A': {RULE}, got an empty field"),
        ("A,a,p,-1", f"order 'A': {RULE}, got -1"),
        ("A,a,p,3.0", f"order 'A': {RULE}, got 3.0"),
        ("A,a,p,1000001", f"order 'A': {RULE}, got 1000001"),
        ("A,,p,1", "order 'A': customer_id must not be empty"),
        ("A,a, ,1", "order 'A': product_id must not be empty"),
        (f"A,{'c' * 201},p,1", "order 'A': customer_id is longer than 200 characters"),
        ("A,a,p", "order 'A': expected 4 fields, got 3"),
        ("A,a,p,1,extra", "order 'A': expected 4 fields, got 5"),
        ("A,a,p\xff,1", "order 'A': line is not valid UTF-8 (byte 0xff at column 6)"),
    ],
)
def test_csv_bad_row_refuses_its_order_and_keeps_the_rest(row: str, reason: str) -> None:
    text = f"order_id,customer_id,product_id,quantity\nB,b,p,1\nA,a,p,1\n{row}\nA,a,q,2\nC,c,p,1\n"
    data = text.encode("latin-1")  # "\xff" becomes a byte that is not UTF-8
    results = read(data, "csv")
    assert [o.id for o in orders(results)] == ["B", "C"]
    assert [(e.line, e.reason, e.order_id) for e in errors(results)] == [(4, reason, "A")]


def test_csv_bad_row_without_order_id_drops_only_itself() -> None:
    text = "customer_id,product_id,quantity\na,p,1\nb,p,0\nc,p,1\n"
    results = csv_read(text)
    assert [o.customer_id for o in orders(results)] == ["a", "c"]
    assert [(e.line, e.order_id) for e in errors(results)] == [(3, None)]


def test_csv_long_order_id_is_refused() -> None:
    oid = "x" * 201
    error = only_error(csv_read(f"order_id,customer_id,product_id,quantity\n{oid},a,p,1\n"))
    assert error.line == 2
    assert error.reason.endswith("order_id is longer than 200 characters")


def test_csv_undecodable_line_keeps_line_numbers_inside_quotes() -> None:
    data = (
        b'order_id,customer_id,product_id,quantity,notes\nA,a,p,1,"multi\n\xff line"\n'
        b'B,b,p,1,"x\ny"\nC,c,p,1,\n'
    )
    results = read(data, "csv")
    assert [(r.line, r.order.id) for r in results if isinstance(r, ParsedOrder)] == [
        (4, "B"),
        (6, "C"),
    ]
    assert [(e.line, e.order_id) for e in errors(results)] == [(3, "A")]


def test_csv_malformed_quoting_is_reported() -> None:
    data = b"customer_id,product_id,quantity\na,p\rq,1\nb,p,1\n"
    results = read(data, "csv")
    assert [o.customer_id for o in orders(results)] == ["b"]
    [error] = errors(results)
    assert (error.line, error.reason[:15]) == (2, "malformed CSV: ")


def test_csv_blank_rows_are_skipped() -> None:
    text = "\ncustomer_id,product_id,quantity\n\n,,\n a ,p,1\n , , \n"
    results = csv_read(text)
    assert [(r.line, r.order.customer_id) for r in results] == [(5, " a ")]  # type: ignore[union-attr]


def test_csv_window_emits_the_oldest_open_order() -> None:
    text = "order_id,customer_id,product_id,quantity\nA,a,p,1\nB,b,p,1\nC,c,p,1\nA,a,q,1\n"
    within = orders(csv_read(text, csv_window=3))
    assert [(o.id, len(o.items)) for o in within] == [("A", 2), ("B", 1), ("C", 1)]
    beyond = orders(csv_read(text, csv_window=2))  # A was emitted before its last row
    assert [(o.id, len(o.items)) for o in beyond] == [("A", 1), ("B", 1), ("C", 1), ("A", 1)]


def test_csv_window_is_streamed() -> None:
    rows = (f"O{n},c,p,1\n".encode() for n in range(1_000_000))
    stream = io.BufferedReader(Generated(itertools.chain([b"order_id,customer,sku,qty\n"], rows)))
    results = read_orders(stream, "csv", "in", csv_window=10)
    first = [next(results) for _ in range(5)]
    assert [r.order.id for r in first] == ["O0", "O1", "O2", "O3", "O4"]  # type: ignore[union-attr]
    assert stream.raw.served < 100_000


def test_csv_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="csv_window"):
        read_orders(io.BytesIO(b""), "csv", "in", csv_window=0)


# -- streaming -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_readers_are_lazy(fmt: Format) -> None:
    """200,000 orders, made on demand: the first five arrive after reading a few KiB."""
    lines: Iterator[bytes] = (orjson.dumps(order_obj(id=f"o{n}")) + b"\n" for n in range(200_000))
    if fmt == "json":
        lines = itertools.chain([b"["], (b"," * (n > 0) + line for n, line in enumerate(lines)))
    raw = Generated(lines)
    results = read_orders(io.BufferedReader(raw), fmt, "big", id_factory=counter())
    assert raw.served == 0
    first = list(itertools.islice(results, 5))
    assert [r.order.id for r in first] == [f"o{n}" for n in range(5)]  # type: ignore[union-attr]
    assert raw.served < 200_000  # the whole stream is about 14 MB


def test_a_stream_that_fails_later_is_not_read_early() -> None:
    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.body = ndjson(*(order_obj(id=f"o{n}") for n in range(20)))

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if not self.body:
                raise OSError("disk on fire")
            chunk, self.body = self.body[: len(buffer)], self.body[len(buffer) :]
            buffer[: len(chunk)] = chunk
            return len(chunk)

    results = read_orders(io.BufferedReader(Failing()), "ndjson", "in")
    assert len(list(itertools.islice(results, 5))) == 5
    with pytest.raises(OSError, match="disk on fire"):
        list(results)


@pytest.mark.parametrize("fmt", FORMATS)
def test_memory_stays_flat_over_a_long_stream(fmt: Format) -> None:
    """Reading 10,000 orders holds about as much as reading a few (CSV: its window)."""
    count = 10_000
    if fmt == "csv":
        rows = (f"O{n},c,p,1\nO{n},c,q,2\n".encode() for n in range(count))
        parts: Iterator[bytes] = itertools.chain([b"order_id,customer,sku,qty\n"], rows)
    else:
        lines = (orjson.dumps(order_obj(id=f"o{n}")) + b"\n" for n in range(count))
        parts = (
            lines
            if fmt == "ndjson"
            else itertools.chain(
                [b"["], (b"," * (n > 0) + line for n, line in enumerate(lines)), [b"]"]
            )
        )
    stream = io.BufferedReader(Generated(parts))
    tracemalloc.start()
    try:
        seen = sum(1 for _ in read_orders(stream, fmt, "big", csv_window=100))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak < 2**20, f"{peak} bytes"


# -- properties ----------------------------------------------------------------------------

# any text an id may be: no lone surrogates, no NUL (both refused), not blank
TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=12
).filter(str.strip)
ITEMS = st.lists(st.builds(LineItem, TEXT, st.integers(1, 1_000_000)), min_size=1, max_size=4).map(
    tuple
)
NOTES = st.none() | TEXT


@st.composite
def order_lists(draw: st.DrawFn) -> list[Order]:
    ids = draw(st.lists(TEXT, max_size=6, unique=True))
    return [Order(oid, draw(TEXT), draw(ITEMS), draw(NOTES)) for oid in ids]


def to_csv(
    given: list[Order], rng: random.Random, newline: str, quote_all: bool
) -> tuple[bytes, list[int]]:
    """The orders as CSV rows in shuffled order; also the line each order starts on.

    With "\n" line ends Python's writer would leave a lone "\r" unquoted (a broken
    file), so those files quote every field.
    """
    rows = [(o, i) for o in given for i in o.items]
    rng.shuffle(rows)
    out = io.StringIO()
    quote_all = quote_all or newline == "\n"
    writer = csv.writer(
        out, lineterminator=newline, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    )
    writer.writerow(["order_id", "customer_id", "product_id", "quantity", "notes"])
    starts: dict[str, int] = {}
    for order, item in rows:
        starts.setdefault(order.id, out.getvalue().count("\n") + 1)
        writer.writerow(
            [order.id, order.customer_id, item.product_id, item.quantity, order.notes or ""]
        )
    return out.getvalue().encode(), [starts[o.id] for o in given]


@given(
    order_lists(),
    st.randoms(use_true_random=False),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.booleans(),
    st.sampled_from([1, 3, 4096]),
)
@settings(max_examples=150, deadline=None)
def test_roundtrip_csv(
    given_orders: list[Order],
    rng: random.Random,
    newline: str,
    quote_all: bool,
    bom: bool,
    size: int,
) -> None:
    data, starts = to_csv(given_orders, rng, newline, quote_all)
    data = b"\xef\xbb\xbf" * bom + data
    results = read(io.BufferedReader(Trickle(data, size), buffer_size=size), "csv")
    if not given_orders:
        assert errors(results)[0].reason == "no orders in file"
        return
    first = sorted(range(len(given_orders)), key=starts.__getitem__)
    expected = [given_orders[n] for n in first]
    got = [r for r in results if isinstance(r, ParsedOrder)]
    assert not errors(results)
    # rows were shuffled: compare each order's items as a multiset
    assert [(o.order.id, o.order.customer_id, o.order.notes) for o in got] == [
        (o.id, o.customer_id, o.notes) for o in expected
    ]
    assert [sorted(o.order.items, key=repr) for o in got] == [
        sorted(o.items, key=repr) for o in expected
    ]
    assert [o.line for o in got] == sorted(starts)


@given(
    order_lists(),
    st.sampled_from([None, 1, 2]),
    st.booleans(),
    st.booleans(),
    st.sampled_from([1, 7, 4096]),
)
@settings(max_examples=150, deadline=None)
def test_roundtrip_json(
    given_orders: list[Order], indent: int | None, ascii_only: bool, bom: bool, size: int
) -> None:
    dicts = [o.to_dict() for o in given_orders]
    data = (
        b"\xef\xbb\xbf" * bom + json.dumps(dicts, indent=indent, ensure_ascii=ascii_only).encode()
    )
    results = read(io.BufferedReader(Trickle(data, size), buffer_size=size), "json")
    if given_orders:
        assert not errors(results)
        assert orders(results) == given_orders
    else:
        assert only_error(results).reason == "no orders in file"


@given(order_lists(), st.booleans())
@settings(max_examples=150, deadline=None)
def test_roundtrip_ndjson(given_orders: list[Order], crlf: bool) -> None:
    end = b"\r\n" if crlf else b"\n"
    data = b"".join(orjson.dumps(o.to_dict()) + end for o in given_orders)
    results = read(data, "ndjson")
    if given_orders:
        assert results == [ParsedOrder(o, n) for n, o in enumerate(given_orders, 1)]
    else:
        assert only_error(results).reason == "file is empty"


TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b'"',
    b"\\",
    b"\n",
    b"\r\n",
    b"\r",
    b" ",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\xc3",
    b"\xa9",
    b"1",
    b"-",
    b"1.5",
    b"1e9",
    b"true",
    b"null",
    b"NaN",
    b'"customer_id"',
    b'"items"',
    b'"product_id"',
    b'"quantity"',
    b'"id"',
    b"a",
    b"\x00",
    b"order_id,customer_id,product_id,quantity\n",
    b'{"product_id": "p", "quantity": 1}',
    b'"c"',
    b"A,a,p,1\n",
    b'"x\ny"',
]
FUZZ = st.binary(max_size=300) | st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join)


@given(FUZZ, st.sampled_from(FORMATS), st.sampled_from([1, 5, 4096]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_never_raises(data: bytes, fmt: Format, size: int) -> None:
    stream = io.BufferedReader(Trickle(data, size), buffer_size=size)
    results = read(stream, fmt, csv_window=2)
    assert results
    for result in results:
        if isinstance(result, RowError):
            assert 1 <= result.line <= data.count(b"\n") + 1
            assert result.reason
        else:
            assert isinstance(result, ParsedOrder)
            assert order_from_obj(result.order.to_dict(), "x", 1) == result.order


@pytest.mark.parametrize("field", ["id", "customer_id", "product_id"])
def test_nul_in_any_id_is_refused(field: str) -> None:
    order: dict[str, Any] = {
        "id": "a",
        "customer_id": "c",
        "items": [{"product_id": "p", "quantity": 1}],
    }
    if field == "product_id":
        order["items"][0]["product_id"] = "p\x00q"
    else:
        order[field] = "x\x00y"
    with pytest.raises(InputError, match="NUL"):
        order_from_obj(order, "in", 1)
