"""The tables, the ratios against issue 17's targets, and the plot.

One table per workload. Ratios are realorders' orders/s divided by the
other's, at saturation, same workload, same N, same group (embedded contenders
compare with each other; Kafka ones with each other). A contender whose
outcome was wrong gets no ratio. A run without a ``workload`` key (a JSON
written before workloads existed) is a ``standard`` one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TypeGuard

# issue 17 (after issue 6): realorders at least this many times as fast as the named peer
SPEEDUP_TARGETS = {"sqlite_group": 1.0, "sqlite_loop": 8.0, "huey_peer": 25.0, "dbos_peer": 250.0}
CEILING_FACTOR = 6.0  # within 6x of the ceiling
P99_TARGET = 0.050  # seconds, at the fixed rate
# not for the restock workload: its woken orders wait for their restock (a quarter of the run)
P99_WORKLOADS = ("standard", "backorder")
RSS_TARGET_MB = 200.0  # at N = 1,000,000
RSS_TARGET_N = 1_000_000
CPU_FLAT_FROM = 100_000  # per-order CPU at the largest N >= CPU_FLAT_TO ...
CPU_FLAT_TO = 1_000_000
CPU_FLAT_FACTOR = 1.10  # ... is at most this times the one at CPU_FLAT_FROM

Key = tuple[str, int, str, str]  # contender, N, mode, workload


def short(name: str) -> str:
    return name.removeprefix("realorders_")


def workload_of(run: dict[str, Any]) -> str:
    return run.get("workload", "standard")


def progress(index: int, total: int, run: dict[str, Any]) -> None:
    head = f"[{index}/{total}] {run['contender']} {workload_of(run)} N={run['n']:,} {run['mode']}"
    if run["status"] == "ok":
        res = run["result"]
        print(
            f"{head}: {run['orders_per_second']:,.0f} orders/s, p99 {res['latency']['p99']:.3f} s, "
            f"{run['peak_rss_mb']:.0f} MB, {run['wall_seconds']:.1f} s wall",
            file=sys.stderr,
        )
    elif run["status"] != "n/a":
        print(f"{head}: {run['status']}: {run['reason']}", file=sys.stderr)


def _index(runs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {(r["contender"], r["n"], r["mode"], workload_of(r)): r for r in runs}


def _ok(run: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    return run is not None and run["status"] == "ok"


def workloads(runs: list[dict[str, Any]]) -> list[str]:
    """The workloads of these runs, in the order they were run."""
    return list(dict.fromkeys(workload_of(r) for r in runs))


def cpu_per_1k(run: dict[str, Any]) -> float:
    return run["cpu_seconds"] / run["n"] * 1000


def summary(runs: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Per workload, N and realorders contender: ratios, ceiling, p99, RSS, CPU flatness."""
    at = _index(runs)
    ns = sorted({r["n"] for r in runs})
    refs = sorted({r["contender"] for r in runs if r["kind"] == "realorders"})
    targets: list[dict[str, Any]] = []
    for shape in workloads(runs):
        for n in ns:
            for ref in refs:
                targets += _targets_at(at, shape, n, ref, rate)
        for ref in refs:
            flat = _cpu_flat(at, shape, ns, ref)
            if flat is not None:
                targets.append(flat)
    return {"targets": targets}


def _targets_at(
    at: dict[Key, dict[str, Any]], shape: str, n: int, ref: str, rate: float
) -> list[dict[str, Any]]:
    out = []
    mine = at.get((ref, n, "saturation", shape))
    if _ok(mine):
        for (name, n2, mode, shape2), peer in at.items():
            if (n2, mode, shape2) != (n, "saturation", shape) or peer["group"] != mine["group"]:
                continue
            if peer["kind"] == "realorders":
                continue
            if peer["kind"] == "ceiling" and _ok(peer):
                factor = peer["orders_per_second"] / mine["orders_per_second"]
                goal = f"within {CEILING_FACTOR:g}x of {name}"
                value = f"{factor:.1f}x slower"
                out.append(_target(shape, n, ref, goal, value, factor <= CEILING_FACTOR))
            elif name in SPEEDUP_TARGETS:
                goal = f">= {SPEEDUP_TARGETS[name]:g}x {name}"
                if _ok(peer):
                    ratio = mine["orders_per_second"] / peer["orders_per_second"]
                    met = ratio >= SPEEDUP_TARGETS[name]
                    out.append(_target(shape, n, ref, goal, f"{ratio:.2f}x", met))
                elif peer["status"] == "FAILED":  # "not run", "not installed": in the table
                    out.append(_target(shape, n, ref, goal, f"{name} FAILED", None))
        if n >= RSS_TARGET_N:
            rss = mine["peak_rss_mb"]
            goal = f"peak RSS < {RSS_TARGET_MB:g} MB"
            out.append(_target(shape, n, ref, goal, f"{rss:.0f} MB", rss < RSS_TARGET_MB))
    timed = at.get((ref, n, "rate", shape))
    if _ok(timed) and shape in P99_WORKLOADS:
        p99 = timed["result"]["latency"]["p99"]
        goal = f"p99 < {P99_TARGET * 1000:g} ms at {rate:,.0f}/s"
        out.append(_target(shape, n, ref, goal, f"{p99 * 1000:.0f} ms", p99 < P99_TARGET))
    return out


