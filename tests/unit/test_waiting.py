"""tests/waiting.py: deadlines from progress, on a fake clock (no real sleeping)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import waiting
from waiting import cpu_state, cpu_ticks, wait_exit, wait_for


class FakeClock:
    """Stands in for the ``time`` module in :mod:`waiting`: sleeping advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(waiting, "time", fake)
    return fake


def counter(values: list[int]) -> Iterator[int]:
    yield from values
    while True:
        yield values[-1]


def test_returns_the_first_sample_that_is_done(clock: FakeClock) -> None:
    samples = counter([1, 2, 3, 4])
    assert wait_for(lambda: next(samples), lambda n: n >= 3, interval=1) == 3
    assert clock.now == 1002.0


def test_keeps_waiting_past_the_idle_timeout_while_progress_is_made(clock: FakeClock) -> None:
    samples = counter(list(range(100)))  # one step a second, done at 90: 90 s in all
    found = wait_for(lambda: next(samples), lambda n: n >= 90, interval=1, idle_timeout=5)
    assert found == 90
    assert clock.now - 1000.0 == 90


def test_fails_after_the_idle_timeout_without_progress(clock: FakeClock) -> None:
    samples = counter([1, 2, 3])  # then stuck at 3
    stuck = r"no progress for 5 s .* waiting for three; last seen: 3"
    with pytest.raises(AssertionError, match=stuck):
        wait_for(lambda: next(samples), lambda n: n > 3, interval=1, idle_timeout=5, what="three")
    assert clock.now - 1000.0 == 7  # the last change at 2 s, then 5 s without


def test_progress_is_measured_on_what_the_caller_chooses(clock: FakeClock) -> None:
    # the sample changes every look (a timestamp), the measure (the count) does not
    looks = iter(range(1000))
    with pytest.raises(AssertionError, match="no progress for 3 s"):
        wait_for(
            lambda: {"count": 7, "at": next(looks)},
            lambda seen: seen["count"] > 7,
            progress=lambda seen: seen["count"],
            interval=1,
            idle_timeout=3,
        )
    assert clock.now - 1000.0 == 3


def test_gives_up_at_the_hard_bound_even_while_moving(clock: FakeClock) -> None:
    samples = counter(list(range(1000)))
    with pytest.raises(AssertionError, match=r"still not done after 50 s .* waiting for never"):
        wait_for(
            lambda: next(samples),
            lambda n: n < 0,
            interval=1,
            idle_timeout=5,
            hard_bound=50,
            what="never",
        )
    assert clock.now - 1000.0 == 50


def test_wait_exit_drains_a_long_output_and_returns_it() -> None:
    code = "import sys; sys.stdout.write('x' * 1_000_000); sys.stderr.write('done')"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = wait_exit(proc, lambda: None, idle_timeout=60)  # more than a pipe holds
    assert (proc.returncode, len(out), err) == (0, 1_000_000, b"done")


def test_wait_exit_kills_what_stops_making_progress() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with pytest.raises(AssertionError, match=r"no progress for 0\.5 s .* waiting for the sleeper"):
        wait_exit(proc, lambda: None, idle_timeout=0.5, what="the sleeper")
    assert proc.returncode is not None


def test_cpu_state_of_this_process_and_of_none() -> None:
    state = cpu_state(os.getpid())
    assert state is not None
    assert state[0] == "R"  # running this very line
    assert cpu_ticks(2**22 + 1) is None  # above the default pid_max: no such process
