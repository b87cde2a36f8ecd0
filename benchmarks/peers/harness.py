"""Runs every contender as its own subprocess, checks its outcome, and reports.

``benchmarks/peers/run`` is the command; this module is its body (stdlib only,
so that it can create the peers' venv before anything else is importable).
Each run is ``python contenders/NAME.py --n N --seed S --dir D --rate R --out F
--workload W``, one per contender, N, mode and workload; the harness reaps it
with ``os.wait4`` for its CPU and peak RSS (children it waited for included),
times its whole life, and compares its counts and stock
with :func:`workload.outcome`. What a contender may declare at module level
(read with ``ast``, never imported here): ``MAX_N``, ``MODES``, ``WORKLOADS``,
``KIND``, ``GROUP``; see README.md.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import machine
import report
import workload

HERE = Path(__file__).resolve().parent

SMOKE = ("realorders_cli", "realorders_api", "sqlite_loop", "sqlite_group", "ceiling")
SMOKE_WORKLOADS = ("standard", "restock")
# --smoke runs the restock workload at saturation only, and not for the CLI (20 restocks are
# 20 process starts, ~6 s) nor the per-change loop (fsync-bound, ~8 s): CI stays near 30 s
SMOKE_RESTOCK = ("realorders_api", "sqlite_group", "ceiling")
WORKLOADS = ("standard", "backorder")  # a contender's workloads unless it declares WORKLOADS
LOCAL_MODULES = {p.stem for p in HERE.glob("*.py")}  # common, workload, kafka_services, …
RESULT_KEYS = ("contender", "durability", "seconds", "events", "counts", "stock", "latency")


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    path: Path
    max_n: int | None
    modes: tuple[str, ...]
    workloads: tuple[str, ...]  # the workload shapes it runs (restocks need code of their own)
    kind: str  # "realorders", "peer" or "ceiling"
    group: str  # ratios compare contenders of one group ("embedded", "kafka")
    imports: tuple[str, ...]  # its top-level third-party imports
    python: str = sys.executable  # its group's interpreter (see machine.group_python)
    missing: tuple[str, ...] = ()  # imports that interpreter lacks


def _constant(tree: ast.Module, name: str) -> Any:
    for node in tree.body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        value = getattr(node, "value", None)
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and value:
            try:
                return ast.literal_eval(value)
            except ValueError:  # not a literal: ignored, the default applies
                return None
    return None


def _imports(tree: ast.Module, siblings: set[str]) -> tuple[str, ...]:
    roots: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    local = LOCAL_MODULES | siblings | set(sys.stdlib_module_names)
    return tuple(sorted(roots - local))


def place(contenders: list[Contender], install: bool) -> dict[str, str]:
    """Give each contender its group's interpreter (built first when ``install``).

    Returns the interpreter of each group in the run.
    """
    pythons = {
        group: machine.group_python(group, install=install)
        for group in dict.fromkeys(c.group for c in contenders)
    }
    for index, c in enumerate(contenders):
        python = pythons[c.group]
        missing = machine.missing_in(python, c.imports)
        contenders[index] = dataclasses.replace(c, python=python, missing=missing)
    return pythons


def discover(only: list[str] | None) -> list[Contender]:
    """Every ``contenders/*.py`` (not ``_*``), in a stable order: realorders, peers, ceilings."""
    paths = sorted(p for p in (HERE / "contenders").glob("*.py") if not p.name.startswith("_"))
    siblings = {p.stem for p in paths}
    found = []
    for path in paths:
        try:
            tree = ast.parse(path.read_text(), str(path))
        except SyntaxError:  # run anyway: it fails with its own one-line error
            tree = ast.Module(body=[], type_ignores=[])
        name = path.stem
        kind = _constant(tree, "KIND") or (
            "realorders" if name.startswith("realorders") else "peer"
        )
        found.append(
            Contender(
                name=name,
                path=path,
                max_n=_constant(tree, "MAX_N"),
                modes=tuple(_constant(tree, "MODES") or ("saturation", "rate")),
                workloads=tuple(_constant(tree, "WORKLOADS") or WORKLOADS),
                kind=kind,
                group=_constant(tree, "GROUP") or "embedded",
                imports=_imports(tree, siblings),
            )
        )
    if only is not None:
        unknown = set(only) - {c.name for c in found}
        if unknown:
            raise SystemExit(
                f"error: no contender {', '.join(sorted(unknown))}; "
                f"have {', '.join(c.name for c in found)}"
            )
        found = [c for c in found if c.name in only]
    order = {"realorders": 0, "peer": 1, "ceiling": 2}
    return sorted(found, key=lambda c: (order.get(c.kind, 1), c.name))


def skipped(
    contender: Contender, n: int, mode: str, args: argparse.Namespace, shape: str = "standard"
) -> str | None:
    """Why this run is not made, in words for the table; None to run it."""
    if mode not in contender.modes:
        return "n/a"
    if contender.missing:
        return f"not installed: {', '.join(contender.missing)}"
    if shape not in contender.workloads:
        return "not run: no restocks" if shape == "restock" else f"not run: no {shape} workload"
    if contender.max_n is not None and n > contender.max_n:
        return f"not run: MAX_N {contender.max_n:,}"
    if mode == "rate" and n > args.rate_max_n:
        return f"not run: rate runs up to N={args.rate_max_n:,}"
    return None


def in_smoke(contender: Contender, mode: str, shape: str) -> bool:
    """Whether ``--smoke`` makes this run: the restock workload only where it is quick."""
    if shape != "restock":
        return True
    return mode == "saturation" and contender.name in SMOKE_RESTOCK


def _workdir(name: str, n: int, mode: str, rep: int, shape: str) -> str:
    return f"{name}-{shape}-{n}-{mode}-{rep}"


def combine(done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run per contender, N, mode and workload: a FAILED repeat if any, else the median.

    Every repeat's orders/s stays in ``repeats`` (the machine is shared: the
    spread says how much to trust a figure).
    """
    groups: dict[tuple[str, int, str, str], list[dict[str, Any]]] = {}
    for run in done:
        key = (run["contender"], run["n"], run["mode"], run.get("workload", "standard"))
        groups.setdefault(key, []).append(run)
    runs = []
    for group in groups.values():
        failed = [r for r in group if r["status"] == "FAILED"]
        ok = sorted((r for r in group if r["status"] == "ok"), key=lambda r: r["orders_per_second"])
        chosen = failed[0] if failed else ok[(len(ok) - 1) // 2] if ok else group[0]
        if len(ok) > 1:
            chosen = {**chosen, "repeats": [r["orders_per_second"] for r in ok]}
        runs.append(chosen)
    return runs


def run_one(
    contender: Contender,
    n: int,
    mode: str,
    rep: int,
    args: argparse.Namespace,
    scratch: Path,
    shape: str = "standard",
) -> dict[str, Any]:
    """One subprocess; its result with the harness's own measurements added."""
    rate = args.rate if mode == "rate" else 0.0
    workdir = scratch / _workdir(contender.name, n, mode, rep, shape)
    workdir.mkdir(parents=True)
    out = workdir / "result.json"
    cmd = [contender.python, str(contender.path), "--n", str(n), "--seed", str(args.seed)]
    cmd += ["--dir", str(workdir / "store"), "--rate", f"{rate:g}", "--out", str(out)]
    cmd += ["--workload", shape]
    base: dict[str, Any] = {
        "contender": contender.name,
        "n": n,
        "mode": mode,
        "workload": shape,
        "rate": rate,
    }
    log = workdir / "stderr.log"
    with log.open("wb") as err:
        started = time.perf_counter()
        # a session of its own: on timeout the whole group (its children too) is ended
        proc = subprocess.Popen(
            cmd, cwd=HERE, stdout=err, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
        )
        status, usage, timed_out = _reap(proc, args.timeout)
        wall = time.perf_counter() - started
    base["wall_seconds"] = wall
    base["cpu_seconds_process"] = usage.ru_utime + usage.ru_stime
    base["peak_rss_mb"] = usage.ru_maxrss / 1024
    if timed_out:
        return {**base, "status": "FAILED", "reason": f"timeout after {args.timeout:g} s"}
    code = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace").strip()
    if code == common.SKIP_EXIT:
        reason = (text.splitlines()[-1] if text else "skipped").removeprefix("skip: ")
        if reason.startswith("not installed: "):
            return {**base, "status": "not installed", "reason": reason.split(": ", 1)[1]}
        return {**base, "status": "not run", "reason": reason}
    if code != 0 or not out.exists():
        last = text.splitlines()[-1] if text else f"exit {code}"
        if "ModuleNotFoundError" in last:
            return {**base, "status": "not installed", "reason": last.split(": ", 1)[-1]}
        return {**base, "status": "FAILED", "reason": f"exit {code}: {last} (log: {log})"}
    try:
        result = json.loads(out.read_text())
        missing = [k for k in RESULT_KEYS if k not in result]
        if missing or result["seconds"] <= 0:
            raise ValueError(f"missing {', '.join(missing)}" if missing else "seconds <= 0")
    except ValueError as exc:
        return {**base, "status": "FAILED", "reason": f"unusable {out.name}: {exc}"}
    cpu = result.get("cpu_seconds_window")
    return {
        **base,
        "status": "ok",
        "result": result,
        "orders_per_second": n / result["seconds"],
        "cpu_seconds": cpu if cpu is not None else base["cpu_seconds_process"],
        "cpu_from": "window" if cpu is not None else "process",
    }


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, Any, bool]:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, usage, False
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we started, nothing else
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            return status, usage, True
        time.sleep(0.05)


def check(run: dict[str, Any], contender: Contender, want: workload.Outcome) -> None:
    """Mark a run FAILED when its final state differs from the expected outcome."""
    if run["status"] != "ok" or contender.kind == "ceiling":
        return
    result = run["result"]
    counts = {k: v for k, v in result["counts"].items() if v}
    problems = []
    if counts != want.counts:
        problems.append(f"counts {counts} != expected {want.counts}")
    stock = result["stock"]
    wrong = [sku for sku in want.stock if stock.get(sku) != want.stock[sku]]
    wrong += [sku for sku in stock if sku not in want.stock]
    if wrong:
        sku = wrong[0]
        problems.append(
            f"stock differs on {len(wrong)} products (e.g. {sku}: {stock.get(sku)} != "
            f"expected {want.stock.get(sku)})"
        )
    if problems:
        run["status"] = "FAILED"
        run["reason"] = "wrong outcome: " + "; ".join(problems)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/peers/run", description="realorders against what a user would pick instead"
    )
    parser.add_argument("--n", default="10000,100000,1000000", help="comma-separated order counts")
    parser.add_argument("--only", help="comma-separated contenders (default: all)")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop orders/s")
    parser.add_argument("--rate-max-n", type=int, default=100_000, help="largest N run at --rate")
    parser.add_argument("--modes", default="saturation,rate", help="saturation and/or rate")
    parser.add_argument(
        "--workload",
        default=",".join(workload.SHAPES),
        help=f"comma-separated workload shapes ({', '.join(workload.SHAPES)})",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each, interleaved; the median is reported"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--plot", type=Path, help="throughput and p99 vs N (.png or .svg)")
    parser.add_argument(
        "--report", type=Path, help="print the table (and --plot) of an earlier --json; run nothing"
    )
    parser.add_argument("--dir", type=Path, help="scratch directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch stores")
    parser.add_argument("--no-install", action="store_true", help="use this interpreter as is")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="--n 2000, realorders and the loops, standard and restock workloads, no install",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.no_install = "2000", True
        args.only = args.only or ",".join(SMOKE)
    # --smoke's own plan (SMOKE_WORKLOADS, restock where quick) unless --workload is given
    args.smoke_plan = args.smoke and not any(a.split("=")[0] == "--workload" for a in argv)
    if args.smoke_plan:
        args.workload = ",".join(SMOKE_WORKLOADS)
    args.ns = [int(x.replace("_", "")) for x in args.n.split(",") if x.strip()]
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.workloads = [w.strip() for w in args.workload.split(",") if w.strip()]
    if not args.workloads or set(args.workloads) - set(workload.SHAPES):
        parser.error(f"--workload takes {', '.join(workload.SHAPES)}")
    if not args.ns or any(n < 1 for n in args.ns):
        parser.error("--n needs positive counts")
    if args.repeat < 1:
        parser.error("--repeat needs at least 1")
    if set(args.mode_list) - {"saturation", "rate"}:
        parser.error("--modes takes saturation and/or rate")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.report is not None:
        results = json.loads(args.report.read_text())
        results["summary"] = report.summary(results["runs"], results["rate"])
        report.print_table(results)
        if args.plot:
            report.plot(results, args.plot)
        return 0
    if not args.no_install:
        machine.ensure_peers_env(argv)  # re-executes in .cache/peers-venv when needed
    contenders = discover(args.only.split(",") if args.only else None)
    pythons = place(contenders, install=not args.no_install or machine.reexecuted(argv))
    scratch = args.dir or Path(tempfile.mkdtemp(prefix="realorders-peers-"))
    scratch.mkdir(parents=True, exist_ok=True)
    info = machine.describe(argv, pythons)
    done: list[dict[str, Any]] = []
    planned = [
        (n, shape, mode, rep, c)
        for n in args.ns
        for shape in args.workloads
        for mode in args.mode_list
        for rep in range(args.repeat)  # interleaved: a noisy minute hits every contender
        for c in contenders
        if (rep == 0 or skipped(c, n, mode, args, shape) is None)
        and (not args.smoke_plan or in_smoke(c, mode, shape))
    ]
    try:
        expected: dict[tuple[int, str], workload.Outcome] = {}
        for index, (n, shape, mode, rep, contender) in enumerate(planned, 1):
            if (
                n,
                shape,
            ) not in expected:  # streamed: the harness stays small (its RSS is the floor)
                expected[n, shape] = workload.outcome(
                    workload.stock_for(n, args.seed, shape=shape),
                    workload.iter_orders(n, args.seed, shape=shape),
                    workload.restocks_for(n, args.seed, shape=shape),
                )
            why = skipped(contender, n, mode, args, shape)
            if why is not None:
                run: dict[str, Any] = {
                    "contender": contender.name,
                    "n": n,
                    "mode": mode,
                    "workload": shape,
                }
                run["status"], run["reason"] = ("n/a", "") if why == "n/a" else why.split(": ", 1)
            else:
                run = run_one(contender, n, mode, rep, args, scratch, shape)
                check(run, contender, expected[n, shape])
                if not args.keep:
                    store = scratch / _workdir(contender.name, n, mode, rep, shape) / "store"
                    shutil.rmtree(store, True)
            run["kind"], run["group"] = contender.kind, contender.group
            done.append(run)
            report.progress(index, len(planned), run)
    finally:
        failed = any(r["status"] == "FAILED" for r in done)
        if not args.keep and args.dir is None and not failed:
            shutil.rmtree(scratch, ignore_errors=True)
    runs = combine(done)
    info["harness_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info["load_after"] = os.getloadavg()
    results = {
        "machine": info,
        "rate": args.rate,
        "seed": args.seed,
        "workloads": args.workloads,
        "runs": runs,
    }
    results["summary"] = report.summary(runs, args.rate)
    report.print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.plot:
        report.plot(results, args.plot)
    return 1 if any(r["status"] == "FAILED" for r in runs) else 0
