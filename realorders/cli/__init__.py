"""The ``realorders`` command line (Typer + Rich); a thin layer over :class:`realorders.Client`."""

from __future__ import annotations

import sys

from . import (  # noqa: F401  (registers the commands)
    bridge,
    catalogue,
    config,
    dashboard,
    dlq,
    engine,
    notify,
    orders,
    serve,
    tokens,
    tracking,
    webhook_deliveries,
    webhooks,
)
from .app import app, run_cli

__all__ = ["app", "main"]


def main() -> None:
    sys.exit(run_cli())
