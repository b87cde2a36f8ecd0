"""The live tracking dashboard (``realorders dashboard``), built with Textual.

It reads only through :class:`realorders.Client` (the read model, the event
tail and the command log), so it runs unchanged on any backend: a SQLite file
or the distributed mode (Kafka + Redis).
"""

from __future__ import annotations

from pathlib import Path

from realorders.config import Config
from realorders.domain import Status

__all__ = ["run_dashboard"]


def run_dashboard(
    config: Config | str | Path,
    *,
    refresh: float = 0.25,
    stuck_after: dict[Status, float] | None = None,
    window: int = 100,
) -> None:
    """Open the dashboard on the store ``config`` names until the user quits.

    ``config`` is the CLI's settings (either backend) or, for short, the path
    of a SQLite file: ``run_dashboard("shop.db")``.
    """
    from .app import DashboardApp, trace_path
    from .feed import DEFAULT_STUCK_AFTER, Feed

    thresholds = stuck_after or dict(DEFAULT_STUCK_AFTER)
    app = DashboardApp(
        lambda: Feed(config, window=window, stuck_after=thresholds),
        refresh=refresh,
        stuck_after=thresholds,
        trace=trace_path(),
    )
    app.run()
