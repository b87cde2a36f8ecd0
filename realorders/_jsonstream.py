"""JSON input as decoded values, each with the line it starts on.

Order and inventory files can be one big array, larger than memory, and errors must
name the line an element starts on; neither stdlib json nor orjson streams or counts
lines, so :func:`json_values` decodes element by element over a sliding window of the
file. NDJSON lines and single documents come out as the same values and problems.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple, NoReturn

import orjson

from realorders._textio import BOM, CHUNK, LONG_LINE, bad_utf8, not_utf8, raw_lines

__all__ = ["JsonProblem", "JsonValue", "json_document", "json_values", "ndjson_values"]

_JSON_TOKEN = re.compile(r"[^ \t\n\r]")  # anything but JSON whitespace
_MAX_JSON_VALUE = 64 * 2**20  # characters buffered for one JSON value


class JsonValue(NamedTuple):  # NamedTuples: one is made per element
    line: int
    value: object
    in_array: bool  # an element of a top-level array, not the top-level value itself


class JsonProblem(NamedTuple):  # json_values stops after one, ndjson_values goes on
    line: int
    reason: str


def json_values(stream: BinaryIO) -> Iterator[JsonValue | JsonProblem]:
    """The top-level JSON value, or each element of a top-level array, with its line."""
    return _JsonScanner(stream).values()


def json_document(data: bytes) -> JsonValue | JsonProblem | None:
    """The one JSON value in ``data``, with the line it starts on; None if there is none."""
    data = data.removeprefix(BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return JsonProblem(data.count(b"\n", 0, exc.start) + 1, not_utf8(data, exc))
    if not text.strip():
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        reason = "expected exactly one JSON object" if "after document" in exc.msg else exc.msg
        return JsonProblem(exc.lineno, f"malformed JSON: {reason}")
    return JsonValue(text.count("\n", 0, len(text) - len(text.lstrip())) + 1, value, False)


def ndjson_values(stream: BinaryIO) -> Iterator[JsonValue | JsonProblem]:
    """Each non-blank line's JSON value, or the problem with the line; blank lines skipped."""
    seen, loads, malformed = False, orjson.loads, orjson.JSONDecodeError
    item: JsonValue | JsonProblem
    for number, raw in enumerate(raw_lines(stream), 1):
        if raw is None:
            item = JsonProblem(number, LONG_LINE)
        else:
            try:
                item = JsonValue(number, loads(raw), False)  # bytes: orjson checks the UTF-8
            except malformed as exc:
                reason = _line_problem(raw, exc)
                if reason is None:
                    continue  # a blank line
                item = JsonProblem(number, reason)
        seen = True
        yield item
    if not seen:
        yield JsonProblem(1, "file is empty")


def _line_problem(raw: bytes, exc: orjson.JSONDecodeError) -> str | None:
    """Why a line did not load, worded from its decoded text; None: it is blank."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return not_utf8(raw, bad)
    if not text.strip():
        return None
    try:
        orjson.loads(text)  # columns in characters, whatever orjson counts for bytes
    except orjson.JSONDecodeError as again:
        exc = again
    return f"malformed JSON: {exc.msg} at column {exc.colno}"


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
        self.bad: JsonProblem | None = None  # bytes that are not UTF-8 ended the text
        self.decoder = json.JSONDecoder(parse_constant=_no_constant)

    def more(self, size: int = CHUNK) -> bool:
        """Append more text to the buffer; False when there is none."""
        while not self.done:
            chunk = self.stream.read(max(size, CHUNK))
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
                self.bad, self.done = JsonProblem(line, bad_utf8(bad, self.column + 1)), True
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

    def problem(self, reason: str, line: int | None = None) -> JsonProblem:
        return JsonProblem(self.line if line is None else line, f"malformed JSON: {reason}")

    def decode(self, in_array: bool) -> JsonValue | JsonProblem:
        start = self.line
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                line = self.line + self.buf.count("\n", self.pos, exc.pos)
                cut = exc.pos >= len(self.buf) - 16 or exc.msg.startswith("Unterminated")
                if cut and len(self.buf) - self.pos > _MAX_JSON_VALUE:
                    return JsonProblem(start, f"JSON value over {_MAX_JSON_VALUE // 2**20} MiB")
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
                return JsonValue(start, value, in_array)

    def values(self) -> Iterator[JsonValue | JsonProblem]:
        char = self.skip_ws()
        if char is None:
            yield self.bad or JsonProblem(1, "file is empty")
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
            if isinstance(item, JsonProblem) or not in_array:
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
        if isinstance(item, JsonProblem):
            return
        char = self.skip_ws()
        if char is not None:
            hint = "; for one object per line use --format ndjson" if char == "{" else ""
            yield self.problem(f"unexpected data after the top-level value{hint}")
        elif self.bad:
            yield self.bad
