"""The table, the ratios against issue 6's targets, and the plot.

Ratios are realorders' orders/s divided by the other's, at saturation, same N,
same group (embedded contenders compare with each other; Kafka ones with each
other). A contender whose outcome was wrong gets no ratio.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TypeGuard

# issue 6: realorders at least this many times as fast as the named peer
SPEEDUP_TARGETS = {"sqlite_group": 1.0, "sqlite_loop": 8.0, "huey_peer": 25.0, "dbos_peer": 250.0}
CEILING_FACTOR = 6.0  # within 6x of the ceiling
P99_TARGET = 0.050  # seconds, at the fixed rate
RSS_TARGET_MB = 200.0  # at N = 1,000,000
RSS_TARGET_N = 1_000_000


def short(name: str) -> str:
    return name.removeprefix("realorders_")


def progress(index: int, total: int, run: dict[str, Any]) -> None:
    head = f"[{index}/{total}] {run['contender']} N={run['n']:,} {run['mode']}"
    if run["status"] == "ok":
        res = run["result"]
        print(
            f"{head}: {run['orders_per_second']:,.0f} orders/s, p99 {res['latency']['p99']:.3f} s, "
            f"{run['peak_rss_mb']:.0f} MB, {run['wall_seconds']:.1f} s wall",
            file=sys.stderr,
        )
    elif run["status"] != "n/a":
        print(f"{head}: {run['status']}: {run['reason']}", file=sys.stderr)


def _index(runs: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    return {(r["contender"], r["n"], r["mode"]): r for r in runs}


def _ok(run: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    return run is not None and run["status"] == "ok"


def summary(runs: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Per N and realorders contender: ratios, ceiling factor, p99 at rate, RSS; targets."""
    at = _index(runs)
    ns = sorted({r["n"] for r in runs})
    refs = sorted({r["contender"] for r in runs if r["kind"] == "realorders"})
    out: dict[str, Any] = {"targets": []}
    targets = out["targets"]
    for n in ns:
        for ref in refs:
            mine = at.get((ref, n, "saturation"))
            group = mine["group"] if mine else None
            if _ok(mine):
                assert mine is not None
                for (name, n2, mode), peer in at.items():
                    if n2 != n or mode != "saturation" or peer["group"] != group:
                        continue
                    if peer["kind"] == "realorders":
                        continue
                    if peer["kind"] == "ceiling" and _ok(peer):
                        factor = peer["orders_per_second"] / mine["orders_per_second"]
                        targets.append(
                            _target(
                                n,
                                ref,
                                f"within {CEILING_FACTOR:g}x of {name}",
                                f"{factor:.1f}x slower",
                                factor <= CEILING_FACTOR,
                            )
                        )
                    elif name in SPEEDUP_TARGETS:
                        goal = SPEEDUP_TARGETS[name]
                        if _ok(peer):
                            ratio = mine["orders_per_second"] / peer["orders_per_second"]
                            targets.append(
                                _target(
                                    n, ref, f">= {goal:g}x {name}", f"{ratio:.2f}x", ratio >= goal
                                )
                            )
                        elif peer["status"] == "FAILED":  # "not run", "not installed": in the table
                            targets.append(
                                _target(n, ref, f">= {goal:g}x {name}", f"{name} FAILED", None)
                            )
                if n >= RSS_TARGET_N:
                    rss = mine["peak_rss_mb"]
                    targets.append(
                        _target(
                            n,
                            ref,
                            f"peak RSS < {RSS_TARGET_MB:g} MB",
                            f"{rss:.0f} MB",
                            rss < RSS_TARGET_MB,
                        )
                    )
            timed = at.get((ref, n, "rate"))
            if _ok(timed):
                assert timed is not None
                p99 = timed["result"]["latency"]["p99"]
                targets.append(
                    _target(
                        n,
                        ref,
                        f"p99 < {P99_TARGET * 1000:g} ms at {rate:,.0f}/s",
                        f"{p99 * 1000:.0f} ms",
                        p99 < P99_TARGET,
                    )
                )
    return out


def _target(n: int, ref: str, goal: str, value: str, met: bool | None) -> dict[str, Any]:
    return {"n": n, "contender": ref, "target": goal, "value": value, "met": met}


