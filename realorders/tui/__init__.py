"""The live tracking dashboard (``realorders dashboard``), built with Textual.

It reads only through :class:`realorders.Client` (the read model, the event
tail and the command log), so it runs unchanged on any backend.
"""

from __future__ import annotations

from pathlib import Path

from realorders.domain import Status

__all__ = ["run_dashboard"]


def run_dashboard(
    db: str | Path,
    *,
    refresh: float = 0.25,
    stuck_after: dict[Status, float] | None = None,
    window: int = 100,
) -> None:
    """Open the dashboard on ``db`` until the user quits."""
    from .app import DashboardApp, trace_path
    from .feed import DEFAULT_STUCK_AFTER, Feed

    thresholds = stuck_after or dict(DEFAULT_STUCK_AFTER)
    app = DashboardApp(
        lambda: Feed(db, window=window, stuck_after=thresholds),
        refresh=refresh,
        stuck_after=thresholds,
        trace=trace_path(),
    )
    app.run()
