"""The benchmark harness must keep working: a small run of it, checked for sane output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_engine_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "engine.py"), "--n", "2000", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert results["n"] == 2000
    assert results["ceiling"]["rows"] == 2000 * 5
    assert [run["mode"] for run in results["runs"]] == ["sequential", "pipelined"]
    for run in results["runs"]:
        assert run["orders"] == 2000
        assert run["orders_per_second"] > 0
        assert 0 < run["latency_p50"] <= run["latency_p99"]
        assert run["engine"]["peak_rss_mb"] > 0
    assert "| sequential | 2,000 |" in proc.stdout


def test_dashboard_benchmark_smoke(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tmux is missing: CI must install it (the dashboard runs in tmux)")
        pytest.skip("tmux is not installed: the dashboard benchmark needs a real terminal")
    out = tmp_path / "results.json"
    scratch = tmp_path / "scratch"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "dashboard.py"),
            "--smoke",
            "--dir",
            str(scratch),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = json.loads(out.read_text())
    (run,) = results["runs"]
    frames = [line.split() for line in (scratch / "trace.txt").read_text().splitlines()]
    assert len(frames) >= run["frames"] > 0
    heads = [int(frame[1]) for frame in frames]
    assert heads == sorted(heads)
    assert heads[-1] > 0
    assert run["events"] > 0
    assert run["not_shown"] == 0
    assert 0 < run["lag_p50"] <= run["lag_p95"] <= run["lag_p99"] <= run["lag_max"]
    assert run["frames_per_second"] > 0
    assert run["cores"]["dashboard"] > 0
    assert "| 250 events/s |" in proc.stdout


@pytest.mark.services
@pytest.mark.usefixtures("kafka_available", "redis_available")
def test_distributed_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "distributed.py"),
            "--smoke",
            "--dir",
            str(tmp_path / "scratch"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = json.loads(out.read_text())
    assert results["n"] == 2000
    assert results["partitions"] == 12
    for key in ("cores", "python", "kafka_python", "kafka_crc32c", "broker", "commit"):
        assert results["machine"][key], key
    ceiling = results["ceiling"]
    assert ceiling["records"] == 2000
    assert ceiling["record_bytes_mean"] > 100  # the benchmark's own command records
    assert ceiling["produce_records_per_second"] > 0
    assert ceiling["consume_records_per_second"] > 0
    (run,) = results["runs"]
    assert run["engines"] == 1
    assert run["orders"] == 2000
    assert run["owned_partitions"] == [list(range(12))]
    assert run["check"]["ok"]
    assert run["orders_per_second"] > 0
    assert run["import_orders_per_second"] >= run["orders_per_second"]
    assert 0 < run["latency_p50"] <= run["latency_p99"]
    assert run["latency_p99"] < run["seconds"]
    assert run["engine_cpu_seconds"] > 0
    assert run["engine_cpu_per_1000"] == pytest.approx(run["engine_cpu_seconds"] / 2)
    assert run["cpu_seconds"]["broker"] > 0
    assert run["cpu_seconds"]["redis"] > 0
    assert results["summary"]["of_produce_ceiling"]["1"] > 0
    assert "one_engine_orders_per_second" in results["summary"]
    assert "| 1 | 2,000 |" in proc.stdout


def test_kafka_transactions_benchmark_smoke() -> None:
    """Its own broker, a few transactions with one producer and with two in turn."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "kafka_transactions.py"),
            "--transactions",
            "20",
            "--records",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert len(rows) == 2, proc.stdout
    for row in rows:
        found = re.search(r"total ([0-9.]+) / ([0-9.]+)", row)
        assert found, row
        assert 0 < float(found[1]) <= float(found[2])
