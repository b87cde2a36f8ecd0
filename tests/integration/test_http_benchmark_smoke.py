"""The HTTP benchmarks (benchmarks/http_*.py) must keep working: their smoke modes, checked.

Each script starts its own server, engine and (for Kafka) services, and wrk
where it measures with wrk; the figures of a smoke run mean nothing, but every
order must land and every answer must be a success.
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
BACKENDS = ["sqlite", pytest.param("kafka", marks=pytest.mark.services)]


@pytest.fixture
def backend_services(request: pytest.FixtureRequest, backend: str) -> None:
    """Kafka runs need the broker and Redis the suite can start: skipped without, failed in CI."""
    if backend == "kafka":
        request.getfixturevalue("kafka_available")
        request.getfixturevalue("redis_available")


@pytest.fixture
def wrk() -> None:
    """wrk from Debian: the scripts install it as root; elsewhere it must be there already."""
    if shutil.which("wrk") is None and os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is missing: CI must install it (.ci/run does)")
        pytest.skip("wrk is not installed (apt-get install wrk)")


def smoke(script: str, backend: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--backend", backend],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    result: dict[str, Any] = json.loads(line)
    assert result["backend"] == backend
    return result


def clean(run: dict[str, Any]) -> None:
    assert run["requests"] > 0
    assert run["non2xx"] == 0
    assert run["errors"] == 0
    assert 0 < run["p50_ms"] <= run["p99_ms"]


@pytest.mark.usefixtures("wrk")
@pytest.mark.usefixtures("backend_services")
@pytest.mark.parametrize("backend", BACKENDS)
def test_post_benchmark(backend: str) -> None:
    result = smoke("http_post.py", backend)
    for name in ("healthz_ceiling", "group_commit", "one_commit_per_request"):
        clean(result[name])
    assert result["orders_stored"] >= result["orders_answered"] > 0
    assert result["post_vs_ceiling"] > 0
    assert result["group_vs_one_commit"] > 0


@pytest.mark.usefixtures("backend_services")
@pytest.mark.parametrize("backend", BACKENDS)
def test_import_benchmark(backend: str) -> None:
    result = smoke("http_import.py", backend)
    assert result["n"] == 2000
    assert len(result["seconds"]["cli"]) == len(result["seconds"]["http"]) == 1
    assert result["http_vs_cli"] > 0


@pytest.mark.usefixtures("wrk")
def test_get_benchmark() -> None:
    result = smoke("http_get.py", "sqlite")
    assert result["orders_in_store"] == 2000
    clean(result["healthz_ceiling"])
    clean(result["get_order"])


@pytest.mark.usefixtures("backend_services")
@pytest.mark.parametrize("backend", BACKENDS)
def test_sse_benchmark(backend: str) -> None:
    result = smoke("http_sse.py", backend)
    assert result["connected"] == result["subscribers"] == 50
    assert result["failed"] == []
    assert result["dropped"] == 0
    assert result["orders_seen_delivered"] == result["orders_expected"] == 150
    lag = result["lag_ms"]
    assert 0 < lag["p50"] <= lag["p95"] <= lag["p99"] <= lag["max"]
    assert 0 < result["server_rss_mb"]["start"] <= result["server_rss_mb"]["max"]
