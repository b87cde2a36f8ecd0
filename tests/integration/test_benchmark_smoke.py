"""The benchmark harness must keep working: a small run of it, checked for sane output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
