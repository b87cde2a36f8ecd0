"""Streaming order parsers: CSV, JSON (an array of orders or one order) and NDJSON.

Order files can be larger than memory, so every reader streams: one line (or one
JSON array element) at a time, each order yielded as soon as it is complete.
Bad input never raises: it becomes a :class:`RowError` naming the physical line,
and parsing goes on, so one typo does not cost the user the rest of the file.

CSV has one row per line item; rows sharing an ``order_id`` form one order. They
need not be adjacent, but must lie within ``csv_window`` orders of each other:
when more orders are open, the oldest is emitted, and a later row with its id
starts a second order with that id (which intake treats as a resubmission).
A bad row refuses its whole order: the error is reported at that row and the
order's other rows are dropped, so a partial order is never submitted.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, BinaryIO, Literal, NoReturn

import orjson

from realorders.domain import MAX_QUANTITY, LineItem, Order
from realorders.errors import InputError
from realorders.ids import new_id

__all__ = [
    "Format",
    "ParsedOrder",
    "RowError",
    "detect_format",
    "order_from_obj",
    "parse_item_spec",
    "parse_order_json",
    "read_orders",
    "validate_quantity",
]

Format = Literal["csv", "json", "ndjson"]

MAX_ID_LENGTH = 200
_FORMATS: dict[str, Format] = {"csv": "csv", "json": "json", "ndjson": "ndjson", "jsonl": "ndjson"}
_QUANTITY_RULE = f"quantity must be a whole number from 1 to {MAX_QUANTITY}"
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
_DIGITS = re.compile(r"[0-9]+")
_JSON_TOKEN = re.compile(r"[^ \t\n\r]")  # anything but JSON whitespace
_BOM = b"\xef\xbb\xbf"
_CHUNK = 64 * 1024
_MAX_LINE = 8 * 2**20  # bytes: a longer line is reported and skipped, not buffered
_MAX_JSON_VALUE = 64 * 2**20  # characters buffered for one JSON value
_CSV_COLUMNS = {
    **dict.fromkeys(["order_id", "orderid", "id"], "order_id"),
    **dict.fromkeys(["customer_id", "customerid", "customer"], "customer_id"),
    **dict.fromkeys(["product_id", "productid", "sku", "product"], "product_id"),
    **dict.fromkeys(["quantity", "qty"], "quantity"),
    "notes": "notes",
}


@dataclass(frozen=True, slots=True)
class RowError:
    """One piece of input that was refused; parsing carries on after it."""

    source: str
    line: int
    reason: str
    order_id: str | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "reason": self.reason,
            "order_id": self.order_id,
        }


@dataclass(frozen=True, slots=True)
class ParsedOrder:
    """A valid order and the line it starts on (for messages about it later)."""

    order: Order
    line: int


def detect_format(path: str | None, explicit: str | None) -> Format:
    """The input format: ``explicit`` wins, else the file extension; never a guess."""
    if explicit is not None:
        fmt = _FORMATS.get(explicit.strip().lower())
        if fmt is None:
            raise InputError(f"unknown format {explicit!r}; use csv, json or ndjson")
        return fmt
    name = "standard input" if path is None or path == "-" else path
    fmt = None if path is None else _FORMATS.get(PurePath(path).suffix.lower().lstrip("."))
    if fmt is None:
        raise InputError(f"cannot tell the format of {name}; pass --format csv|json|ndjson")
    return fmt


# -- validation -------------------------------------------------------------------------


def validate_quantity(value: object) -> int:
    """The one quantity rule, for JSON numbers and for text (CSV fields, ``--item``).

    Text must be plain digits. JSON callers refuse strings before calling this:
    JSON is typed, so ``"3"`` there is a producer bug, while CSV fields are all text.
    """
    if isinstance(value, str):
        text = value.strip()
        short = _DIGITS.fullmatch(text) and len(text.lstrip("0")) <= len(str(MAX_QUANTITY))
        if short and 1 <= int(text) <= MAX_QUANTITY:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_QUANTITY:
        return value
    if isinstance(value, str):
        shown = _clip(value.strip()) if value.strip() else "an empty field"
    else:
        shown = _json_text(value)
    raise ValueError(f"{_QUANTITY_RULE}, got {shown}")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_text(value: object) -> str:
    """A JSON value as the user wrote it (near enough), for messages."""
    try:
        return _clip(repr(value) if isinstance(value, float) else orjson.dumps(value).decode())
    except TypeError:  # ints beyond 64 bits, lone surrogates
        return _clip(repr(value))


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "number")


def _check_text(value: str, name: str, limit: int | None = None, blank_ok: bool = False) -> str:
    """Ids are stored verbatim; refuse only what cannot be one."""
    if not blank_ok and not value.strip():
        raise ValueError(f"{name} must not be empty")
    if limit is not None and len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: stdlib json lets "\ud800" through
        raise ValueError(f"{name} contains an unpaired surrogate escape") from None
    return value


def _pick(obj: dict[str, Any], *keys: str) -> tuple[str, object]:
    """The first of ``keys`` present (snake_case or the older camelCase), refusing a clash."""
    found = [(key, obj[key]) for key in keys if key in obj]
    if any(value != found[0][1] for _, value in found):
        raise ValueError(f"{found[0][0]} and {found[1][0]} disagree")
    return found[0] if found else (keys[0], None)


def _text(obj: dict[str, Any], *keys: str, limit: int | None = None) -> str:
    key, value = _pick(obj, *keys)
    if value is None:
        raise ValueError(f"{key} is missing")
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {_json_text(value)}")
    return _check_text(value, key, limit)


def _order(obj: object, id_factory: Callable[[], str]) -> Order:
    if not isinstance(obj, dict):
        raise ValueError(f"expected an order object, got {_json_type(obj)}")
    given = _pick(obj, "id", "order_id", "orderId")[1] is not None  # null: make one
    order_id = _text(obj, "id", "order_id", "orderId", limit=MAX_ID_LENGTH) if given else None
    customer = _text(obj, "customer_id", "customerId", limit=MAX_ID_LENGTH)
    raw_items = obj.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        got = "nothing" if raw_items is None else _json_text(raw_items)
        raise ValueError(f"items must be a non-empty list of objects, got {got}")
    items = tuple(_item(raw, number) for number, raw in enumerate(raw_items, 1))
    notes = obj.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise ValueError(f"notes must be a string or null, got {_json_text(notes)}")
    if notes is not None:
        _check_text(notes, "notes", blank_ok=True)
    return Order(order_id or id_factory(), customer, items, notes)


def _item(raw: object, number: int) -> LineItem:
    try:
        if not isinstance(raw, dict):
            raise ValueError(f"expected an object, got {_json_type(raw)}")
        product = _text(raw, "product_id", "productId")
        if "quantity" not in raw:
            raise ValueError("quantity is missing")
        quantity = raw["quantity"]
        if isinstance(quantity, str):  # JSON is typed: "3" is not a number
            raise ValueError(f"{_QUANTITY_RULE}, got {_json_text(quantity)}")
        return LineItem(product, validate_quantity(quantity))
    except ValueError as exc:
        raise ValueError(f"item {number}: {exc}") from None


def order_from_obj(
    obj: object, source: str, line: int, id_factory: Callable[[], str] = new_id
) -> Order:
    """Validate one decoded JSON value into an :class:`Order` (``InputError`` if bad)."""
    try:
        return _order(obj, id_factory)
    except ValueError as exc:
        raise InputError(str(exc), source, line) from None


def _parsed(
    obj: object, source: str, line: int, id_factory: Callable[[], str]
) -> ParsedOrder | RowError:
    try:
        return ParsedOrder(_order(obj, id_factory), line)
    except ValueError as exc:
        given = obj if isinstance(obj, dict) else {}
        oid = next((given[key] for key in ("id", "order_id", "orderId") if key in given), None)
        return RowError(source, line, str(exc), oid if isinstance(oid, str) and oid else None)


def _bad_utf8(byte: int, column: int) -> str:
    return f"line is not valid UTF-8 (byte 0x{byte:02x} at column {column})"


def parse_order_json(data: bytes, source: str = "<stdin>") -> Order:
    """Exactly one JSON order object (``realorders submit -``)."""
    data = data.removeprefix(_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8")) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(_bad_utf8(data[exc.start], column), source, line) from None
    if not text.strip():
        raise InputError("no order given; expected one JSON object", source, 1)
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        reason = "expected exactly one JSON object" if "after document" in exc.msg else exc.msg
        raise InputError(f"malformed JSON: {reason}", source, exc.lineno) from None
    line = text.count("\n", 0, len(text) - len(text.lstrip())) + 1
    if not isinstance(obj, dict):
        raise InputError(f"expected one JSON order object, got {_json_type(obj)}", source, line)
    return order_from_obj(obj, source, line)


def parse_item_spec(spec: str) -> LineItem:
    """``PRODUCT=QTY`` from ``submit --item``; split on the last ``=`` so ids may hold one."""
    product, sep, quantity = spec.rpartition("=")
    try:
        if not sep:
            raise ValueError(spec)
        return LineItem(_check_text(product, "product"), validate_quantity(quantity))
    except ValueError:
        raise InputError(
            f"--item {spec!r}: expected PRODUCT=QTY with QTY a whole number from 1 to "
            f"{MAX_QUANTITY}"
        ) from None


# -- reading ----------------------------------------------------------------------------


def read_orders(
    stream: BinaryIO,
    fmt: Format,
    source: str,
    *,
    id_factory: Callable[[], str] = new_id,
    csv_window: int = 10_000,
) -> Iterator[ParsedOrder | RowError]:
    """Stream the orders in ``stream``, with a :class:`RowError` for each bad piece.

    Memory stays constant whatever the file size (bar ``csv_window`` open CSV
    orders). An unknown ``fmt`` raises at once; bad input never raises (only the
    stream's own I/O errors propagate).
    """
    if fmt == "csv":
        if csv_window < 1:
            raise ValueError("csv_window must be at least 1")
        return _read_csv(stream, source, id_factory, csv_window)
    if fmt == "json":
        return _read_json(stream, source, id_factory)
    if fmt == "ndjson":
        return _read_ndjson(stream, source, id_factory)
    raise InputError(f"unknown format {fmt!r}; use csv, json or ndjson")


def _lines(stream: BinaryIO) -> Iterator[tuple[int, str, str | None]]:
    """(number, text, problem) per physical line; text keeps its line end.

    A line that is not UTF-8 comes back decoded with replacement characters and a
    problem, so CSV keeps its place in the file (quotes survive replacement).
    """
    number = 0
    while raw := stream.readline(_MAX_LINE + 1):
        number += 1
        raw = raw.removeprefix(_BOM) if number == 1 else raw
        if len(raw) > _MAX_LINE and not raw.endswith(b"\n"):
            while (rest := stream.readline(_CHUNK)) and not rest.endswith(b"\n"):
                pass
            yield number, "\n", f"line is longer than {_MAX_LINE // 2**20} MiB"
            continue
        try:
            text, problem = raw.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            column = len(raw[: exc.start].decode("utf-8")) + 1
            text, problem = raw.decode("utf-8", "replace"), _bad_utf8(raw[exc.start], column)
        yield number, text, problem


def _read_ndjson(
    stream: BinaryIO, source: str, id_factory: Callable[[], str]
) -> Iterator[ParsedOrder | RowError]:
    seen = False
    for number, text, problem in _lines(stream):
        if problem is None and not text.strip():
            continue
        seen = True
        try:
            if problem is not None:
                raise ValueError(problem)
            obj = orjson.loads(text)
            if not isinstance(obj, dict):
                raise ValueError(f"expected one JSON object per line, got {_json_type(obj)}")
        except orjson.JSONDecodeError as exc:
            yield RowError(source, number, f"malformed JSON: {exc.msg} at column {exc.colno}")
        except ValueError as exc:
            yield RowError(source, number, str(exc))
        else:
            yield _parsed(obj, source, number, id_factory)
    if not seen:
        yield RowError(source, 1, "file is empty")


@dataclass(frozen=True, slots=True)
class _JsonValue:
    line: int
    value: object
    in_array: bool  # an element of a top-level array, not the top-level value itself


@dataclass(frozen=True, slots=True)
class _JsonProblem:  # the scanner stops after one
    line: int
    reason: str


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


class _JsonScanner:
    """A sliding window over a UTF-8 stream, decoding top-level array elements one by one.

    Only unconsumed text is buffered, so memory is bounded by the largest element.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.buf, self.pos, self.line = "", 0, 1  # self.line: line number at self.pos
        self.pending = b""  # an incomplete UTF-8 sequence at the end of the last chunk
        self.started = self.done = False  # done: no more text will come
        self.column = 0  # characters read since the last newline
        self.bad: _JsonProblem | None = None  # bytes that are not UTF-8 ended the text
        self.decoder = json.JSONDecoder(parse_constant=_no_constant)

    def more(self, size: int = _CHUNK) -> bool:
        """Append more text to the buffer; False when there is none."""
        while not self.done:
            chunk = self.stream.read(max(size, _CHUNK))
            data = self.pending + chunk
            self.pending, self.done, bad = b"", not chunk, None
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                text, bad = data[: exc.start].decode("utf-8"), data[exc.start]
                if chunk and exc.reason == "unexpected end of data":
                    self.pending, bad = data[exc.start :], None
            if text and not self.started:  # after decoding: reads may split the BOM
                text, self.started = text.removeprefix("\ufeff"), True
            newline = text.rfind("\n")
            self.column = len(text) - newline - 1 if newline >= 0 else self.column + len(text)
            self.buf, self.pos = self.buf[self.pos :] + text, 0
            if bad is not None:
                line = self.line + self.buf.count("\n")
                self.bad, self.done = _JsonProblem(line, _bad_utf8(bad, self.column + 1)), True
            if text:
                return True
        return False

    def advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def skip_ws(self) -> str | None:
        """The next non-whitespace character (not consumed), None at the end."""
        while not (token := _JSON_TOKEN.search(self.buf, self.pos)):
            self.advance(len(self.buf))
            if not self.more():
                return None
        self.advance(token.start())
        return self.buf[self.pos]

    def problem(self, reason: str, line: int | None = None) -> _JsonProblem:
        return _JsonProblem(self.line if line is None else line, f"malformed JSON: {reason}")

    def decode(self, in_array: bool) -> _JsonValue | _JsonProblem:
        start = self.line
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                line = self.line + self.buf.count("\n", self.pos, exc.pos)
                cut = exc.pos >= len(self.buf) - 16 or exc.msg.startswith("Unterminated")
                if cut and len(self.buf) - self.pos > _MAX_JSON_VALUE:
                    return _JsonProblem(start, f"JSON value over {_MAX_JSON_VALUE // 2**20} MiB")
                if cut and self.more(len(self.buf) - self.pos):
                    continue  # the value goes on in the next chunk
                reason = exc.msg.removesuffix(" at")  # stdlib appends the position
                return (self.bad if cut else None) or self.problem(reason, line)
            except ValueError as exc:  # NaN or Infinity, refused by _no_constant
                return self.problem(str(exc), start)
            except RecursionError:
                return self.problem("nested too deeply", start)
            if end < len(self.buf) or not self.more():  # else a number may go on
                self.advance(end)
                return _JsonValue(start, value, in_array)

    def values(self) -> Iterator[_JsonValue | _JsonProblem]:
        char = self.skip_ws()
        if char is None:
            yield self.bad or _JsonProblem(1, "file is empty")
            return
        in_array, item = char == "[", None
        if in_array:
            self.advance(self.pos + 1)
            char = self.skip_ws()
        while not in_array or char != "]":
            if char is None:
                yield self.bad or self.problem("the array is not closed")
                return
            item = self.decode(in_array)
            yield item
            if isinstance(item, _JsonProblem) or not in_array:
                break
            char = self.skip_ws()
            if char == ",":
                self.advance(self.pos + 1)
                if (char := self.skip_ws()) == "]":
                    yield self.problem("trailing comma before ']'")
                    return
            elif char not in ("]", None):
                yield self.problem(f"expected ',' or ']' after the value, got {char!r}")
                return
        else:
            self.advance(self.pos + 1)  # the closing bracket
        if isinstance(item, _JsonProblem):
            return
        char = self.skip_ws()
        if char is not None:
            hint = "; for one object per line use --format ndjson" if char == "{" else ""
            yield self.problem(f"unexpected data after the top-level value{hint}")
        elif self.bad:
            yield self.bad


def _json_values(stream: BinaryIO) -> Iterator[_JsonValue | _JsonProblem]:
    """The top-level JSON value, or each element of a top-level array, with its line."""
    return _JsonScanner(stream).values()


def _read_json(
    stream: BinaryIO, source: str, id_factory: Callable[[], str]
) -> Iterator[ParsedOrder | RowError]:
    found = False
    for item in _json_values(stream):
        found = True
        if isinstance(item, _JsonProblem):
            yield RowError(source, item.line, item.reason)
        elif not item.in_array and not isinstance(item.value, dict):
            got = _json_type(item.value)
            reason = f"expected a JSON array of orders or one order object, got {got}"
            yield RowError(source, item.line, reason)
        else:
            yield _parsed(item.value, source, item.line, id_factory)
    if not found:
        yield RowError(source, 1, "no orders in file")


# -- CSV --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Record:
    line: int  # physical line the record starts on
    fields: list[str]
    problems: list[tuple[int, str]]  # (line, reason); the record is unusable if any


def _csv_records(stream: BinaryIO) -> Iterator[_Record]:
    """CSV records with their physical line numbers; blank rows (Excel's ``,,,``) skipped."""
    problems: list[tuple[int, str]] = []

    def feed() -> Iterator[str]:
        for number, text, problem in _lines(stream):
            if problem is not None:
                problems.append((number, problem))
            yield text

    reader, last = csv.reader(feed()), 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader resumes at the next line
            fields = []
            problems.append((reader.line_num, f"malformed CSV: {exc}"))
        if problems or any(value.strip() for value in fields):
            yield _Record(last + 1, fields, problems[:])
        problems.clear()
        last = reader.line_num


def _csv_columns(header: list[str], synonyms: dict[str, str], *required: str) -> dict[str, int]:
    """Map canonical column names to their index; ``ValueError`` names what is missing."""
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = synonyms.get(name.strip().lower())
        if key in columns:
            raise ValueError(f"columns {header[columns[key]]!r} and {name!r} both give {key}")
        if key is not None:
            columns[key] = index
    if missing := [key for key in required if key not in columns]:
        separated = len(header) == 1 and any(sep in header[0] for sep in ";\t")
        hint = " (fields must be separated by commas)" if separated else ""
        raise ValueError(
            f"missing column{'s' * (len(missing) > 1)} {', '.join(missing)}; "
            f"the header has {', '.join(repr(_clip(name)) for name in header)}{hint}"
        )
    return columns


@dataclass(slots=True)
class _OpenOrder:
    id: str
    customer: str
    line: int
    items: list[LineItem] = field(default_factory=list)
    notes: str | None = None
    refused: bool = False


def _add_row(
    record: _Record,
    columns: dict[str, int],
    width: int,
    orders: dict[object, _OpenOrder],
    id_factory: Callable[[], str],
) -> tuple[str | None, list[tuple[int, str]]]:
    """Add one CSV row to its open order; return its order id and its problems."""
    fields, line, problems = record.fields, record.line, list(record.problems)
    at = columns.get("order_id")
    oid = fields[at] if at is not None and at < len(fields) else None
    garbled = problems and oid and "\ufffd" in oid  # from bytes that are not UTF-8
    oid = oid if oid and oid.strip() and not garbled else None  # blank: make one
    try:
        if len(fields) != width and not problems:
            raise ValueError(f"expected {width} fields, got {len(fields)}")
        if oid is not None:
            _check_text(oid, "order_id", MAX_ID_LENGTH)
        customer = _check_text(fields[columns["customer_id"]], "customer_id", MAX_ID_LENGTH)
        product = _check_text(fields[columns["product_id"]], "product_id")
        item = LineItem(product, validate_quantity(fields[columns["quantity"]]))
        notes = (fields[columns["notes"]] or None) if "notes" in columns else None
    except (ValueError, IndexError) as exc:
        problems = problems or [(line, str(exc))]
    entry = orders.get(oid) if oid is not None else None
    if problems:
        if oid is not None:
            orders.setdefault(oid, _OpenOrder(oid, "", line)).refused = True
    elif entry is None:
        orders[oid or object()] = _OpenOrder(oid or id_factory(), customer, line, [item], notes)
    elif entry.refused:
        pass  # reported at the row that refused it
    elif customer != entry.customer:
        entry.refused = True
        was = f"{_clip(entry.customer)!r} given at line {entry.line}"
        problems.append((line, f"customer {_clip(customer)!r} differs from {was}; order refused"))
    elif notes is not None and entry.notes not in (None, notes):
        entry.refused = True
        problems.append(
            (line, "notes differ from those on the order's earlier rows; order refused")
        )
    else:
        entry.items.append(item)
        entry.notes = entry.notes or notes
    return oid, problems


def _read_csv(
    stream: BinaryIO, source: str, id_factory: Callable[[], str], window: int
) -> Iterator[ParsedOrder | RowError]:
    records = _csv_records(stream)
    header = next(records, None)
    if header is None:
        yield RowError(source, 1, "file is empty")
        return
    for line, reason in header.problems:
        yield RowError(source, line, reason)
    try:
        columns = _csv_columns(header.fields, _CSV_COLUMNS, "customer_id", "product_id", "quantity")
    except ValueError as exc:
        yield RowError(source, header.line, str(exc))
        return
    orders: dict[object, _OpenOrder] = {}  # insertion-ordered: the oldest goes first
    rows = 0
    for record in records:
        rows += 1
        oid, problems = _add_row(record, columns, len(header.fields), orders, id_factory)
        about = "" if oid is None else f"order {_clip(oid)!r}: "
        for line, reason in problems:
            yield RowError(source, line, about + reason, oid)
        while len(orders) > window:
            yield from _emit(orders.pop(next(iter(orders))))
    for entry in orders.values():
        yield from _emit(entry)
    if not rows:
        yield RowError(source, header.line, "no orders in file")


def _emit(entry: _OpenOrder) -> Iterator[ParsedOrder]:
    if not entry.refused:
        order = Order(entry.id, entry.customer, tuple(entry.items), entry.notes)
        yield ParsedOrder(order, entry.line)
