"""Rendering records as table, JSON, NDJSON or CSV.

Machine formats (json, ndjson, csv) are a stable contract: snake_case keys,
ISO 8601 UTC times. The table is for people and free to improve.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

import orjson
from rich.table import Table
from rich.text import Text

from .app import out


class Format(StrEnum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"


def ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def write_json(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def write_ndjson_line(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data) + b"\n")
    sys.stdout.flush()


def render(
    records: Sequence[dict[str, Any]],
    fmt: Format,
    columns: Sequence[tuple[str, str]],
    *,
    table_rows: Iterable[Sequence[Any]] | None = None,
    title: str | None = None,
    csv_columns: Sequence[str] | None = None,
) -> None:
    """Print records; ``columns`` are (key, header) for table and CSV.

    ``table_rows`` lets a command give prettier cells for people while
    json/ndjson/csv stay the plain records.
    """
    if fmt is Format.json:
        write_json(list(records))
    elif fmt is Format.ndjson:
        for record in records:
            sys.stdout.buffer.write(orjson.dumps(record) + b"\n")
        sys.stdout.flush()
    elif fmt is Format.csv:
        keys = list(csv_columns) if csv_columns is not None else [key for key, _ in columns]
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(keys)
        for record in records:
            writer.writerow([_csv_cell(record.get(key)) for key in keys])
    else:
        table = Table(title=title, show_edge=False, header_style="bold")
        for key, _ in columns:
            # ids are for copying: wrap them whole, never cut them with an ellipsis
            table.add_column(
                dict(columns)[key],
                no_wrap=key in ("id", "product_id"),
                overflow="fold" if key in ("id", "product_id") else "ellipsis",
            )
        rows = (
            table_rows
            if table_rows is not None
            else ([_table_cell(record.get(key)) for key, _ in columns] for record in records)
        )
        for row in rows:
            table.add_row(*row)
        out.print(table)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return "" if value is None else value


def _table_cell(value: Any) -> Any:
    if value is None:
        return "-"
    if isinstance(value, Text):
        return value
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def items_summary(items: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{i['product_id']}×{i['quantity']}" for i in items)
