"""Waiting that follows the work, not the clock: deadlines derived from progress.

A fixed deadline ("500 orders in flight within 60 s") makes a test depend on the
machine's speed: on a slow day a healthy run fails. :func:`wait_for` instead keeps
waiting for as long as a progress measure still changes, and gives up only when

- the measure has stood still for ``idle_timeout`` seconds (something is stuck), or
- a generous ``hard_bound`` has passed (it moves, but never gets there).

A passing run returns as soon as its condition holds, so generous bounds cost a
healthy machine nothing; they only decide how long a broken run takes to fail.

tests/ is on ``sys.path`` (see tests/conftest.py), so any test imports it as
``from waiting import wait_for``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = [
    "HARD_BOUND",
    "IDLE_TIMEOUT",
    "Patience",
    "cpu_state",
    "cpu_ticks",
    "wait_exit",
    "wait_for",
]

S = TypeVar("S")

#: Seconds without any change in the progress measure before a wait gives up.
IDLE_TIMEOUT = 60.0
#: Seconds after which a wait gives up even though things still move. Kept below the
#: suite's per-test limit (``timeout`` in pyproject.toml, pytest-timeout) so that the
#: failure says what it waited for rather than being a bare timeout.
HARD_BOUND = 240.0

_UNSEEN = object()


class Patience:
    """The two clocks of one wait: time since the last progress, and time in all.

    :func:`wait_for` runs its loop on one; a loop that cannot (an ``async`` one that
    must ``await`` between looks, say) calls :meth:`check` once a round itself.
    """

    def __init__(
        self,
        what: str,
        idle_timeout: float = IDLE_TIMEOUT,
        hard_bound: float = HARD_BOUND,
    ) -> None:
        self.what = what
        self.idle_timeout = idle_timeout
        self.hard_bound = hard_bound
        self.started = self.last_change = time.monotonic()
        self.measure: object = _UNSEEN

    def check(self, measure: object, last_seen: object) -> None:
        """Note this round's progress ``measure``; fail (AssertionError) if patience ran out.

        Any change of ``measure`` from the previous round is progress. ``last_seen`` is
        what the failure message shows.
        """
        now = time.monotonic()
        if measure != self.measure:
            self.measure, self.last_change = measure, now
        if now - self.last_change >= self.idle_timeout:
            raise AssertionError(
                f"no progress for {self.idle_timeout:g} s ({now - self.started:.1f} s in all) "
                f"waiting for {self.what}; last seen: {last_seen!r}"
            )
        if now - self.started >= self.hard_bound:
            raise AssertionError(
                f"still not done after {self.hard_bound:g} s (last progress "
                f"{now - self.last_change:.1f} s ago) waiting for {self.what}; "
                f"last seen: {last_seen!r}"
            )


def wait_for(
    sample: Callable[[], S],
    done: Callable[[S], object],
    *,
    progress: Callable[[S], object] | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    hard_bound: float = HARD_BOUND,
    interval: float = 0.05,
    what: str = "the condition",
) -> S:
    """Sample until ``done(sample)`` holds, and return that sample.

    ``progress(sample)`` (by default the sample itself) is the progress measure: any
    change from the previous round counts as progress and restarts the idle clock.
    Choose a measure of the work (counts, positions), never of the time (rates,
    ages), or an idle system would look busy. Fails with an AssertionError naming
    ``what`` and the last sample after ``idle_timeout`` seconds without progress, or
    after ``hard_bound`` seconds in all.
    """
    patience = Patience(what, idle_timeout, hard_bound)
    while True:
        value = sample()
        if done(value):
            return value
        patience.check(value if progress is None else progress(value), value)
        time.sleep(interval)


def wait_exit(
    proc: subprocess.Popen[bytes],
    progress: Callable[[], object],
    *,
    idle_timeout: float = IDLE_TIMEOUT,
    hard_bound: float = HARD_BOUND,
    what: str = "",
) -> tuple[bytes, bytes]:
    """Until ``proc`` (both pipes PIPE) exits by itself; returns its stdout and stderr.

    Waits for as long as ``progress()`` still changes (see :func:`wait_for`); if it gives
    up, ``proc`` is killed. The pipes are drained meanwhile (``communicate`` may be retried
    after a timeout without losing output), so a long output cannot block the process.
    """
    output: list[tuple[bytes, bytes]] = []

    def exited() -> bool:
        try:
            output.append(proc.communicate(timeout=0.2))
        except subprocess.TimeoutExpired:
            return False
        return True

    try:
        wait_for(
            lambda: (exited(), progress()),
            lambda seen: seen[0],
            progress=lambda seen: seen[1],
            idle_timeout=idle_timeout,
            hard_bound=hard_bound,
            interval=0,  # communicate() has waited already
            what=what or f"{proc.args!r} to exit",
        )
    finally:
        if not output:
            proc.kill()
            output.append(proc.communicate())
    return output[-1]


def cpu_state(pid: int) -> tuple[str, int] | None:
    """A live process's scheduler state (``R``, ``S``, ...) and CPU ticks used, from /proc.

    None once it is gone. The ticks are a progress measure for a process whose work
    shows nowhere else yet, such as its start-up, however slow the machine.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # from field 3 on: state, ..., utime, stime
    return fields[0], int(fields[11]) + int(fields[12])


def cpu_ticks(pid: int) -> int | None:
    """CPU clock ticks a live process has used (None once it is gone)."""
    state = cpu_state(pid)
    return None if state is None else state[1]