def _ratios(run: dict[str, Any], at: dict[tuple[str, int, str], dict[str, Any]]) -> str:
    if run["kind"] == "realorders" or not _ok(run):
        return "–"
    parts = []
    for (name, n, mode), ref in sorted(at.items()):
        if ref["kind"] != "realorders" or n != run["n"] or mode != "saturation":
            continue
        if ref["group"] == run["group"] and _ok(ref):
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
    print(
        f"| contender | durability | N | orders/s | CPU s/1k | peak RSS MB | p50 s | p99 s | "
        f"p50 s @{rate:,.0f}/s | p99 s @{rate:,.0f}/s | realorders ÷ this (orders/s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    names = list(dict.fromkeys(r["contender"] for r in runs))
    notes = []
    for name in names:
        said = None
        for n in sorted({r["n"] for r in runs if r["contender"] == name}):
            sat, timed = at.get((name, n, "saturation")), at.get((name, n, "rate"))
            first = sat or timed
            assert first is not None
            durability = next((r["result"]["durability"] for r in (sat, timed) if _ok(r)), "–")
            if durability != "–":
                durability, said = ("same" if durability == said else durability), durability
            if _ok(sat):
                assert sat is not None
                cpu = sat["cpu_seconds"] / n * 1000
                mark = "" if sat["cpu_from"] == "window" else "†"
                cells = [
                    f"{sat['orders_per_second']:,.0f}",
                    f"{cpu:.3f}{mark}",
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
                if run["status"] == "FAILED":
                    notes.append(f"FAILED {name} N={n:,} {run['mode']}: {run['reason']}")
                lag = run.get("result", {}).get("submit_lag")
                if _ok(run) and lag and lag["p99"] > 0.010:
                    notes.append(
                        f"note: {name} N={n:,} {run['mode']}: its submitter lagged its schedule "
                        f"(p99 {lag['p99'] * 1000:.0f} ms, max {lag['max'] * 1000:.0f} ms)"
                    )
    if any(r.get("cpu_from") == "process" for r in runs):
        print("† CPU of the whole process (set-up included): the contender reported no window.")
    for line in notes:
        print(line)
    for t in results["summary"]["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"target N={t['n']:,} {t['contender']}: {t['target']}: {t['value']} ({verdict})")


def plot(results: dict[str, Any], path: Path) -> None:
    """Throughput and p99 latency against N, one line per contender, log axes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        print("plot skipped: matplotlib is not installed here", file=sys.stderr)
        return
    runs, rate = results["runs"], results["rate"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    names = list(dict.fromkeys(r["contender"] for r in runs))
    palette = plt.get_cmap("tab20")  # 20 colours: no two contenders share one
    for i, name in enumerate(names):
        color = palette(((2 * i) % 20 + (2 * i) // 20 % 2) / 19)  # the darker shades first
        sat = sorted(
            (r["n"], r)
            for r in runs
            if r["contender"] == name and r["mode"] == "saturation" and _ok(r)
        )
        timed = sorted(
            (r["n"], r) for r in runs if r["contender"] == name and r["mode"] == "rate" and _ok(r)
        )
        if sat:
            left.plot(
                [n for n, _ in sat],
                [r["orders_per_second"] for _, r in sat],
                "o-",
                color=color,
                label=name,
            )
        if sat and sat[0][1]["kind"] != "ceiling":
            right.plot(
                [n for n, _ in sat],
                [r["result"]["latency"]["p99"] for _, r in sat],
                "o-",
                color=color,
                label=f"{name}, saturation",
            )
        if timed:
            right.plot(
                [n for n, _ in timed],
                [r["result"]["latency"]["p99"] for _, r in timed],
                "s--",
                color=color,
                label=f"{name}, {rate:,.0f}/s",
            )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="orders (N)",
        ylabel="orders/s",
        title="throughput at saturation",
    )
    right.set(
        xscale="log",
        yscale="log",
        xlabel="orders (N)",
        ylabel="p99 submit→terminal (s)",
        title=f"p99 latency: saturation (solid) and {rate:,.0f} orders/s (dashed)",
    )
    right.axhline(P99_TARGET, color="grey", linestyle=":", linewidth=1)
    thousands = FuncFormatter(lambda value, _: f"{value:,.0f}")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.set_major_formatter(thousands)
    left.yaxis.set_major_formatter(thousands)
    left.legend(fontsize=8)
    right.legend(fontsize=7)
    info = results["machine"]
    fig.suptitle(
        f"realorders vs peers: {info['cpu']}, {info['cores']} cores, {info['date']}", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    print(f"plot: {path}", file=sys.stderr)
