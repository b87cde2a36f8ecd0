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

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, BinaryIO, Literal

from realorders._jsonstream import JsonProblem, JsonValue, json_document, json_values, ndjson_values
from realorders._textio import (
    Record,
    check_text,
    clip,
    csv_table,
    encodable,
    json_text,
    json_type,
    pick,
    plain,
    required_text,
)
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
    "plain_order",
    "read_orders",
    "validate_quantity",
]

Format = Literal["csv", "json", "ndjson"]

MAX_ID_LENGTH = 200
_FORMATS: dict[str, Format] = {"csv": "csv", "json": "json", "ndjson": "ndjson", "jsonl": "ndjson"}
_QUANTITY_RULE = f"quantity must be a whole number from 1 to {MAX_QUANTITY}"
_QUANTITY_DIGITS = len(str(MAX_QUANTITY))
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
        text = value.strip()  # ASCII digits only: int() would also take "٣", "+3" and "1_000"
        short = text.isascii() and text.isdigit() and len(text.lstrip("0")) <= _QUANTITY_DIGITS
        if short and 1 <= (number := int(text)) <= MAX_QUANTITY:
            return number
    elif isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_QUANTITY:
        return value
    if isinstance(value, str):
        shown = clip(value.strip()) if value.strip() else "an empty field"
    else:
        shown = json_text(value)
    raise ValueError(f"{_QUANTITY_RULE}, got {shown}")


def _plain_order(obj: dict[str, Any], id_factory: Callable[[], str]) -> Order | None:
    """The order if ``obj`` is the plain common case (the import hot path), else None.

    Snake_case keys, exact types, every rule met; anything else, and every refusal
    and its wording, is left to the full rules. ``id_factory`` is called only on success.
    """
    if "order_id" in obj or "orderId" in obj or "customerId" in obj:
        return None
    get = obj.get
    oid, customer, raw_items, notes = get("id"), get("customer_id"), get("items"), get("notes")
    if not (
        (oid is None or plain(oid, MAX_ID_LENGTH))
        and plain(customer, MAX_ID_LENGTH)
        and type(raw_items) is list
        and raw_items
        and (notes is None or (type(notes) is str and (notes.isascii() or encodable(notes))))
    ):
        return None
    items = []
    for raw in raw_items:
        if type(raw) is not dict or "productId" in raw:
            return None
        product, quantity = raw.get("product_id"), raw.get("quantity")
        if not (plain(product) and type(quantity) is int and 1 <= quantity <= MAX_QUANTITY):
            return None  # type(...) is int: not bool, and not "3"
        items.append(LineItem(product, quantity))
    return Order(oid or id_factory(), customer, tuple(items), notes)


def plain_order(order: Order) -> Order | None:
    """``order`` as the rules want it when it already obeys them, without a dict round trip.

    ``Client.submit_many`` checks every order built in code; the orders it is
    handed are almost always fine, and building a dict of each only to take
    it apart again was most of its cost. None sends an order to the full
    check, which names what is wrong.
    """
    oid, customer, raw_items, notes = order
    if not (
        plain(oid, MAX_ID_LENGTH)
        and plain(customer, MAX_ID_LENGTH)
        and type(raw_items) is tuple
        and raw_items
        and (notes is None or (type(notes) is str and (notes.isascii() or encodable(notes))))
    ):
        return None
    for item in raw_items:
        if type(item) is not LineItem:
            return None
        product, quantity = item
        if not (plain(product) and type(quantity) is int and 1 <= quantity <= MAX_QUANTITY):
            return None
    return order if type(order) is Order else Order(oid, customer, raw_items, notes)


class _FieldError(ValueError):
    """A refusal that one field of the order is to blame for (an HTTP problem points at it)."""

    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(message)
        self.pointer = pointer


def _field(obj: dict[str, Any], *keys: str, limit: int | None = None) -> str:
    try:
        return required_text(obj, *keys, limit=limit)
    except ValueError as exc:
        raise _FieldError(str(exc), "/" + _pick_key(obj, keys)) from None


