#!/usr/bin/env python3
"""Dashboard CPU use and update lag while the engine processes orders at speed.

The real console scripts do the work, each in its own process: ``realorders
run`` (zero delays), ``realorders dashboard`` in a real terminal (a detached
tmux session on a private socket, 160x48) and, for the steady phase, a load
generator that submits orders on a fixed schedule through the Python API.
The dashboard appends one line per rendered frame to the file named by
``REALORDERS_DASHBOARD_TRACE`` (wall time after the screen refresh, the head
cursor the frame includes); with the events table that gives each event's
lag from ``at`` (stamped by the engine just before its batch commits) to the
first frame that includes it.

Two phases:

- ``--rate N`` (default 5000): open-loop load of N events/s (N/5 orders/s, each
  order is delivered: 5 events) for ``--seconds`` after a warm-up;
- ``--rate max``: a backlog of ``--backlog`` orders is imported first, then the
  engine drains it at full speed while the dashboard watches; the engine alone
  on the same backlog (same run) is the reference for its events/s.

Usage: python benchmarks/dashboard.py [--rate 5000|max] [--seconds 30] [--refresh S] [--json F]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import inspect
import itertools
import math
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

# benchmarks/engine.py, next to this file (the script's own directory is on sys.path)
from _procs import CLOCK_TICK, machine_cpu, realorders_cmd
from engine import EVENTS_PER_ORDER, make_workload

from realorders import Client
from realorders.domain import Order
from realorders.engine.ports import percentile
from realorders.tui import run_dashboard

TERMINAL_SIZE = (160, 48)
LOADGEN_TICK = 0.05  # seconds between the load generator's batches
TARGET_P95 = 0.5
#: what `realorders dashboard` uses without --refresh
DEFAULT_REFRESH: float = inspect.signature(run_dashboard).parameters["refresh"].default
TARGET_CORES = 1.0


# -- measuring processes and the machine ---------------------------------------


def proc_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system, all threads) a live process has used so far."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # fields after "pid (comm)", from state on
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def source_commit() -> str:
    """The checked-out commit, marked ``+dirty`` when realorders/ has uncommitted changes."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "realorders")
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def wait_for(what: str, done: Callable[[], bool], timeout: float, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def events_head(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT coalesce(max(cursor), 0) FROM events").fetchone()[0])
    finally:
        conn.close()


# -- the processes -------------------------------------------------------------


class Engine:
    """``realorders --db DB run`` (zero delays) as a child process."""

    def __init__(self, db: Path, log: Path, until_idle: bool = False) -> None:
        self.log = log.open("wb")
        args = [*realorders_cmd(), "--db", str(db), "run"]
        self.proc = subprocess.Popen(
            [*args, "--until-idle"] if until_idle else args,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def check(self) -> None:
        if self.proc.returncode not in (None, 0, -signal.SIGTERM):
            text = Path(self.log.name).read_text()
            raise SystemExit(f"engine failed ({self.proc.returncode}): {text}")


class Dashboard:
    """``realorders --db DB dashboard`` in a detached tmux session on its own socket.

    tmux runs the command directly (no shell), so the pane's pid is the
    dashboard's. ``remain-on-exit`` keeps a crashed dashboard's screen for the
    error message.
    """

    def __init__(self, directory: Path, db: Path, trace: Path, refresh: float | None) -> None:
        socket = directory / "sock"
        if len(str(socket)) > 100:  # AF_UNIX paths are limited to 108 bytes
            socket = Path(tempfile.mkdtemp(prefix="rodash-")) / "sock"
        self.socket = socket
        self.server_pid: int | None = None
        self.pid: int | None = None
        self.screen = ""
        command = [*realorders_cmd(), "--db", str(db), "dashboard"]
        if refresh is not None:
            command += ["--refresh", str(refresh)]
        env = {k: v for k, v in os.environ.items() if k != "TMUX"}
        env["REALORDERS_DASHBOARD_TRACE"] = str(trace)
        width, height = TERMINAL_SIZE
        self._tmux(
            "-f", "/dev/null", "start-server", ";",
            "set-option", "-g", "remain-on-exit", "on", ";",
            "new-session", "-d", "-x", str(width), "-y", str(height),
            "-e", f"REALORDERS_DASHBOARD_TRACE={trace}", *command,
            env=env,
        )  # fmt: skip
        try:
            self.server_pid = int(self._tmux("display-message", "-p", "#{pid}"))
            self.pid = int(self._tmux("list-panes", "-a", "-F", "#{pane_pid}").split()[0])
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"dashboard" not in cmdline:
                raise SystemExit(f"pane {self.pid} is not the dashboard: {cmdline.decode()}")
        except BaseException:
            self.stop()
            raise

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return proc.stdout.strip()

    def alive(self) -> bool:
        try:
            return self._tmux("list-panes", "-a", "-F", "#{pane_dead}") == "0"
        except subprocess.SubprocessError:
            return False

    def capture(self) -> str:
        try:
            return self._tmux("capture-pane", "-p", "-t", "0")
        except subprocess.SubprocessError:
            return ""

    def stop(self) -> None:
        """Quit with ``q`` (closes the trace), then SIGTERM/SIGKILL by pid, then the server."""
        try:
            if self.pid is not None and self.alive():
                self._tmux("send-keys", "q")
                deadline = time.monotonic() + 5
                while self.alive() and time.monotonic() < deadline:
                    time.sleep(0.05)
            self.screen = self.capture()
        except subprocess.SubprocessError:
            pass
        for pid in (self.pid, self.server_pid):
            if pid is not None:
                _kill_pid(pid)
        with contextlib.suppress(subprocess.SubprocessError):
            self._tmux("kill-server")
        for pid in (self.pid, self.server_pid):
            if pid is not None:
                _kill_pid(pid, signal.SIGKILL)
        if self.socket.parent.name.startswith("rodash-"):
            shutil.rmtree(self.socket.parent, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 3.0) -> None:
    """Stop one process we started (by the pid we recorded), waiting for it to go."""
    if not _running(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


class LoadGenerator:
    """This script with ``--loadgen``: submits orders on a fixed schedule, in its own process."""

    def __init__(
        self, db: Path, orders: Path, per_second: float, seconds: float, out: Path
    ) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--loadgen",
                str(db),
                str(orders),
                str(per_second),
                str(seconds),
                str(out),
            ],
            stderr=subprocess.PIPE,
        )
        self.pid = self.proc.pid

    def result(self, timeout: float) -> dict[str, Any]:
        _, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise SystemExit(f"load generator failed ({self.proc.returncode}): {err.decode()}")
        result: dict[str, Any] = orjson.loads(self.out.read_bytes())
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def loadgen(db: str, orders_path: str, per_second: str, seconds: str, out: str) -> None:
    """Open loop: every 50 ms, submit whatever the schedule says is due by now."""
    with open(orders_path, "rb") as f:
        orders = [Order.from_dict(orjson.loads(line)) for line in f]
    rate, duration = float(per_second), float(seconds)
    if len(orders) < math.ceil(rate * duration):
        raise SystemExit(f"{len(orders)} orders are not enough for {rate}/s over {duration}s")
    with Client(db, create=False) as client:
        append = client.backend.commands.append_orders
        started = time.monotonic()
        wall_started = time.time()
        sent = batches = 0
        worst_slip = 0.0
        next_tick = started
        while True:
            now = time.monotonic()
            elapsed = now - started
            if elapsed >= duration:
                break
            due = min(len(orders), int(elapsed * rate))
            if due > sent:
                append(orders[sent:due])
                batches += 1
                # how late the oldest order of this batch went out against its schedule
                worst_slip = max(worst_slip, time.monotonic() - (started + sent / rate))
                sent = due
            next_tick += LOADGEN_TICK
            time.sleep(max(0.0, next_tick - time.monotonic()))
    usage = os.times()
    Path(out).write_bytes(
        orjson.dumps(
            {
                "orders": sent,
                "batches": batches,
                "started_at": wall_started,
                "seconds": time.monotonic() - started,
                "worst_slip_seconds": worst_slip,
                "cpu_seconds": usage.user + usage.system,
            }
        )
    )


# -- lag from the trace and the events table ------------------------------------


def read_trace(trace: Path) -> tuple[list[float], list[int], list[float]]:
    """Frame wall times, the running maximum of their head cursors, their newest events' at."""
    walls: list[float] = []
    heads: list[int] = []
    newest: list[float] = []
    top = 0
    for line in trace.read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        top = max(top, int(parts[1]))
        walls.append(float(parts[0]))
        heads.append(top)
        newest.append(float(parts[2]))
    return walls, heads, newest


def trace_head(trace: Path) -> int:
    if not trace.exists():
        return -1
    _, heads, _ = read_trace(trace)
    return heads[-1] if heads else -1


def analyse(
    db: Path, trace: Path, since: float, until: float, frames_until: float | None = None
) -> dict[str, Any]:
    """Lag of every event stamped in [since, until): first frame with head >= its cursor.

    Frames are counted in [since, frames_until or until).
    """
    frames_until = until if frames_until is None else frames_until
    walls, heads, newest = read_trace(trace)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT cursor, at FROM events WHERE at >= ? AND at < ? ORDER BY cursor",
            (since, until),
        ).fetchall()
    finally:
        conn.close()
    lags: list[float] = []
    not_shown = 0
    for cursor, at in rows:
        index = bisect.bisect_left(heads, cursor)
        if index == len(heads):
            not_shown += 1
        else:
            lags.append(walls[index] - at)
    lags.sort()
    frames = [w for w in walls if since <= w < frames_until]
    # age of a frame's newest event when the frame is on screen: the lag without the
    # wait for the next poll (engine commit + the dashboard's query and render)
    ages = sorted(
        w - at for w, at in zip(walls, newest, strict=True) if since <= w < frames_until and at
    )
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    first_at = rows[0][1] if rows else since
    last_at = rows[-1][1] if rows else until
    return {
        "events": len(rows),
        "first_event_at": first_at,
        "last_event_at": last_at,
        "not_shown": not_shown,
        "frames": len(frames),
        "frames_total": len(walls),
        "frames_per_second": len(frames) / (frames_until - since),
        "max_frame_gap": max(gaps) if gaps else None,
        "lag_p50": percentile(lags, 0.50),
        "lag_p95": percentile(lags, 0.95),
        "lag_p99": percentile(lags, 0.99),
        "lag_max": lags[-1] if lags else None,
        "lag_mean": sum(lags) / len(lags) if lags else None,
        "newest_age_p50": percentile(ages, 0.50),
        "newest_age_max": ages[-1] if ages else None,
    }


class CpuWindow:
    """CPU seconds of named processes and of the machine between start() and stop()."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.begin: dict[str, float | None] = {}
        self.end: dict[str, float | None] = {}
        self.started = self.stopped = 0.0
        self.machine = (0.0, 0.0)

    def start(self) -> None:
        self.started = time.time()
        self.begin = {name: proc_cpu(pid) for name, pid in self.pids.items()}
        self.machine = (machine_cpu(), 0.0)

    def stop(self) -> None:
        self.stopped = time.time()
        self.end = {name: proc_cpu(pid) for name, pid in self.pids.items()}
        self.machine = (self.machine[0], machine_cpu())

    def cores(self) -> dict[str, float | None]:
        wall = self.stopped - self.started
        out: dict[str, float | None] = {}
        for name in self.pids:
            b, e = self.begin.get(name), self.end.get(name)
            out[name] = None if b is None or e is None else (e - b) / wall
        out["machine"] = (self.machine[1] - self.machine[0]) / wall
        ours = sum(v for k, v in out.items() if k != "machine" and v is not None)
        out["others"] = max(0.0, out["machine"] - ours)
        return out


# -- the phases ------------------------------------------------------------------


def init_store(directory: Path, db: Path, inventory: Path, orders: Path | None) -> None:
    cmd = [*realorders_cmd(), "--db", str(db)]
    subprocess.run([*cmd, "init", "--inventory", str(inventory)], check=True, capture_output=True)
    if orders is not None:
        subprocess.run([*cmd, "import", str(orders)], check=True, capture_output=True)


def start_dashboard(directory: Path, db: Path, refresh: float | None) -> tuple[Dashboard, Path]:
    trace = directory / "trace.txt"
    trace.unlink(missing_ok=True)
    dashboard = Dashboard(directory, db, trace, refresh)

    def up() -> bool:
        if not dashboard.alive():
            raise SystemExit(f"the dashboard exited early; its screen:\n{dashboard.capture()}")
        return trace.exists() and len(trace.read_text().splitlines()) >= 2

    try:
        wait_for("the dashboard's first frames", up, timeout=60)
    except BaseException:
        dashboard.stop()
        raise
    return dashboard, trace


def catch_up(dashboard: Dashboard, trace: Path, head: int, timeout: float = 15) -> None:
    """Leave the dashboard running until a frame includes ``head`` (so every lag is known)."""
    deadline = time.monotonic() + timeout
    while trace_head(trace) < head and time.monotonic() < deadline and dashboard.alive():
        time.sleep(0.1)


def steady(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Open-loop load at ``args.rate`` events/s; measured for ``args.seconds`` after warm-up."""
    per_second = args.rate / EVENTS_PER_ORDER
    duration = args.warmup + args.seconds + 1.0  # load runs on past the window's end
    n = math.ceil(per_second * duration) + 10
    inventory, orders = make_workload(directory, n, args.products, args.seed)
    db = directory / "steady.db"
    init_store(directory, db, inventory, None)
    engine = Engine(db, directory / "engine.log")
    dashboard: Dashboard | None = None
    load: LoadGenerator | None = None
    try:
        with Client(db, create=False) as client:
            wait_for("the engine", client.engine_running, timeout=30)
        dashboard, trace = start_dashboard(directory, db, args.refresh)
        load = LoadGenerator(db, orders, per_second, duration, directory / "loadgen.json")
        window = CpuWindow(
            {
                "dashboard": dashboard.pid,
                "engine": engine.pid,
                "loadgen": load.pid,
                "tmux": dashboard.server_pid,
            }
        )
        time.sleep(args.warmup)
        window.start()
        time.sleep(args.seconds)
        window.stop()
        sent = load.result(timeout=duration + 60)
        with Client(db, create=False) as client:
            wait_for(
                "the engine to deliver every order",
                lambda: (
                    client.engine_info().backlog == 0
                    and client.backend.orders.counts()["delivered"] >= sent["orders"]
                ),
                timeout=120,
                every=0.2,
            )
            delivered = client.backend.orders.counts()["delivered"]
        if delivered != sent["orders"]:
            raise SystemExit(f"{delivered}/{sent['orders']} orders delivered")
        catch_up(dashboard, trace, events_head(db))
        alive = dashboard.alive()
    finally:
        if load is not None:
            load.stop()
        if dashboard is not None:
            dashboard.stop()
        engine.stop()
    engine.check()
    if not alive:
        raise SystemExit(f"the dashboard died during the run; its screen:\n{dashboard.screen}")
    lag = analyse(db, trace, window.started, window.stopped)
    seconds = window.stopped - window.started
    return {
        "phase": f"{args.rate:,} events/s",
        "target_events_per_second": args.rate,
        "refresh": args.refresh,
        "seconds": seconds,
        "events_per_second": lag["events"] / seconds,
        "loadgen": sent,
        "cores": window.cores(),
        **lag,
    }


def full_speed(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A backlog drained at full speed under the dashboard, and by the engine alone."""
    inventory, orders = make_workload(directory, args.backlog, args.products, args.seed)
    expected = args.backlog * EVENTS_PER_ORDER
    reference: float | None = None
    if args.reference:
        alone = directory / "alone.db"
        init_store(directory, alone, inventory, orders)
        alone_engine = Engine(alone, directory / "alone.log", until_idle=True)
        try:
            alone_engine.proc.wait(600)
        finally:
            alone_engine.stop()
        alone_engine.check()
        conn = sqlite3.connect(f"file:{alone}?mode=ro", uri=True)
        count, first, last = conn.execute(
            "SELECT count(*), min(at), max(at) FROM events"
        ).fetchone()
        conn.close()
        reference = count / (last - first)
    db = directory / "full.db"
    init_store(directory, db, inventory, orders)
    dashboard, trace = start_dashboard(directory, db, args.refresh)
    engine: Engine | None = None
    try:
        time.sleep(1.0)  # a few frames of the idle store with its backlog
        window = CpuWindow({"dashboard": dashboard.pid, "tmux": dashboard.server_pid})
        window.start()
        engine = Engine(db, directory / "engine.log")
        window.pids["engine"] = engine.pid
        window.begin["engine"] = 0.0  # a new process: all its CPU is in the window
        wait_for("the engine to drain the backlog", lambda: events_head(db) >= expected, 600, 0.05)
        window.stop()
        catch_up(dashboard, trace, expected)
        alive = dashboard.alive()
    finally:
        dashboard.stop()
        if engine is not None:
            engine.stop()
    if engine is not None:
        engine.check()
    if not alive:
        raise SystemExit(f"the dashboard died during the run; its screen:\n{dashboard.screen}")
    lag = analyse(db, trace, window.started, window.stopped + 60, window.stopped)
    busy = lag["last_event_at"] - lag["first_event_at"]
    return {
        "phase": f"full speed, {args.backlog:,} backlog",
        "target_events_per_second": None,
        "refresh": args.refresh,
        "seconds": window.stopped - window.started,
        "engine_seconds": busy,
        "events_per_second": lag["events"] / busy if busy > 0 else None,
        "engine_alone_events_per_second": reference,
        "cores": window.cores(),
        **lag,
    }


# -- output ------------------------------------------------------------------------


def _f(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def print_table(results: dict[str, Any]) -> None:
    print(f"# {results['machine']}")
    print(
        f"# commit {results['commit']}; load average at start {results['load_average']}, "
        f"at end {results.get('load_average_end', '?')}"
    )
    print(f"$ {results['command']}")
    print(
        "| phase | refresh s | window s | events/s | frames/s | max frame gap s | "
        "lag p50 s | p95 s | p99 s | max s | not shown | newest event age p50 s | "
        "dashboard cores | engine cores | load gen cores | tmux cores | rest of machine cores |"
    )
    print("|---" * 17 + "|")
    for run in results["runs"]:
        cores = run["cores"]
        refresh = _f(run["refresh"], "g") if run["refresh"] else f"{DEFAULT_REFRESH:g} (default)"
        print(
            f"| {run['phase']} | {refresh} "
            f"| {run['seconds']:.1f} | {_f(run['events_per_second'], ',.0f')} "
            f"| {run['frames_per_second']:.2f} | {_f(run['max_frame_gap'], '.2f')} "
            f"| {_f(run['lag_p50'], '.3f')} | {_f(run['lag_p95'], '.3f')} "
            f"| {_f(run['lag_p99'], '.3f')} | {_f(run['lag_max'], '.3f')} | {run['not_shown']} "
            f"| {_f(run['newest_age_p50'], '.3f')} "
            f"| {_f(cores.get('dashboard'), '.2f')} | {_f(cores.get('engine'), '.2f')} "
            f"| {_f(cores.get('loadgen'), '.2f')} | {_f(cores.get('tmux'), '.2f')} "
            f"| {_f(cores.get('others'), '.2f')} |"
        )
    for run in results["runs"]:
        if run.get("engine_alone_events_per_second"):
            print(
                f"engine alone on the same backlog (same run): "
                f"{run['engine_alone_events_per_second']:,.0f} events/s; "
                f"under the dashboard: {run['events_per_second']:,.0f} events/s"
            )
        if run["target_events_per_second"] is not None and run["lag_p95"] is not None:
            lag_ok = run["lag_p95"] < TARGET_P95
            cpu_ok = (run["cores"].get("dashboard") or 0.0) < TARGET_CORES
            print(
                f"targets at {run['phase']}: lag p95 < {TARGET_P95} s "
                f"{'met' if lag_ok else 'MISSED'} ({run['lag_p95']:.3f}); "
                f"dashboard < {TARGET_CORES:g} core {'met' if cpu_ok else 'MISSED'} "
                f"({run['cores'].get('dashboard') or 0.0:.2f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", default="5000", help="events/s to submit (orders/s × 5), or 'max' (default 5000)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window (default 30)")
    parser.add_argument("--warmup", type=float, default=3.0, help="load before the window (3)")
    parser.add_argument("--backlog", type=int, default=100_000, help="orders for --rate max")
    parser.add_argument(
        "--no-reference",
        dest="reference",
        action="store_false",
        help="--rate max: skip the engine-alone run on the same backlog",
    )
    parser.add_argument(
        "--refresh",
        type=float,
        help=f"passed to `realorders dashboard --refresh` (its default {DEFAULT_REFRESH:g})",
    )
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="3 s at 250 events/s (CI)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--dir", type=Path, help="scratch directory to use and keep")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    # a TERM (e.g. a test timeout) unwinds through the finally blocks that stop everything
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.smoke:
        args.rate, args.seconds, args.warmup = "250", 3.0, 1.0
    if args.rate != "max":
        args.rate = int(args.rate)
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed: the dashboard runs in a real terminal (tmux)")

    if args.dir is not None:
        directory = args.dir
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix="realorders-dash-"))
    results: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        "load_average": load_average(),
        "commit": source_commit(),
        "command": "python benchmarks/dashboard.py " + " ".join(sys.argv[1:]),
        "directory": str(directory),
        "runs": [],
    }
    try:
        run = full_speed(directory, args) if args.rate == "max" else steady(directory, args)
        results["runs"].append(run)
        results["load_average_end"] = load_average()
    finally:
        if args.dir is None and not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    print_table(results)
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--loadgen"]:
        loadgen(*sys.argv[2:7])
    else:
        main()
