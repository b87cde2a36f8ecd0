"""The peers harness (benchmarks/peers/run) must keep working: its smoke mode, checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMOKE = {"realorders_cli", "realorders_api", "sqlite_loop", "sqlite_group", "ceiling"}


def test_peers_smoke(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers" / "run"), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    results = json.loads(out.read_text())
    runs = results["runs"]
    assert {r["contender"] for r in runs} == SMOKE
    assert {r["n"] for r in runs} == {2000}
    for run in runs:
        if run["contender"] == "ceiling" and run["mode"] == "rate":
            assert run["status"] == "n/a"
            continue
        assert run["status"] == "ok", run
        result = run["result"]
        assert run["orders_per_second"] > 0
        assert run["cpu_seconds"] > 0
        assert run["peak_rss_mb"] > 0
        assert result["n"] == 2000
        assert sum(result["counts"].values()) == 2000
        assert result["counts"]["backordered"] > 0  # some products were empty
        assert 0 in result["stock"].values()  # and some ran out
        if run["contender"] != "ceiling":
            assert 0 < result["latency"]["p50"] <= result["latency"]["p99"]
        if run["mode"] == "rate":
            assert run["rate"] == 1000
            assert result["seconds"] >= 1.9  # 2,000 orders paced at 1,000/s
    assert {r["workload"] for r in runs} == {"standard", "restock"}
    restocked = {r["contender"] for r in runs if r["workload"] == "restock"}
    assert {"realorders_api", "sqlite_group", "ceiling"} <= restocked
    # per workload, every contender wrote the same number of event rows: the lifecycle is the
    # same (with restocks too: an order woken by one has 6 events wherever it runs)
    for shape in ("standard", "restock"):
        ok = [r for r in runs if r["workload"] == shape and r["status"] == "ok"]
        assert len({r["result"]["events"] for r in ok}) == 1, shape
    assert results["machine"]["versions"]["realorders"]
    targets = results["summary"]["targets"]
    assert {t["contender"] for t in targets} == {"realorders_cli", "realorders_api"}
    assert {t["workload"] for t in targets} == {"standard", "restock"}
    assert "| contender | durability | N |" in proc.stdout
    assert "## workload: restock" in proc.stdout
    assert "| sqlite_group | SQLite synchronous=FULL" in proc.stdout
    assert "realorders_cli" in proc.stdout


def test_each_group_runs_on_its_own_interpreter() -> None:
    """The kafka group's peer cannot share the embedded group's venv: each gets its own."""
    sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
    try:
        # benchmarks/peers, on sys.path only here: mypy does not check the benchmarks
        import harness  # type: ignore[import-not-found]
        import machine  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    contenders = harness.discover(["sqlite_group", "faust_peer"])
    pythons = harness.place(contenders, install=False)
    by_name = {c.name: c for c in contenders}
    assert by_name["sqlite_group"].group == "embedded"
    assert by_name["sqlite_group"].python == sys.executable
    assert by_name["sqlite_group"].missing == ()
    kafka_venv = machine.ENVS["kafka"].python
    faust = by_name["faust_peer"]
    assert faust.group == "kafka"
    assert faust.python == pythons["kafka"]
    assert faust.python == (str(kafka_venv) if kafka_venv.exists() else sys.executable)
    assert "kafka_services" not in faust.imports  # a module of the harness, not a peer
    assert faust.missing == ()  # it imports faust in a try: not installed is its own skip
    # another interpreter is asked in a subprocess (this one, by another spelling of its path)
    other = str(Path(sys.executable).parent / "." / Path(sys.executable).name)
    assert machine.missing_in(other, ("orjson", "no_such_module_here")) == ("no_such_module_here",)
