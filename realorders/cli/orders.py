"""Order commands: submit, import, list, show, cancel, watch, stats, check."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from realorders.client import Client, OrderView
from realorders.domain import TERMINAL, LineItem, Status
from realorders.errors import InputError, UsageError
from realorders.importer import ImportReport
from realorders.intake import RowError, detect_format, parse_item_spec, parse_order_json
from realorders.ui.style import clock, status_text
from realorders.views import public_order, public_record

from .app import app, err, fail, out, settings
from .output import (
    Format,
    ago,
    items_summary,
    render,
    write_json,
    write_ndjson_line,
)

ORDER_COLUMNS = [
    ("id", "ID"),
    ("customer_id", "CUSTOMER"),
    ("status", "STATUS"),
    ("items", "ITEMS"),
    ("total", "TOTAL"),
    ("updated_at", "UPDATED"),
]


#: csv has no nesting to hide behind: every scalar key of the record, items as JSON
ORDER_CSV_COLUMNS = [
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


def _warn_if_no_engine(client: Client) -> None:
    if not client.engine_running():
        err.print(
            f"note: no engine is running on {client.where()}; start one with "
            "`realorders run` to process queued commands",
            highlight=False,
        )


@app.command()
def submit(
    ctx: typer.Context,
    source: str | None = typer.Argument(None, help="'-' to read one JSON order on stdin."),
    customer: str | None = typer.Option(None, "--customer", "-c", help="Customer id."),
    item: list[str] = typer.Option([], "--item", "-i", help="PRODUCT=QTY (repeatable)."),
    order_id: str | None = typer.Option(None, "--id", help="Order id (default: generated)."),
    notes: str | None = typer.Option(None, "--notes", help="Free text kept with the order."),
    wait: bool = typer.Option(False, "--wait", help="Block until the order is terminal."),
    timeout: float | None = typer.Option(None, "--timeout", help="Give up waiting after S."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON result."),
) -> None:
    """Submit one order and print its id (exit 1 with --wait if it ends rejected or cancelled)."""
    if source is not None and source != "-":
        raise UsageError("submit takes '-' (a JSON order on stdin) or --customer/--item options")
    with settings(ctx).client() as client:
        if source == "-":
            if customer or item:
                raise UsageError("give the order either on stdin or with --customer/--item")
            order = parse_order_json(sys.stdin.buffer.read(), "<stdin>")
            result = client.submit(order)
        else:
            if not customer or not item:
                raise UsageError("an order needs --customer and at least one --item PRODUCT=QTY")
            items: list[LineItem] = [_item(spec) for spec in item]
            result = client.submit(
                customer_id=customer, items=items, order_id=order_id, notes=notes
            )
        record: dict[str, Any] = {"id": result.order_id, "outcome": result.outcome.value}
        if result.outcome.value == "duplicate":
            err.print(
                f"order {result.order_id} was already submitted with the same content; "
                "nothing changed",
                highlight=False,
            )
        if not wait:
            _print_result(record, as_json)
            return
        _warn_if_no_engine(client)
        done = client.wait([result.order_id], timeout=timeout)
        state = done.get(result.order_id)
        if state is None:
            record["status"] = client.get(result.order_id).status.value
            _print_result(record, as_json)
            raise fail(
                f"timed out after {timeout}s waiting for {result.order_id} "
                f"(still {record['status']})"
            )
        record["status"] = state.status.value
        record["reason"] = state.reason
        _print_result(record, as_json)
        if state.status is not Status.DELIVERED:
            raise fail(
                f"order {result.order_id} was {state.status.value}"
                + (f": {state.reason}" if state.reason else "")
            )


def _item(spec: str) -> LineItem:
    try:
        return parse_item_spec(spec)
    except InputError as exc:
        raise UsageError(str(exc)) from None


def _print_result(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        write_ndjson_line(record)
    elif "status" in record:
        out.print(record["id"], status_text(record["status"]))
    else:
        out.print(record["id"], highlight=False)


@app.command("import")
def import_(
    ctx: typer.Context,
    file: str = typer.Argument(..., metavar="FILE", help="Orders file, or - for stdin."),
    fmt: str | None = typer.Option(
        None, "--format", "-f", help="csv, json or ndjson (default: from the file extension)."
    ),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, help="Orders per transaction."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report; change nothing."),
    errors_file: Path | None = typer.Option(
        None, "--errors-file", help="Write refused rows there as NDJSON."
    ),
    wait: bool = typer.Option(False, "--wait", help="Block until the imported orders settle."),
    timeout: float | None = typer.Option(None, "--timeout", help="Give up waiting after S."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Import orders in bulk (streams any size); exit 0 only if every row was accepted.

    Each refused row is reported on stderr as FILE:LINE: reason; good rows are
    kept. Importing the same file again adds nothing and is not an error.
    """
    try:
        format_ = detect_format(None if file == "-" else file, fmt)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    stream = _open_input(file)
    source = "<stdin>" if file == "-" else file
    try:
        errors_out = errors_file.open("wb") if errors_file is not None else None
    except OSError as exc:
        raise UsageError(f"--errors-file {errors_file}: {exc.strerror}") from None

    def on_error(error: RowError) -> None:
        err.print(str(error), highlight=False, markup=False)
        if errors_out is not None:
            errors_out.write(orjson.dumps(error.to_dict()) + b"\n")

    with settings(ctx).client() as client:
        total = _size(stream)
        show_progress = err.is_terminal and not as_json
        progress = Progress(
            TextColumn("importing"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[orders]} orders"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not show_progress,
        )
        with progress, stream:
            task = progress.add_task("import", total=total, orders=0)

            def on_batch(report: ImportReport) -> None:
                position = stream.tell() if total is not None else None
                progress.update(task, completed=position, orders=report.orders)

            report = client.import_file(
                stream,
                format_,
                source,
                batch_size=batch_size,
                dry_run=dry_run,
                on_error=on_error,
                on_batch=on_batch,
            )
        if errors_out is not None:
            errors_out.close()
        summary = report.to_dict()
        if wait and not dry_run and report.accepted:
            _warn_if_no_engine(client)
            summary["statuses"] = _wait_imported(client, report, timeout)
        if as_json:
            write_json(summary)
        else:
            verb = "checked" if dry_run else "imported"
            err.print(
                f"{verb} {source}: {report.accepted} accepted, {report.duplicates} already "
                f"present, {report.rejected} refused ({report.invalid} invalid, "
                f"{report.conflicts} conflicting) in {report.seconds:.2f}s",
                highlight=False,
            )
            if report.generated_ids:
                err.print(
                    f"note: {report.generated_ids} order(s) had no id and got a new one; "
                    "importing them again adds them again (give ids to make re-imports "
                    "idempotent)",
                    highlight=False,
                )
            if "statuses" in summary:
                err.print(
                    "settled: "
                    + ", ".join(f"{k} {v}" for k, v in summary["statuses"].items() if v),
                    highlight=False,
                )
        if not report.ok:
            raise typer.Exit(1)


