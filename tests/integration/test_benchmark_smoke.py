"""The benchmark harness must keep working: a small run of it, checked for sane output."""

from __future__ import annotations

import json
import os
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
