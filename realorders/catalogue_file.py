"""Read an inventory file (CSV or JSON) into catalogue rows for ``init``.

Unlike order intake, this is all-or-nothing: ``init`` loads the catalogue in one
transaction, so the first bad row raises :class:`InputError` with its file and
line rather than loading a partial catalogue. Files are small, so the rows are
returned as a list; the format-level reading is shared with order intake
(:mod:`realorders._textio`), so line numbers, BOM and CRLF handling match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import BinaryIO, NoReturn

from realorders._jsonstream import JsonProblem, json_values
from realorders._textio import (
    check_text,
    clip,
    csv_table,
    json_text,
    json_type,
    required_text,
)
from realorders.errors import InputError, UsageError

__all__ = ["MAX_STOCK", "ProductRow", "check_price", "read_inventory"]

#: one limit for files, the API and the CLI: far beyond any shelf, and sums of it
#: stay exact in SQLite's 64-bit integers
MAX_STOCK = 1_000_000_000
_PRICE = re.compile(r"[0-9]{1,15}(\.[0-9]*)?|\.[0-9]+")
_DIGITS = re.compile(r"[0-9]{1,10}")
_COLUMNS = {
    **dict.fromkeys(["product_id", "productid", "sku"], "product_id"),
    **dict.fromkeys(["name", "title"], "name"),
    "price": "price",
    **dict.fromkeys(["stock", "quantity", "qty"], "stock"),
}


@dataclass(frozen=True, slots=True)
class ProductRow:
    """One catalogue entry as the file gives it, already validated."""

    product_id: str
    name: str
    price: float
    stock: int


def check_price(price: float) -> float:
    """A product's price, as every caller must give it: a finite number, not negative."""
    if not math.isfinite(price) or price < 0:
        raise UsageError(f"price must be a finite number, not negative; got {price}")
    return price


def read_inventory(path: str) -> list[ProductRow]:
    """Every product in ``path``; CSV or JSON by extension, else by the first character."""
    try:
        with open(path, "rb") as stream:
            suffix = PurePath(path).suffix.lower()
            if suffix not in (".csv", ".json"):
                head = stream.peek(4096)[:4096].removeprefix(b"\xef\xbb\xbf").lstrip()
                suffix = ".json" if head[:1] in (b"[", b"{") else ".csv"
            rows = _read_json(stream, path) if suffix == ".json" else _read_csv(stream, path)
            return _unique(rows, path)
    except OSError as exc:
        raise InputError(f"cannot read the inventory file: {exc.strerror or exc}", path) from None


def _unique(rows: Iterator[tuple[int, ProductRow]], path: str) -> list[ProductRow]:
    seen: dict[str, int] = {}
    products = []
    for line, row in rows:
        if row.product_id in seen:
            first = seen[row.product_id]
            reason = f"product {clip(row.product_id)!r} is listed twice (first at line {first})"
            raise InputError(reason, path, line)
        seen[row.product_id] = line
        products.append(row)
    if not products:
        raise InputError("no products in file", path, 1)
    return products


def _read_csv(stream: BinaryIO, path: str) -> Iterator[tuple[int, ProductRow]]:
    table, problems = csv_table(stream, _COLUMNS, "product_id", "price", "stock")
    if table is None or problems:  # all or nothing: the first problem stops the load
        line, reason = problems[0]
        raise InputError(reason, path, line)
    columns = table.columns
    for record in table.rows:
        for line, reason in record.problems:
            raise InputError(reason, path, line)
        fields = record.fields
        try:
            if len(fields) != table.width:
                raise ValueError(f"expected {table.width} fields, got {len(fields)}")
            product_id = check_text(fields[columns["product_id"]], "product_id")
            name = fields[columns["name"]] if "name" in columns else ""
            price = float(_csv_number(fields[columns["price"]], _PRICE, "price"))
            stock = int(_csv_number(fields[columns["stock"]], _DIGITS, "stock"))
            row = _row(product_id, name, price, stock)
        except ValueError as exc:
            raise InputError(str(exc), path, record.line) from None
        yield record.line, row


def _csv_number(text: str, pattern: re.Pattern[str], name: str) -> str:
    """CSV numbers are plain decimals: no signs, exponents, currency or thousands marks."""
    if not pattern.fullmatch(text := text.strip()):
        _refuse(name, clip(text) or "an empty field")
    return text


def _read_json(stream: BinaryIO, path: str) -> Iterator[tuple[int, ProductRow]]:
    for item in json_values(stream):
        if isinstance(item, JsonProblem):
            raise InputError(item.reason, path, item.line)
        if not item.in_array:
            got = json_type(item.value)
            raise InputError(f"expected a JSON array of products, got {got}", path, item.line)
        try:
            row = _json_row(item.value)
        except ValueError as exc:
            raise InputError(str(exc), path, item.line) from None
        yield item.line, row


def _json_row(obj: object) -> ProductRow:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a product object, got {json_type(obj)}")
    product_id = required_text(obj, "product_id", "productId")
    name, price, stock = obj.get("name"), obj.get("price"), obj.get("stock")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a string, got {json_text(name)}")
    if isinstance(price, bool) or not isinstance(price, int | float) or not 0 <= price < 1e300:
        _refuse("price", json_text(price))  # also NaN and infinity, which fail the range
    if isinstance(stock, bool) or not isinstance(stock, int):
        _refuse("stock", json_text(stock))
    return _row(product_id, name or "", float(price), stock)


def _row(product_id: str, name: str, price: float, stock: int) -> ProductRow:
    """The rules both formats share; a blank name falls back to the product id."""
    if not 0 <= stock <= MAX_STOCK:
        _refuse("stock", str(stock))
    check_text(name, "name", blank_ok=True)
    return ProductRow(product_id, name if name.strip() else product_id, price, stock)


def _refuse(name: str, got: str) -> NoReturn:
    if name == "price":
        raise ValueError(f"price must be a non-negative number, got {got}")
    raise ValueError(f"{name} must be a whole number from 0 to {MAX_STOCK}, got {got}")