def _open_input(file: str) -> Any:
    if file == "-":
        return sys.stdin.buffer
    try:
        return Path(file).open("rb")
    except FileNotFoundError:
        raise UsageError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{file}: is a directory, not a file") from None
    except PermissionError:
        raise UsageError(f"{file}: permission denied") from None


def _size(stream: Any) -> int | None:
    try:
        size = Path(stream.name).stat().st_size if isinstance(stream.name, str) else None
    except (AttributeError, OSError):
        return None
    return size


def _wait_imported(client: Client, report: ImportReport, timeout: float | None) -> dict[str, int]:
    statuses = client.wait_imported(report, timeout)
    if statuses is None:
        raise fail(f"timed out after {timeout}s waiting for imported orders to settle")
    return statuses


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Status | None = typer.Option(None, "--status", "-s", help="Only this status."),
    customer: str | None = typer.Option(None, "--customer", "-c", help="Only this customer."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, json, ndjson or csv."),
) -> None:
    """List orders, newest first (queued submissions show as pending)."""
    with settings(ctx).client() as client, client.snapshot():
        records = [
            public_record(view)
            for view in client.list_orders(status=status, customer_id=customer, limit=limit)
        ]
        now = time.time()
        rows = [
            [
                r["id"],
                r["customer_id"],
                status_text(r["status"]) + (" (queued)" if r["queued"] else ""),
                items_summary(r["items"]),
                "-" if r["total"] is None else f"{r['total']:,.2f}",
                _age(r["updated_at"], now),
            ]
            for r in records
        ]
        render(records, fmt, ORDER_COLUMNS, table_rows=rows, csv_columns=ORDER_CSV_COLUMNS)
        if fmt is Format.table and not records:
            err.print("no orders" + (" match" if status or customer else " yet"))


