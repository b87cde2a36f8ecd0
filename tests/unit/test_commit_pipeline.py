"""The engine's commit thread: order, bounded hand-over, merging, and a failure that stops it."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from realorders.engine.pipeline import InOrderCommits


class _Gate:
    """A write that blocks until released, so that tests decide what is in flight."""

    def __init__(self) -> None:
        self.written: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def write(self, batch: list[int]) -> None:
        self.started.set()
        assert self.release.wait(10)
        self.written.append(batch)


def test_batches_are_written_in_hand_over_order_and_sync_waits_for_them() -> None:
    written: list[int] = []
    commits = InOrderCommits(written.append, depth=2, name="t")
    for n in range(50):
        commits.put(n)
    commits.sync()
    assert written == list(range(50))
    assert commits.in_flight == 0
    commits.close()


def test_put_waits_for_room_while_the_thread_writes() -> None:
    gate = _Gate()
    commits = InOrderCommits(gate.write, depth=1, name="t")
    commits.put([1])
    assert gate.started.wait(5)  # [1] is being written
    blocked = threading.Thread(target=commits.put, args=([2],))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # one in flight: the next waits for it
    gate.release.set()
    blocked.join(5)
    assert not blocked.is_alive()
    commits.sync()
    commits.close()
    assert gate.written == [[1], [2]]


def test_writes_start_an_interval_apart_unless_a_reader_waits() -> None:
    starts: list[float] = []
    commits: InOrderCommits[int] = InOrderCommits(
        lambda _batch: starts.append(time.monotonic()), depth=1, name="t", interval=0.2
    )
    for n in range(3):
        commits.put(n)
    commits.sync()  # the reader's wait lets the rest go out at once
    hurried = time.monotonic()
    commits.put(3)
    commits.put(4)
    time.sleep(0.5)
    commits.close()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) == 5
    assert gaps[-1] >= 0.19  # 3 and 4, nobody waiting: an interval apart
    assert starts[2] <= hurried  # 0..2 were written by the time sync() returned


def test_a_failed_write_stops_every_later_batch_and_is_raised_in_the_engine_thread() -> None:
    written: list[int] = []

    def write(batch: int) -> None:
        if batch == 3:
            raise ConnectionError("broker gone")
        written.append(batch)

    commits = InOrderCommits(write, depth=1, name="t")

    def hand_over_all() -> None:
        for n in range(10):
            commits.put(n)
        commits.sync()

    with pytest.raises(ConnectionError, match="broker gone"):
        hand_over_all()
    with pytest.raises(ConnectionError):
        commits.sync()
    with pytest.raises(ConnectionError):
        commits.put(99)
    commits.close()  # returns: nothing more is written after a failure
    assert written == [0, 1, 2]


def test_close_writes_what_was_handed_over() -> None:
    gate = _Gate()
    commits = InOrderCommits(gate.write, depth=4, name="t")
    for n in range(3):
        commits.put([n])
    gate.release.set()
    commits.close()
    assert gate.written == [[0], [1], [2]]
