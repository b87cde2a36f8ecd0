#!/usr/bin/env python3
"""Engine CPU per order of two realorders sources, alternated on the same broker and Redis.

A change on the engine's batch path (issue 16: the readable events topic) is
judged by its cost relative to the code before it, measured in the same run:
this machine is shared, so figures from different runs do not compare. Each
source is a directory holding a ``realorders`` package; every realorders
process of a run (init, engines, import) gets ``PYTHONPATH=<dir>``. Runs go in
pairs, alternating which source goes first (AB BA AB ...), each on a fresh
store (``distributed.py``'s ``measure``: init, engines up, import, drain, stop,
check). Reported: engine CPU seconds per 1,000 orders of each run, and the
ratio of the medians, second source ÷ first.

``--sequential`` removes the largest noise: the import goes first, then one
``realorders run --until-idle`` drains the store in full batches, and its whole
life's CPU (``wait4``, start-up and group join included) is the figure. Run
alongside the import (the default, as ``distributed.py``), batch sizes follow
the import's pace, so a busy minute changes the CPU per order of either source.

The harness's own Client (waiting, ``check``) is whatever this interpreter
imports: run it with ``PYTHONPATH`` at the newer source, which reads the stores
of both.

Usage: python benchmarks/distributed_ab.py --source before=DIR --source after=DIR
       [--n 100000] [--pairs 3] [--engines 1] [--sequential] [--json FILE]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from _procs import realorders_cmd
from _stores import Services, kafka_and_redis, store_config, store_env
from _workload import make_workload
from distributed import load_average, machine_info, measure, run_to_end

from realorders import Client


def source(text: str) -> tuple[str, Path]:
    name, sep, directory = text.partition("=")
    path = Path(directory).resolve()
    if not sep or not name or not (path / "realorders" / "__init__.py").exists():
        raise argparse.ArgumentTypeError(f"--source {text!r}: NAME=DIR with DIR/realorders/")
    return name, path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=source, action="append", required=True)
    parser.add_argument("--n", type=int, default=100_000, help="orders per run (100000)")
    parser.add_argument("--pairs", type=int, default=3, help="runs of each source (3)")
    parser.add_argument("--engines", type=int, default=1, help="engines per run (1)")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--sequential", action="store_true", help="import first, then one run --until-idle"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if len(args.source) != 2:
        parser.error("two --source NAME=DIR: the first is the baseline")
    args.py_spy = None  # measure() asks
    return args


def alternate(
    args: argparse.Namespace, directory: Path, services: Services
) -> list[dict[str, Any]]:
    """``--pairs`` runs of each source, AB BA AB ..., each on a fresh store."""
    inventory, orders = make_workload(directory, args.n, args.products, args.seed)
    runs: list[dict[str, Any]] = []
    for pair in range(args.pairs):
        for name, path in args.source if pair % 2 == 0 else args.source[::-1]:
            print(f"pair {pair + 1}: {name} ({path})", file=sys.stderr)
            prefix, extra_env = f"ab{pair}{name}", {"PYTHONPATH": str(path)}
            if args.sequential:
                run = drain(directory, services, inventory, orders, args, prefix, extra_env)
            else:
                run = measure(
                    directory, services, args.engines, inventory, orders, args, prefix, extra_env
                )
            runs.append({"source": name, "pair": pair + 1} | run)
            print(
                f"  {run['engine_cpu_per_1000']:.4f} engine CPU s/1k, "
                f"{run['orders_per_second']:,.0f} orders/s",
                file=sys.stderr,
            )
    return runs


def drain(
    directory: Path,
    services: Services,
    inventory: Path,
    orders: Path,
    args: argparse.Namespace,
    prefix: str,
    extra_env: dict[str, str],
) -> dict[str, Any]:
    """Import everything, then one engine drains it: its whole life's CPU per order."""
    work = directory / prefix
    work.mkdir()
    env = store_env(services, prefix, args.partitions) | extra_env
    cmd = realorders_cmd()
    run_to_end([*cmd, "init", "--inventory", str(inventory)], env, work, work / "init.log", 120)
    run_to_end([*cmd, "import", str(orders)], env, work, work / "import.log", args.timeout)
    started = time.perf_counter()
    engine = run_to_end([*cmd, "run", "--until-idle"], env, work, work / "run.log", args.timeout)
    seconds = time.perf_counter() - started
    with Client(config=store_config(services, prefix, args.partitions), create=False) as client:
        delivered = client.stats()["by_status"]["delivered"]
        check = client.check()
    if delivered != args.n or not check.ok:
        raise SystemExit(f"{prefix}: {delivered}/{args.n} delivered, check: {check.problems[:3]}")
    return {
        "orders": args.n,
        "seconds": seconds,
        "orders_per_second": args.n / seconds,
        "engine_cpu_seconds": engine.life_cpu,
        "engine_cpu_per_1000": engine.life_cpu / args.n * 1000,
        "check": check.to_dict(),
    }


def report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    runs = results["runs"]
    (base, _), (new, _) = args.source
    per = {
        name: [r["engine_cpu_per_1000"] for r in runs if r["source"] == name]
        for name in (base, new)
    }
    results["median_engine_cpu_per_1000"] = {k: statistics.median(v) for k, v in per.items()}
    results["ratio"] = statistics.median(per[new]) / statistics.median(per[base])
    results["pair_ratios"] = [n / b for b, n in zip(per[base], per[new], strict=True)]
    m = results["machine"]
    print(f"# {m['cores']} cores {m['cpu']}, Python {m['python']}, {m['broker']}, {m['date']}")
    mode = "1 engine after" if args.sequential else f"{args.engines} engine(s) during"
    print(
        f"# N = {args.n:,}, {mode} the import, {args.pairs} pairs, load average "
        f"{results['load_average_start']} → {results['load_average_end']}"
    )
    print("| source | engine CPU s/1k, each run | median | orders/s, each run |")
    print("|---|---|---|---|")
    for name in (base, new):
        mine = [r for r in runs if r["source"] == name]
        cpu = ", ".join(f"{r['engine_cpu_per_1000']:.4f}" for r in mine)
        rate = ", ".join(f"{r['orders_per_second']:,.0f}" for r in mine)
        print(f"| {name} | {cpu} | {statistics.median(per[name]):.4f} | {rate} |")
    pairs = ", ".join(f"{r:.3f}" for r in results["pair_ratios"])
    print(f"engine CPU per order, {new} / {base}: {results['ratio']:.3f} (pairs: {pairs})")


def main() -> None:
    args = parse_args()
    directory = Path(tempfile.mkdtemp(prefix="realorders-ab-"))
    try:
        with kafka_and_redis(directory) as services:
            results: dict[str, Any] = {
                "machine": machine_info(services.kafka.version, services.redis.version),
                "load_average_start": load_average(),
                "n": args.n,
                "engines": args.engines,
                "sources": {name: str(path) for name, path in args.source},
            }
            results["runs"] = alternate(args, directory, services)
            results["load_average_end"] = load_average()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    report(args, results)
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