def _age(iso_time: str | None, now: float) -> str:
    if iso_time is None:
        return "-"
    from datetime import datetime

    return ago(now - datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()) + " ago"


@app.command()
def show(
    ctx: typer.Context,
    order_id: str = typer.Argument(..., metavar="ORDER_ID", help="Order id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with its events)."),
) -> None:
    """Show one order: items, totals and its full event timeline."""
    with settings(ctx).client() as client:
        view = client.get(order_id)
        if as_json:
            write_json(public_order(view))
            return
        _print_order(view)


def _print_order(view: OrderView) -> None:
    data = view.to_dict()
    head = Text.assemble(("order ", "bold"), (data["id"], "bold"), "  ", status_text(view.status))
    if view.queued:
        head.append("  (queued: waiting for the engine)", style="yellow")
    out.print(head)
    out.print(f"customer  {data['customer_id']}", highlight=False, markup=False)
    if data.get("notes"):
        out.print(f"notes     {data['notes']}", highlight=False, markup=False)
    if data.get("reason"):
        out.print(f"reason    {data['reason']}", highlight=False, markup=False)
    items = Table(show_edge=False, header_style="bold")
    for header in ("PRODUCT", "QTY", "PRICE", "LINE TOTAL"):
        items.add_column(header, justify="left" if header == "PRODUCT" else "right")
    for line in data["items"]:
        price = line.get("price")
        items.add_row(
            line["product_id"],
            str(line["quantity"]),
            "-" if price is None else f"{price:,.2f}",
            "-" if price is None else f"{price * line['quantity']:,.2f}",
        )
    total = data.get("total")
    items.add_row("", "", "total", "-" if total is None else f"{total:,.2f}", style="bold")
    out.print(items)
    timeline = Table(show_edge=False, header_style="bold", title="timeline", title_justify="left")
    for header in ("SEQ", "STATUS", "AT", "TIME IN STATE", "REASON"):
        timeline.add_column(header)
    events = view.events
    for index, event in enumerate(events):
        until = events[index + 1].at if index + 1 < len(events) else None
        spent = (
            "-"
            if until is None and event.status in TERMINAL
            else ago((until or time.time()) - event.at)
        )
        timeline.add_row(
            str(event.seq),
            status_text(event.status),
            clock(event.at),
            spent + ("" if until or event.status in TERMINAL else " so far"),
            event.reason or "",
        )
    out.print(timeline)


@app.command()
def cancel(
    ctx: typer.Context,
    order_id: str = typer.Argument(..., metavar="ORDER_ID", help="Order id."),
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why (kept in the timeline)."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for the engine."),
) -> None:
    """Cancel an order that has not shipped yet (backordered included)."""
    with settings(ctx).client() as client:
        position = client.cancel(order_id, reason)
        if not client.engine_running():
            err.print(
                f"cancellation of {order_id} queued: it takes effect when the engine runs "
                "(`realorders run`)",
                highlight=False,
            )
            return
        if not client.wait_processed(position, timeout=timeout):
            err.print(
                f"cancellation of {order_id} queued; the engine has not reached it within "
                f"{timeout}s",
                highlight=False,
            )
            return
        view = client.get(order_id)
        if view.status is Status.CANCELLED:
            out.print(order_id, status_text(Status.CANCELLED))
        else:
            raise fail(f"order {order_id} could not be cancelled: it is {view.status.value}")
