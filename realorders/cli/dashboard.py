"""``realorders dashboard``: open the live Textual dashboard on the store."""

from __future__ import annotations

import sys

import typer

from realorders.errors import UsageError

from .app import app, settings


def require_terminal() -> None:
    """Without a terminal Textual would paint escape codes into a pipe forever."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(
            "the dashboard needs a terminal (stdin and stderr are not one); "
            "in scripts use `realorders stats --json` or `realorders watch --json`"
        )


@app.command()
def dashboard(
    ctx: typer.Context,
    refresh: float = typer.Option(
        0.25, "--refresh", min=0.05, max=60, help="Seconds between live updates."
    ),
    stuck_after: str | None = typer.Option(
        None,
        "--stuck-after",
        metavar="STATE=DURATION,...",
        help="When an order counts as stuck, e.g. backordered=10m,reserved=30s "
        "(defaults: pending 10s, reserved 1m, packed 2m, shipped 10m, backordered 15m).",
    ),
    window: int = typer.Option(
        100, "--rows", min=10, max=2000, help="Newest orders kept in the live table."
    ),
) -> None:
    """Live dashboard: flow, latency, orders, stuck orders and stock; cancel and restock."""
    from realorders.tui import run_dashboard
    from realorders.tui.feed import parse_stuck_after

    try:
        thresholds = parse_stuck_after(stuck_after)
    except ValueError as exc:
        raise UsageError(f"--stuck-after: {exc}") from None
    require_terminal()
    run_dashboard(
        settings(ctx).store_config, refresh=refresh, stuck_after=thresholds, window=window
    )
