"""``realorders notify`` as a process, on both backends, against a receiver that verifies.

The receiver runs in this process (tests/receivers.py), the deliverer in its own,
started through the console script: what an operator runs. ``kill -9`` of the
deliverer mid-stream, then a restart, must lose nothing; the only repeats are the
requests that were on their way, each with the ``webhook-id`` it had.

``REALORDERS_NOTIFY_ORDERS`` sets how many orders go through (each is five events);
the default keeps the suite's time, the issue's 10,000 is run by hand (README).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
from receivers import Receiver, receiving
from waiting import wait_for

from realorders import Client, Delays, LineItem, Order
from realorders.config import Config

ORDERS = int(os.environ.get("REALORDERS_NOTIFY_ORDERS", "600"))
CONCURRENCY = 8
#: the test's receiver (Python's http.server, verifying each request) takes some 200 a
#: second on a busy 2-core machine: 10,000 orders' 50,000 events need more than 240 s
EVERY_EVENT_BOUND = max(240.0, ORDERS * 0.1)
_STORE_SETTINGS = {
    *("backend", "db", "kafka_bootstrap", "redis_url"),
    *("kafka_topic_prefix", "kafka_group", "kafka_partitions", "redis_prefix"),
}


def env_of(backend_config: Config) -> dict[str, str]:
    """The ``REALORDERS_*`` variables that give a child process the same store."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("REALORDERS_DEBUG", None)
    for f in fields(Config):
        value = getattr(backend_config, f.name)
        if f.name in _STORE_SETTINGS:
            env[f"REALORDERS_{f.name.upper()}"] = str(value)
    return env


@pytest.fixture
def shop(backend_config: Config) -> Iterator[Client]:
    with Client(config=backend_config, create=True) as client:
        client.add_product("KB-01", "Keyboard", 89.0, 10 * ORDERS)
        yield client


def notify(backend_config: Config, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "realorders"),
            *("notify", "--timeout", "2", "--time-scale", "0.001"),
            *("--concurrency", str(CONCURRENCY)),
        ],
        cwd=cwd,
        env=env_of(backend_config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def delivered(log: str) -> int:
    """The count of a ``notify`` process's last line: ``notify stopped: N delivered, …``."""
    found = re.search(r"notify stopped: ([\d,]+) delivered", log)
    assert found is not None, log
    return int(found[1].replace(",", ""))


def processed(shop: Client, prefix: str) -> set[tuple[str, int]]:
    """ORDERS orders through the lifecycle: their (order, seq) events."""
    orders = [Order(f"{prefix}-{i}", f"c{i % 9}", (LineItem("KB-01", 1),)) for i in range(ORDERS)]
    shop.submit_many(orders)
    shop.run(until_idle=True, delays=Delays(), handle_signals=False)
    expected = every_event(shop)
    assert len(expected) == 5 * ORDERS
    return expected


def every_event(shop: Client) -> set[tuple[str, int]]:
    return {(e.order_id, e.seq) for _, e in shop.events(0, 10 * ORDERS + 10)}


def check_arrivals(receiver: Receiver, expected: set[tuple[str, int]]) -> int:
    """Everything arrived, verified; repeats carry their first ``webhook-id``; each
    order's events first arrived in seq order. Returns how many requests were repeats."""
    unique = receiver.unique()
    assert set(unique.values()) == expected
    assert len(unique) == len(expected)  # one webhook-id per event
    assert receiver.rejected == 0
    for order_id, seqs in receiver.first_arrivals().items():
        assert seqs == sorted(seqs), (order_id, seqs)
    return len(receiver.arrivals) - len(unique)


def test_every_event_once_in_order_through_kill_9_and_restart(
    shop: Client, backend_config: Config, tmp_path: Path
) -> None:
    with receiving(Receiver(delay=0.002)) as receiver:
        _, secret = shop.add_webhook(receiver.url)
        receiver.secrets.append(secret)
        expected = processed(shop, "K")

        first = notify(backend_config, tmp_path)
        try:
            wait_for(
                lambda: len(receiver.arrivals),
                lambda n: n >= len(expected) // 4,
                what="a quarter of the events",
            )
        finally:
            first.kill()  # SIGKILL: no cleanup, its lease and claims stay in the store
            first.communicate(timeout=10)
        at_kill = len(receiver.unique())
        assert at_kill < len(expected), "killed too late to test anything"

        second = notify(backend_config, tmp_path)  # takes the dead one's lease over at once
        try:
            wait_for(
                lambda: len(receiver.unique()),
                lambda n: n >= len(expected),
                what="every event",
                hard_bound=EVERY_EVENT_BOUND,
            )
        finally:
            second.send_signal(signal.SIGTERM)
            _, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
        assert "Traceback" not in err, err
        assert "notify stopped:" in err, err
        time.sleep(0.2)  # nothing more arrives after the stop
        repeats = check_arrivals(receiver, expected)
        assert repeats <= CONCURRENCY, repeats  # at most the requests on their way at the kill
        assert shop.backend.deliveries.pending_count() == 0
        assert shop.backend.deliveries.failed_count() == 0


def test_two_notify_processes_share_the_work_without_a_repeat(
    shop: Client, backend_config: Config, tmp_path: Path
) -> None:
    with receiving(Receiver(delay=0.002)) as receiver:
        _, secret = shop.add_webhook(receiver.url)
        receiver.secrets.append(secret)
        expected = processed(shop, "T")
        deliverers = [notify(backend_config, tmp_path), notify(backend_config, tmp_path)]
        try:
            wait_for(
                lambda: len(receiver.unique()),
                lambda n: n >= len(expected),
                what="every event",
                hard_bound=EVERY_EVENT_BOUND,
            )
        finally:
            for proc in deliverers:
                proc.send_signal(signal.SIGTERM)
            logs = [proc.communicate(timeout=30)[1] for proc in deliverers]
        assert [proc.returncode for proc in deliverers] == [0, 0], logs
        sent = [delivered(log) for log in logs]
        assert all(count > 0 for count in sent), (sent, logs)  # both took a share
        assert sum(sent) == len(expected)  # and no event went out twice
        assert check_arrivals(receiver, expected) == 0