def _pick_key(obj: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The spelling of a field the input used (the first of ``keys`` when none)."""
    return next((key for key in keys if key in obj), keys[0])


def _order(obj: object, id_factory: Callable[[], str]) -> Order:
    if type(obj) is dict and (order := _plain_order(obj, id_factory)) is not None:
        return order
    if not isinstance(obj, dict):
        raise ValueError(f"expected an order object, got {json_type(obj)}")
    order_id = None
    if pick(obj, "id", "order_id", "orderId")[1] is not None:  # null: make one
        order_id = _field(obj, "id", "order_id", "orderId", limit=MAX_ID_LENGTH)
    customer = _field(obj, "customer_id", "customerId", limit=MAX_ID_LENGTH)
    raw_items = obj.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        got = "nothing" if raw_items is None else json_text(raw_items)
        raise _FieldError(f"items must be a non-empty list of objects, got {got}", "/items")
    items = tuple(_item(raw, number) for number, raw in enumerate(raw_items, 1))
    notes = obj.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise _FieldError(f"notes must be a string or null, got {json_text(notes)}", "/notes")
    if notes is not None:
        try:
            check_text(notes, "notes", blank_ok=True)
        except ValueError as exc:
            raise _FieldError(str(exc), "/notes") from None
    return Order(order_id or id_factory(), customer, items, notes)


def _item(raw: object, number: int) -> LineItem:
    at = f"/items/{number - 1}"
    try:
        if not isinstance(raw, dict):
            raise _FieldError(f"expected an object, got {json_type(raw)}", at)
        product = _field(raw, "product_id", "productId")
        if "quantity" not in raw:
            raise _FieldError("quantity is missing", "/quantity")
        quantity = raw["quantity"]
        try:
            if isinstance(quantity, str):  # JSON is typed: "3" is not a number
                raise ValueError(f"{_QUANTITY_RULE}, got {json_text(quantity)}")
            return LineItem(product, validate_quantity(quantity))
        except ValueError as exc:
            raise _FieldError(str(exc), "/quantity") from None
    except _FieldError as exc:
        pointer = exc.pointer if exc.pointer.startswith(at) else at + exc.pointer
        raise _FieldError(f"item {number}: {exc}", pointer) from None


def order_from_obj(
    obj: object, source: str, line: int, id_factory: Callable[[], str] = new_id
) -> Order:
    """Validate one decoded JSON value into an :class:`Order` (``InputError`` if bad)."""
    try:
        return _order(obj, id_factory)
    except ValueError as exc:
        pointer = exc.pointer if isinstance(exc, _FieldError) else None
        raise InputError(str(exc), source, line, pointer=pointer) from None


def _parsed(
    obj: object, source: str, line: int, id_factory: Callable[[], str]
) -> ParsedOrder | RowError:
    try:
        return ParsedOrder(_order(obj, id_factory), line)
    except ValueError as exc:
        given = obj if isinstance(obj, dict) else {}
        oid = next((given[key] for key in ("id", "order_id", "orderId") if key in given), None)
        return RowError(source, line, str(exc), oid if isinstance(oid, str) and oid else None)


def parse_order_json(data: bytes, source: str = "<stdin>") -> Order:
    """Exactly one JSON order object (``realorders submit -``)."""
    item = json_document(data)
    if item is None:
        raise InputError("no order given; expected one JSON object", source, 1)
    if isinstance(item, JsonProblem):
        raise InputError(item.reason, source, item.line)
    if not isinstance(item.value, dict):
        got = json_type(item.value)
        raise InputError(f"expected one JSON order object, got {got}", source, item.line)
    return order_from_obj(item.value, source, item.line)


def parse_item_spec(spec: str) -> LineItem:
    """``PRODUCT=QTY`` from ``submit --item``; split on the last ``=`` so ids may hold one."""
    product, sep, quantity = spec.rpartition("=")
    try:
        if not sep:
            raise ValueError(spec)
        return LineItem(check_text(product, "product"), validate_quantity(quantity))
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
        expected = "expected a JSON array of orders or one order object"
        return _read_json(json_values(stream), source, id_factory, expected)
    if fmt == "ndjson":
        expected = "expected one JSON object per line"
        return _read_json(ndjson_values(stream), source, id_factory, expected)
    raise InputError(f"unknown format {fmt!r}; use csv, json or ndjson")


def _read_json(
    items: Iterator[JsonValue | JsonProblem],
    source: str,
    id_factory: Callable[[], str],
    expected: str,  # the message for a top-level value that is not an object
) -> Iterator[ParsedOrder | RowError]:
    found = False
    for item in items:
        found = True
        if isinstance(item, JsonProblem):
            yield RowError(source, item.line, item.reason)
        elif item.in_array or isinstance(item.value, dict):
            yield _parsed(item.value, source, item.line, id_factory)
        else:
            yield RowError(source, item.line, f"{expected}, got {json_type(item.value)}")
    if not found:
        yield RowError(source, 1, "no orders in file")


# -- CSV --------------------------------------------------------------------------------


@dataclass(slots=True)
class _OpenOrder:
    id: str
    customer: str
    line: int
    items: list[LineItem] = field(default_factory=list)
    notes: str | None = None
    refused: bool = False


def _add_row(
    record: Record,
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
            check_text(oid, "order_id", MAX_ID_LENGTH)
        customer = check_text(fields[columns["customer_id"]], "customer_id", MAX_ID_LENGTH)
        product = check_text(fields[columns["product_id"]], "product_id")
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
        was = f"{clip(entry.customer)!r} given at line {entry.line}"
        problems.append((line, f"customer {clip(customer)!r} differs from {was}; order refused"))
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
    table, problems = csv_table(stream, _CSV_COLUMNS, "customer_id", "product_id", "quantity")
    for line, reason in problems:
        yield RowError(source, line, reason)
    if table is None:
        return
    orders: OrderedDict[object, _OpenOrder] = OrderedDict()  # the oldest goes first, in O(1)
    rows = 0
    for record in table.rows:
        rows += 1
        oid, problems = _add_row(record, table.columns, table.width, orders, id_factory)
        if problems:
            about = "" if oid is None else f"order {clip(oid)!r}: "
            for line, reason in problems:
                yield RowError(source, line, about + reason, oid)
        while len(orders) > window:
            if (done := _finished(orders.popitem(last=False)[1])) is not None:
                yield done
    for entry in orders.values():
        if (done := _finished(entry)) is not None:
            yield done
    if not rows:
        yield RowError(source, table.line, "no orders in file")


def _finished(entry: _OpenOrder) -> ParsedOrder | None:
    if entry.refused:
        return None
    return ParsedOrder(Order(entry.id, entry.customer, tuple(entry.items), entry.notes), entry.line)
