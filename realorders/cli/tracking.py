"""Tracking commands: watch the event stream, stats, and the invariant check."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from realorders.domain import Status
from realorders.ui.style import clock, status_text
from realorders.views import public_event

from .app import app, err, fail, out, settings
from .output import write_json, write_ndjson_line


@app.command()
def watch(
    ctx: typer.Context,
    order_ids: list[str] = typer.Argument(None, metavar="[ORDER_ID]...", help="Only these orders."),
    status: Status | None = typer.Option(None, "--status", "-s", help="Only this status."),
    as_json: bool = typer.Option(False, "--json", help="NDJSON (the default when piped)."),
    until_done: bool = typer.Option(
        False,
        "--until-done",
        help="Exit when every named order is terminal (no ids: when nothing is left to move).",
    ),
    from_start: bool = typer.Option(False, "--from-start", help="Replay from the first event."),
    timeout: float | None = typer.Option(None, "--timeout", help="Exit 1 after S seconds."),
) -> None:
    """Stream status changes live as the engine commits them."""
    with settings(ctx).client() as client:
        ndjson = as_json or not out.is_terminal
        try:
            for cursor, event in client.watch(
                order_ids or (),
                status=status,
                from_start=from_start,
                until_done=until_done,
                timeout=timeout,
            ):
                if ndjson:
                    write_ndjson_line(public_event(cursor, event))
                else:
                    line = Text.assemble(
                        clock(event.at),
                        "  ",
                        event.order_id,
                        "  ",
                        status_text(event.status),
                        f"  #{event.seq}",
                    )
                    if event.reason:
                        line.append(f"  {event.reason}", style="dim")
                    out.print(line)
        except TimeoutError:
            raise fail(f"watch timed out after {timeout}s") from None


@app.command()
def stats(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    window: float = typer.Option(60.0, "--window", min=1, help="Seconds for 'now' rates."),
) -> None:
    """Counts by status, throughput, submit→terminal latency, backlog and webhook deliveries."""
    with settings(ctx).client() as client:
        data = client.stats(window)
        if as_json:
            write_json(data)
            return
        table = Table(show_edge=False, show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        for name, count in data["by_status"].items():
            table.add_row(status_text(name), f"{count:,}")
        table.add_row("total", f"{data['orders']:,}")
        out.print(table)
        rate = data["throughput"]
        out.print(
            f"throughput  {rate['orders_per_second']:,.1f} orders/s, "
            f"{rate['events_per_second']:,.1f} events/s (last {window:g}s)",
            highlight=False,
        )
        lat = data["latency_seconds"]
        if lat["p50"] is not None:
            out.print(
                "latency     submit→terminal p50 {:.3f}s  p95 {:.3f}s  p99 {:.3f}s".format(
                    lat["p50"], lat["p95"], lat["p99"]
                ),
                highlight=False,
            )
        engine = "running" if data["engine"]["running"] else "not running"
        out.print(f"backlog     {data['backlog']:,} commands; engine {engine}", highlight=False)
        hooks = data["webhooks"]
        if hooks["endpoints"]:  # nothing to say to a store that sends no webhooks
            line = Text(
                f"webhooks    {hooks['endpoints']:,} endpoints ({hooks['enabled']:,} enabled, "
                f"{hooks['disabled']:,} disabled); {hooks['backlog']:,} deliveries pending, "
            )
            line.append(f"{hooks['failed']:,} failed", style="red" if hooks["failed"] else "")
            out.print(line)


@app.command()
def check(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Verify invariants: stock conserved, events numbered 1..n, read model = fold of events."""
    with settings(ctx).client() as client:
        report = client.check()
        if as_json:
            write_json(report.to_dict())
        elif report.ok:
            out.print(
                f"ok: {report.orders:,} orders, {report.events:,} events, "
                f"{report.products:,} products — every invariant holds",
                highlight=False,
            )
        else:
            for problem in report.problems:
                err.print(problem, highlight=False, markup=False)
            if report.more_problems:
                err.print(f"… and {report.more_problems} more problems")
        if not report.ok:
            raise fail(f"check failed: {len(report.problems) + report.more_problems} problems")