def _cpu_flat(
    at: dict[Key, dict[str, Any]], shape: str, ns: list[int], ref: str
) -> dict[str, Any] | None:
    """Per-order CPU at the largest N >= 1M over the one at 100k (None unless both ran)."""
    base = at.get((ref, CPU_FLAT_FROM, "saturation", shape))
    big = [at.get((ref, n, "saturation", shape)) for n in ns if n >= CPU_FLAT_TO]
    big = [r for r in big if _ok(r)]
    if not _ok(base) or not big:
        return None
    top = big[-1]
    ratio = cpu_per_1k(top) / cpu_per_1k(base)
    goal = f"CPU per order flat from {CPU_FLAT_FROM:,}: <= {CPU_FLAT_FACTOR:g}x"
    value = f"{ratio:.2f}x ({cpu_per_1k(base):.3f} -> {cpu_per_1k(top):.3f} s/1k)"
    return _target(shape, top["n"], ref, goal, value, ratio <= CPU_FLAT_FACTOR)


def _target(
    shape: str, n: int, ref: str, goal: str, value: str, met: bool | None
) -> dict[str, Any]:
    return {
        "workload": shape,
        "n": n,
        "contender": ref,
        "target": goal,
        "value": value,
        "met": met,
    }


def _ratios(run: dict[str, Any], at: dict[Key, dict[str, Any]]) -> str:
    if run["kind"] == "realorders" or not _ok(run):
        return "–"
    parts = []
    for (name, n, mode, shape), ref in sorted(at.items()):
        if ref["kind"] != "realorders" or n != run["n"] or mode != "saturation":
            continue
        if shape == workload_of(run) and ref["group"] == run["group"] and _ok(ref):
            ratio = ref["orders_per_second"] / run["orders_per_second"]
            text = f"{short(name)} {ratio:.2f}×"
            if run["kind"] == "ceiling":
                text += f" (1/{1 / ratio:.1f})"
            parts.append(text)
    return " · ".join(parts) or "–"


def _latency(run: dict[str, Any] | None) -> tuple[str, str]:
    if run is None:
        return "–", "–"
    if not _ok(run):
        return (run["status"] if run["status"] != "n/a" else "–"), "–"
    if run["kind"] == "ceiling":
        return "–", "–"
    lat = run["result"]["latency"]
    return f"{lat['p50']:.3f}", f"{lat['p99']:.3f}"


