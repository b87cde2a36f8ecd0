"""The distributed mode end to end: real console scripts, a real broker, a real Redis.

Every engine here is a ``realorders run`` process started as an operator
would; this test only imports files and reads. ``check`` must then find every
order in one terminal state, its events numbered 1..n in the events topic,
and stock conserved in Redis.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.services, pytest.mark.slow]

PRODUCTS = [f"SKU-{i:02}" for i in range(20)]


@dataclass
class KafkaCli:
    """The ``cli`` fixture, pointed (by environment) at a store of its own on shared services."""

    cli: Any
    env: dict[str, str]

    def __call__(self, *args: str, **kwargs: Any) -> Any:
        return self.cli(*args, env={**self.env, **kwargs.pop("env", {})}, **kwargs)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = self.cli.popen(*args, env=self.env)
        return proc


@pytest.fixture
def kafka_cli(cli: Any, kafka_server: Any, redis_server: Any, kafka_prefix: str) -> KafkaCli:
    return KafkaCli(
        cli,
        {
            "REALORDERS_BACKEND": "kafka",
            "REALORDERS_KAFKA_BOOTSTRAP": kafka_server.bootstrap,
            "REALORDERS_REDIS_URL": redis_server.url,
            "REALORDERS_KAFKA_TOPIC_PREFIX": kafka_prefix,
            "REALORDERS_REDIS_PREFIX": kafka_prefix,
            "REALORDERS_KAFKA_GROUP": f"{kafka_prefix}-engine",
            "REALORDERS_KAFKA_PARTITIONS": "4",
        },
    )


def write_inventory(path: Path, stock: int) -> Path:
    rows = ["product_id,name,price,stock"]
    rows += [f"{p},product {p},{1 + i}.50,{stock}" for i, p in enumerate(PRODUCTS)]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_orders(path: Path, count: int, seed: int = 3) -> Path:
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(count):
            items = [
                {"product_id": rng.choice(PRODUCTS), "quantity": rng.randint(1, 3)}
                for _ in range(rng.randint(1, 3))
            ]
            order = {"id": f"d{seed}-{i:06}", "customer_id": f"c{i % 50}", "items": items}
            out.write(json.dumps(order))
            out.write("\n")
    return path


def start_engine(cli: KafkaCli) -> subprocess.Popen[bytes]:
    return cli.popen("run")


def stats(cli: KafkaCli) -> dict[str, Any]:
    result = cli("stats", "--json", check=True)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def wait_finished(cli: KafkaCli, count: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data = stats(cli)
        settled = data["finished"] + data["by_status"].get("backordered", 0)
        if data["orders"] == count and settled == count:
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled after {timeout} s: {data}")
        time.sleep(0.5)


def stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return err.decode()


def test_two_engines_share_the_orders(kafka_cli: KafkaCli, tmp_path: Path) -> None:
    cli = kafka_cli
    cli("init", "--inventory", str(write_inventory(tmp_path / "inv.csv", 100_000)), check=True)
    again = cli("init", check=True)  # idempotent: the topics exist now
    assert again.returncode == 0
    engines = [start_engine(cli), start_engine(cli)]
    try:
        result = cli("import", str(write_orders(tmp_path / "orders.ndjson", 3000)), check=True)
        assert "3,000" in result.stderr + result.stdout or "3000" in result.stderr + result.stdout
        done = wait_finished(cli, 3000, timeout=180)
        assert done["by_status"]["delivered"] == 3000
    finally:
        logs = [stop(p) for p in engines]
    for log in logs:
        assert "now owns partitions" in log, log  # both took part
    report = cli("check", check=True)
    assert "every invariant holds" in report.stdout + report.stderr


def test_kill_9_one_engine_the_other_takes_over(kafka_cli: KafkaCli, tmp_path: Path) -> None:
    cli = kafka_cli
    cli("init", "--inventory", str(write_inventory(tmp_path / "inv.csv", 300)), check=True)
    victim, survivor = start_engine(cli), start_engine(cli)
    try:
        # scarce stock: some orders backorder, so reservations and releases both matter
        cli("import", str(write_orders(tmp_path / "orders.ndjson", 6000, seed=5)), check=True)
        deadline = time.monotonic() + 60
        while (finished := stats(cli)["finished"]) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        assert finished < 6000, "the engines finished before the kill: nothing was tested"
        victim.communicate(timeout=30)
        wait_finished(cli, 6000, timeout=240)
    finally:
        survivor_log = stop(survivor)
        if victim.poll() is None:
            victim.kill()
            victim.communicate(timeout=30)
    assert "now owns partitions [0, 1, 2, 3]" in survivor_log, survivor_log  # took over
    report = cli("check", check=False)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "every invariant holds" in report.stdout + report.stderr
