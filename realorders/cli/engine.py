"""Running the engine: ``run`` in the foreground, and the guided ``demo``."""

from __future__ import annotations

import contextlib

import typer

from realorders.engine import Delays
from realorders.errors import EngineBusyError, UsageError

from .app import app, err, settings
from .notify import delivering


def parse_delays(spec: str | None) -> Delays:
    if not spec:
        return Delays()
    try:
        return Delays.parse(spec)
    except ValueError as exc:
        raise UsageError(f"--delays {exc}") from None


@app.command()
def run(
    ctx: typer.Context,
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Return once no command is pending and no order can move."
    ),
    delays: str | None = typer.Option(
        None, "--delays", help="Fulfilment delays in seconds, e.g. pack=1,ship=2,deliver=3."
    ),
    batch_size: int = typer.Option(2000, "--batch-size", min=1, help="Commands per commit."),
    notify: bool = typer.Option(
        False, "--notify", help="Also deliver webhooks, as `realorders notify` does."
    ),
) -> None:
    """Run the engine in the foreground (Ctrl-C or SIGTERM stop it after its current commit)."""
    cfg = settings(ctx)
    parsed = parse_delays(delays)
    with cfg.client() as client:
        if not client.scales_out and client.engine_running():
            raise EngineBusyError(
                f"another engine (pid {client.engine_info().pid}) is already running on "
                f"{client.where()}"
            )
        info = client.engine_info()
        err.print(
            f"engine starting on {client.where()}: {info.backlog:,} commands waiting"
            + ("" if until_idle else "; Ctrl-C to stop"),
            highlight=False,
        )
        with delivering(client.config, finish=until_idle) if notify else contextlib.nullcontext():
            stats = client.run(until_idle=until_idle, delays=parsed, batch_size=batch_size)
        err.print(
            f"engine stopped at position {client.engine_info().position:,}: {stats.commands:,} "
            f"commands, {stats.events:,} events, {stats.finished:,} orders finished",
            highlight=False,
        )


@app.command()
def demo(
    ctx: typer.Context,
    path: str | None = typer.Option(
        None, "--path", help="Directory for the demo database (default: a new temp dir)."
    ),
    speed: float = typer.Option(1.0, "--speed", min=0.1, max=20, help="Faster (>1) or slower."),
    dashboard: bool = typer.Option(
        False,
        "--dashboard",
        help="Watch it in the live dashboard (the engine keeps running until you quit).",
    ),
    serve: bool = typer.Option(
        False,
        "--serve",
        help="Also serve the HTTP API on loopback (no tokens) and print a curl line to follow "
        "an order live; keeps serving after the flow until Ctrl-C.",
    ),
) -> None:
    """Watch orders flow: a scratch database, the bundled examples and a live view."""
    from .demo import run_demo

    if settings(ctx).store_config.scales_out:
        raise UsageError(
            "demo plays on a scratch SQLite file of its own and is not offered on "
            "--backend kafka; there, use init --inventory, run and import"
        )

    if dashboard:
        from .dashboard import require_terminal

        require_terminal()
    run_demo(path, speed, dashboard, serve)