def print_table(results: dict[str, Any]) -> None:
    runs, rate, info = results["runs"], results["rate"], results["machine"]
    at = _index(runs)
    print(
        f"# {info['date']}, {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"Python {info['python']}, SQLite {info['sqlite']}, commit {info['commit']}"
        f"{' (+ uncommitted changes)' if info['uncommitted_changes'] else ''}, "
        f"load {info['load_before'][0]:.2f} → {info['load_after'][0]:.2f}"
    )
    print("# " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    notes: list[str] = []
    for shape in workloads(runs):
        print()
        print(f"## workload: {shape}")
        print()
        notes += _table(shape, [r for r in runs if workload_of(r) == shape], at, rate)
    print()
    if any(r.get("cpu_from") == "process" for r in runs):
        print("† CPU of the whole process (set-up included): the contender reported no window.")
    for line in notes:
        print(line)
    for t in results["summary"]["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(
            f"target {t.get('workload', 'standard')} N={t['n']:,} {t['contender']}: "
            f"{t['target']}: {t['value']} ({verdict})"
        )


def _table(
    shape: str, runs: list[dict[str, Any]], at: dict[Key, dict[str, Any]], rate: float
) -> list[str]:
    """One workload's table; returns its notes (FAILED runs, lagging submitters)."""
    print(
        f"| contender | durability | N | orders/s | CPU s/1k | peak RSS MB | p50 s | p99 s | "
        f"p50 s @{rate:,.0f}/s | p99 s @{rate:,.0f}/s | realorders ÷ this (orders/s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    notes = []
    said = None
    for name in dict.fromkeys(r["contender"] for r in runs):
        for n in sorted({r["n"] for r in runs if r["contender"] == name}):
            sat, timed = at.get((name, n, "saturation", shape)), at.get((name, n, "rate", shape))
            first = sat or timed
            assert first is not None
            durability = next((r["result"]["durability"] for r in (sat, timed) if _ok(r)), "–")
            if durability != "–":
                durability, said = ("same" if durability == said else durability), durability
            if _ok(sat):
                mark = "" if sat["cpu_from"] == "window" else "†"
                cells = [
                    f"{sat['orders_per_second']:,.0f}",
                    f"{cpu_per_1k(sat):.3f}{mark}",
                    f"{sat['peak_rss_mb']:.0f}",
                ]
            else:
                status = "–" if sat is None or sat["status"] == "n/a" else sat["status"]
                if sat is not None and sat["status"] in ("not run", "not installed"):
                    status = f"{sat['status']}: {sat['reason']}"
                cells = [status, "–", "–"]
            cells += [*_latency(sat), *_latency(timed)]
            print(
                f"| {name} | {durability} | {n:,} | "
                + " | ".join(cells)
                + f" | {_ratios(first, at)} |"
            )
            for run in (sat, timed):
                if run is None:
                    continue
                where = f"{name} {shape} N={n:,} {run['mode']}"
                if run["status"] == "FAILED":
                    notes.append(f"FAILED {where}: {run['reason']}")
                lag = run.get("result", {}).get("submit_lag")
                if _ok(run) and lag and lag["p99"] > 0.010:
                    notes.append(
                        f"note: {where}: its submitter lagged its schedule "
                        f"(p99 {lag['p99'] * 1000:.0f} ms, max {lag['max'] * 1000:.0f} ms)"
                    )
    return notes


def plot(results: dict[str, Any], path: Path) -> None:
    """Per workload (columns): throughput, CPU per 1,000 orders and p99 latency against N.

    Log axes; one colour per contender in every panel; p99 at saturation solid,
    at the fixed rate dashed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        print("plot skipped: matplotlib is not installed here", file=sys.stderr)
        return
    runs, rate = results["runs"], results["rate"]
    shapes = workloads(runs)
    fig, axes = plt.subplots(
        3, len(shapes), figsize=(6.2 * len(shapes), 13), squeeze=False, sharex=True
    )
    names = list(dict.fromkeys(r["contender"] for r in runs))
    palette = plt.get_cmap("tab20")  # 20 colours: no two contenders share one
    colors = {
        name: palette(((2 * i) % 20 + (2 * i) // 20 % 2) / 19)  # the darker shades first
        for i, name in enumerate(names)
    }
    for col, shape in enumerate(shapes):
        thru, cpu, lat = axes[0][col], axes[1][col], axes[2][col]
        for name in names:
            color = colors[name]
            mine = [r for r in runs if r["contender"] == name and workload_of(r) == shape]
            sat = sorted((r["n"], r) for r in mine if r["mode"] == "saturation" and _ok(r))
            timed = sorted((r["n"], r) for r in mine if r["mode"] == "rate" and _ok(r))
            xs = [n for n, _ in sat]
            if sat:
                thru.plot(
                    xs, [r["orders_per_second"] for _, r in sat], "o-", color=color, label=name
                )
                cpu.plot(xs, [cpu_per_1k(r) for _, r in sat], "o-", color=color, label=name)
            if sat and sat[0][1]["kind"] != "ceiling":
                lat.plot(
                    xs,
                    [r["result"]["latency"]["p99"] for _, r in sat],
                    "o-",
                    color=color,
                    label=f"{name}, saturation",
                )
            if timed:
                lat.plot(
                    [n for n, _ in timed],
                    [r["result"]["latency"]["p99"] for _, r in timed],
                    "s--",
                    color=color,
                    label=f"{name}, {rate:,.0f}/s",
                )
        thru.set(ylabel="orders/s", title=f"{shape}: throughput at saturation")
        cpu.set(ylabel="CPU s per 1,000 orders", title=f"{shape}: CPU per 1,000 orders")
        lat.set(
            xlabel="orders (N)",
            ylabel="p99 submit→terminal (s)",
            title=f"{shape}: p99, saturation (solid), {rate:,.0f}/s (dashed)",
        )
        if shape in P99_WORKLOADS:
            lat.axhline(P99_TARGET, color="grey", linestyle=":", linewidth=1)
        thousands = FuncFormatter(lambda value, _: f"{value:,.0f}")
        for ax in (thru, cpu, lat):
            ax.set(xscale="log", yscale="log")
            ax.grid(True, which="both", alpha=0.3)
            ax.xaxis.set_major_formatter(thousands)
        thru.yaxis.set_major_formatter(thousands)
        thru.legend(fontsize=7)
        lat.legend(fontsize=6)
    info = results["machine"]
    fig.suptitle(
        f"realorders vs peers: {info['cpu']}, {info['cores']} cores, {info['date']}", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    print(f"plot: {path}", file=sys.stderr)
