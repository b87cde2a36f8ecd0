"""The dashboard's store thread: the only code that touches the store.

SQLite connections belong to the thread that opened them, and a slow read
must never freeze the screen, so one worker thread owns the source: it
gathers a frame every refresh and runs the operator's actions in between.
Results reach the event loop through ``App.call_from_thread``.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from textual.app import App
from textual.worker import get_current_worker

from realorders.client import Client

from .feed import Frame, ViewFilter

__all__ = ["Source", "StoreLink"]


class Source(Protocol):
    """Where frames come from: :class:`realorders.tui.feed.Feed`, or fixed frames in tests."""

    filter: ViewFilter

    def poll(self) -> Frame: ...

    def client(self) -> Client: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Job:
    run: Callable[[Source], Any]
    done: Callable[[Any], None]
    what: str
    failed: Callable[[str], None] | None = None
    wake: bool = True  # refresh right after it (the action changed the store)


class StoreLink:
    """The queue between the app and its store thread, and the thread's loop."""

    def __init__(
        self,
        app: App[Any],
        open_source: Callable[[], Source],
        show: Callable[[Frame], None],
        refresh: float,
    ) -> None:
        self.app = app
        self.refresh = refresh
        self.paused = False
        self.filter = ViewFilter()
        self._open_source = open_source
        self._show = show
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._wake = False

    def submit(
        self,
        run: Callable[[Source], Any],
        done: Callable[[Any], None],
        what: str,
        *,
        failed: Callable[[str], None] | None = None,
        wake: bool = True,
    ) -> None:
        """Run ``run(source)`` on the store thread; ``done`` or ``failed`` get the outcome."""
        self._jobs.put(_Job(run, done, what, failed, wake))

    def refresh_now(self) -> None:
        """A frame as soon as possible, paused or not (a filter changed, the user resumed)."""
        self._wake = True
        self._jobs.put_nowait(_Job(lambda _source: None, lambda _result: None, "refresh"))

    def stop(self) -> None:
        self._jobs.put(None)

    def loop(self) -> None:
        """The thread's body (run it with ``App.run_worker(..., thread=True)``)."""
        worker = get_current_worker()
        source = self._open_source()
        try:
            due = 0.0
            while not worker.is_cancelled:
                wait = 0.0 if self._wake else max(0.0, due - time.monotonic())
                try:
                    job = self._jobs.get(timeout=wait)
                except queue.Empty:
                    job = None
                if job is not None:
                    self._run(source, job)
                    continue
                if worker.is_cancelled or not self.app.is_running:
                    break
                now = time.monotonic()
                if self._wake or (not self.paused and now >= due):
                    self._wake = False
                    source.filter = self.filter
                    if not self._deliver(self._show, source.poll()):
                        break
                    due = now + self.refresh
                elif now >= due:
                    due = now + self.refresh
        finally:
            source.close()

    def _run(self, source: Source, job: _Job) -> None:
        try:
            result = job.run(source)
        except Exception as exc:  # an action fails alone; the dashboard carries on
            message = f"{job.what}: {exc}"
            if job.failed is not None:
                self._deliver(job.failed, message)
            else:
                self._deliver(self.app.notify, message, severity="error")
            return
        self._deliver(job.done, result)
        self._wake = self._wake or job.wake

    def _deliver(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Hand a result to the event loop; False once the app is shutting down.

        A failing callback is reported, not raised: it must not end the store thread.
        """
        try:
            self.app.call_from_thread(callback, *args, **kwargs)
        except RuntimeError:
            if not self.app.is_running:
                return False
            self._report_failure(callback)
        except Exception:
            self._report_failure(callback)
        return True

    def _report_failure(self, callback: Callable[..., Any]) -> None:
        name = getattr(callback, "__name__", "update")  # not the seam: a partial has no name
        with contextlib.suppress(Exception):
            self.app.call_from_thread(
                self.app.notify, f"dashboard: {name} failed", severity="error"
            )
