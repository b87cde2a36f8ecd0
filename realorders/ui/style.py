"""How statuses and times look to people: one palette for the CLI and the dashboard.

Kept out of ``realorders.cli`` so the dashboard does not load every Typer
command to colour a status.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from realorders.domain import Status

__all__ = ["STATUS_STYLE", "clock", "status_text"]

STATUS_STYLE = {
    Status.PENDING: "white",
    Status.RESERVED: "cyan",
    Status.BACKORDERED: "yellow",
    Status.PACKED: "blue",
    Status.SHIPPED: "magenta",
    Status.DELIVERED: "green",
    Status.REJECTED: "red",
    Status.CANCELLED: "bright_black",
}


def clock(ts: float | None) -> str:
    """Local wall-clock time for people."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def status_text(status: Status | str) -> Text:
    status = Status(status)
    return Text(status.value, style=STATUS_STYLE[status])
