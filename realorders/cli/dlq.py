"""``realorders dlq``: see and re-drive poison commands (distributed mode)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from realorders.errors import UsageError
from realorders.views import iso

from .app import app, err, settings
from .output import Format, ago, render

dlq_app = typer.Typer(
    help="Poison commands set aside by the engines (distributed mode): list and replay.",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")

_COLUMNS = [
    ("offset", "OFFSET"),
    ("at", "AGE"),
    ("source", "FROM"),
    ("reason", "REASON"),
    ("value", "RECORD"),
    ("replayed", "REPLAYED"),
]


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    all_letters: bool = typer.Option(False, "--all", help="Include replayed ones."),
) -> None:
    """Dead letters, oldest first: where each came from and why it was set aside."""
    with settings(ctx).client() as client:
        letters = [d for d in client.dead_letters() if all_letters or not d.replayed]
    now = time.time()
    records = [{**d.to_dict(), "at": iso(d.at)} for d in letters]
    if not records and fmt is Format.table:
        err.print("no dead letters", highlight=False)
        return
    rows = [
        (
            str(d.offset),
            "?" if d.at is None else ago(now - d.at),
            d.source,
            d.reason,
            _preview(r["value"] or ""),
            "yes" if d.replayed else "",
        )
        for d, r in zip(letters, records, strict=True)
    ]
    render(records, fmt, _COLUMNS, table_rows=rows)


def _preview(value: str, width: int = 60) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    offsets: list[int] = typer.Argument(..., help="Offsets shown by `dlq list`."),
    value_file: Path | None = typer.Option(
        None,
        "--value-file",
        help="Replay this corrected record (JSON command) instead of the original; one offset.",
    ),
) -> None:
    """Send dead letters back through intake (validated and deduplicated like any input)."""
    if value_file is not None and len(offsets) != 1:
        raise UsageError("--value-file replaces one record: give exactly one offset")
    value = None
    if value_file is not None:
        if not value_file.is_file():
            raise UsageError(f"{value_file}: no such file")
        value = value_file.read_bytes()
    with settings(ctx).client() as client:
        for offset in offsets:
            done = client.replay_dead_letter(offset, value)
            err.print(f"dead letter {offset}: {done}", highlight=False)
