"""benchmarks/webhooks.py must keep working: its smoke mode, on both backends, checked.

The script starts its own receivers (uvicorn), deliverers, engine and (for
Kafka) services; the figures of a smoke run mean nothing, but every scenario
must run to the end with every delivery made and none failed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("kafka", marks=pytest.mark.services)])
def test_the_webhook_benchmark_smoke_runs(request: pytest.FixtureRequest, backend: str) -> None:
    if backend == "kafka":
        request.getfixturevalue("kafka_available")
        request.getfixturevalue("redis_available")
    if shutil.which("wrk") is None and os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is missing: CI must install it (.ci/run does)")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "webhooks.py"), "--smoke", "--backend", backend],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    runs: dict[str, dict[str, Any]] = {r["scenario"]: r for r in lines if "scenario" in r}
    assert set(runs) == {
        "ceiling",
        "one_endpoint",
        "one_endpoint_two_deliverers",
        "ten_endpoints",
        "slow_receiver",
        "lag",
        "backlog",
    }
    assert runs["ceiling"]["per_second"] > 0
    for name in ("one_endpoint", "one_endpoint_two_deliverers", "ten_endpoints", "slow_receiver"):
        assert runs[name]["failed"] == 0, runs[name]
        assert runs[name]["per_second"] > 0
    assert runs["lag"]["deliveries_measured"] > 0
    assert 0 <= runs["lag"]["p50_s"] <= runs["lag"]["p99_s"]
    assert runs["backlog"]["unavailable_answers"] >= runs["backlog"]["deliveries"] // 5
    assert runs["backlog"]["notify_peak_rss_mb"] > 0
    summary = lines[-1]["summary"][backend]
    assert summary["receiver_per_second"] == runs["ceiling"]["per_second"]
