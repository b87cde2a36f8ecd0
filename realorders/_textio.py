"""Format-level reading shared by order intake and the inventory loader.

Both read user files that may be large, hand-edited or exported by Excel, so both
need the same answers to the same questions: which physical line is this, what
about a BOM, CRLF or bytes that are not UTF-8, and which text can be an id. Keeping
them here means a line number in an error means the same thing in every command.
The rules about orders and products stay with their readers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple, TypeGuard

import orjson

__all__ = [
    "BOM",
    "CHUNK",
    "LONG_LINE",
    "CsvTable",
    "Record",
    "bad_utf8",
    "check_text",
    "clip",
    "csv_table",
    "encodable",
    "json_text",
    "json_type",
    "not_utf8",
    "pick",
    "plain",
    "raw_lines",
    "required_text",
]

BOM = b"\xef\xbb\xbf"
CHUNK = 64 * 1024
_MAX_LINE = 8 * 2**20  # bytes: a longer line is reported and skipped, not buffered
LONG_LINE = f"line is longer than {_MAX_LINE // 2**20} MiB"
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


# -- text checks and messages -------------------------------------------------------------


def clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def json_text(value: object) -> str:
    """A JSON value as the user wrote it (near enough), for messages."""
    try:
        return clip(repr(value) if isinstance(value, float) else orjson.dumps(value).decode())
    except TypeError:  # ints beyond 64 bits, lone surrogates
        return clip(repr(value))


def json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "number")


def encodable(value: str) -> bool:
    """False for lone surrogates, which stdlib json lets through from ``"\\ud800"``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(value: str, name: str, limit: int | None = None, blank_ok: bool = False) -> str:
    """Ids are stored verbatim; refuse only what cannot be one."""
    if not blank_ok and not value.strip():
        raise ValueError(f"{name} must not be empty")
    if limit is not None and len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    if not (value.isascii() or encodable(value)):
        raise ValueError(f"{name} contains an unpaired surrogate escape")
    if "\x00" in value:  # C strings, SQLite's text functions and terminals end text there
        raise ValueError(f"{name} contains a NUL character")
    return value


def plain(value: object, limit: int | None = None) -> TypeGuard[str]:
    """Whether ``value`` is a str that :func:`check_text` accepts; for the fast paths."""
    return (
        type(value) is str
        and (limit is None or len(value) <= limit)
        and value.strip() != ""
        and (value.isascii() or encodable(value))
        and "\x00" not in value
    )


def pick(obj: dict[str, Any], *keys: str) -> tuple[str, object]:
    """The first of ``keys`` present (snake_case or the older camelCase), refusing a clash."""
    found = [(key, obj[key]) for key in keys if key in obj]
    if any(value != found[0][1] for _, value in found):
        raise ValueError(f"{found[0][0]} and {found[1][0]} disagree")
    return found[0] if found else (keys[0], None)


def required_text(obj: dict[str, Any], *keys: str, limit: int | None = None) -> str:
    """A JSON string field under any of ``keys``, checked by :func:`check_text`."""
    key, value = pick(obj, *keys)
    if value is None:
        raise ValueError(f"{key} is missing")
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {json_text(value)}")
    return check_text(value, key, limit)


def bad_utf8(byte: int, column: int) -> str:
    return f"line is not valid UTF-8 (byte 0x{byte:02x} at column {column})"


# -- physical lines -----------------------------------------------------------------------


def raw_lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """Each physical line's bytes, line end kept and the BOM dropped; None for an over-long one.

    The stream's own ``readline`` with a limit: a line over ``_MAX_LINE`` is skipped in
    chunks rather than buffered, so memory stays bounded whatever the file holds.
    """
    readline, first = stream.readline, True
    while raw := readline(_MAX_LINE + 1):
        if first:
            raw, first = raw.removeprefix(BOM), False
        if len(raw) > _MAX_LINE and not raw.endswith(b"\n"):
            while (rest := readline(CHUNK)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield raw


def not_utf8(data: bytes, exc: UnicodeDecodeError) -> str:
    """Why ``data`` (one line, or a whole document) did not decode: the byte and its column."""
    start = data.rfind(b"\n", 0, exc.start) + 1
    column = len(data[start : exc.start].decode("utf-8")) + 1
    return bad_utf8(data[exc.start], column)


# -- CSV ----------------------------------------------------------------------------------


class Record(NamedTuple):  # a NamedTuple: one is made per row
    line: int  # physical line the record starts on
    fields: list[str]
    problems: tuple[tuple[int, str], ...]  # (line, reason); the record is unusable if any


def _csv_text(stream: BinaryIO, problems: list[tuple[int, str]]) -> Iterator[str]:
    """Decoded lines for ``csv.reader``, one per physical line so its ``line_num`` is ours."""
    for number, raw in enumerate(raw_lines(stream), 1):
        if raw is None:
            problems.append((number, LONG_LINE))
            yield "\n"
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:  # replaced, not dropped: quotes and place survive
            text = raw.decode("utf-8", "replace")
            problems.append((number, not_utf8(raw, exc)))
        yield text


class CsvTable(NamedTuple):
    line: int  # the header's
    width: int  # fields in the header, so in every well-formed row
    columns: dict[str, int]  # canonical name -> field index
    rows: Iterator[Record]


def csv_table(
    stream: BinaryIO, synonyms: dict[str, str], *required: str
) -> tuple[CsvTable | None, list[tuple[int, str]]]:
    """The header's columns and the rows after it, and the problems (line, reason) with
    the header; None when there is no usable header, and the problems say why."""
    records = _csv_records(stream)
    header = next(records, None)
    if header is None:
        return None, [(1, "file is empty")]
    try:
        columns = _csv_columns(header.fields, synonyms, *required)
    except ValueError as exc:
        return None, [*header.problems, (header.line, str(exc))]
    return CsvTable(header.line, len(header.fields), columns, records), list(header.problems)


def _csv_records(stream: BinaryIO) -> Iterator[Record]:
    """CSV records with their physical line numbers; blank rows (Excel's ``,,,``) skipped."""
    problems: list[tuple[int, str]] = []
    reader, last = csv.reader(_csv_text(stream, problems)), 0
    while True:
        try:
            for fields in reader:
                if problems or any(map(str.strip, fields)):
                    yield Record(last + 1, fields, tuple(problems))
                    problems.clear()
                last = reader.line_num
            return
        except csv.Error as exc:  # the reader resumes at the next line
            problems.append((reader.line_num, f"malformed CSV: {exc}"))
            yield Record(last + 1, [], tuple(problems))
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
            f"the header has {', '.join(repr(clip(name)) for name in header)}{hint}"
        )
    return columns
