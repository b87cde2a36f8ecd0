#!/usr/bin/env python3
"""Throughput, latency and CPU of the distributed mode (Kafka + Redis), 1 and 2 engines.

Starts the project's own broker and Redis (``scripts/services/services.py``) in
a scratch directory, measures the broker's ceiling for the Python client first,
then for each engine count on a fresh store (``bench1``, ``bench2``: own topics,
Redis prefix and consumer group, same partition count):

1. ``realorders init --inventory`` (stock for every order: all are delivered);
2. E x ``realorders run``, real console-script processes, until each has logged
   ``now owns partitions`` and together they own every partition exactly once;
3. ``realorders import orders.ndjson`` (N orders, 1-3 lines over 50 products,
   fixed seed) while the engines run; the clock starts with the import and
   stops when Redis counts N terminal orders (polled every 0.2 s);
4. ``Client.stats()`` for latency, the engines stopped (SIGTERM), ``check``.

Ceiling, same run, same broker, before any engine: kafka-python's
KafkaProducer (acks=all, idempotent, linger 5 ms, batch 256 KB, the intake's
settings) producing the benchmark's own command records (same keys, same
bytes) to a topic with the same partition count, and a KafkaConsumer reading
them back. Services are stopped by PID at the end, whatever happens.

Usage: python benchmarks/distributed.py [--n 100000] [--engines 1,2] [--json FILE] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import kafka
import orjson
import redis
from _procs import machine_cpu, proc_cpu, realorders_cmd
from _stores import Services, load_services, store_config, store_env
from _workload import make_workload
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.record.util import crc32c_c as kafka_crc32c_c

from realorders import Client
from realorders.domain import TERMINAL
from realorders.engine.backends.distributed.commands import encode_command
from realorders.engine.ports import CommandKind

ROOT = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.2  # how often the harness asks Redis for the terminal count
OWNS = re.compile(r"now owns partitions \[([0-9, ]*)\]")
TARGET_ONE_ENGINE = 10_000  # orders/s end to end with one engine (issue 5)
TARGET_CPU_RATIO = 1.15  # CPU per order, 2 engines / 1 engine (issue 5)
SMOKE_N = 2000
JOIN_TIMEOUT = 30.0  # seconds for the engines to own every partition (a join takes 1-9 s)


# -- the services script, the machine, processes ------------------------------


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def source_commit() -> str:
    """``git rev-parse --short HEAD``, ``+dirty`` when realorders/ has uncommitted changes."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "realorders")
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def machine_info(kafka_version: str, redis_version: str) -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
    return {
        "host": platform.node(),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka_python": kafka.__version__,
        # kafka-python checksums every record batch (produce and fetch) in pure Python
        # unless the optional C package ``crc32c`` is importable; it decides the engine's CPU
        "kafka_crc32c": "crc32c (C)" if kafka_crc32c_c is not None else "pure Python",
        "redis_py": redis.__version__,
        "broker": f"Apache Kafka {kafka_version} (KRaft, 1 node, scripts/services)",
        "redis_server": redis_version,
        "commit": source_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def exited(pid: int, timeout: float) -> tuple[int, resource.struct_rusage] | None:
    """``wait4`` our child for up to ``timeout`` s: (exit code, rusage), or None if it runs on."""
    deadline = time.monotonic() + timeout
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), usage
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


class Process:
    """A realorders subprocess: output kept (stderr scanned), reaped with ``wait4`` for its CPU."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out = b""
        self.lines: list[str] = []
        self.owned: tuple[int, ...] = ()  # the last "now owns partitions [...]" it logged
        self.life_cpu = 0.0
        self._readers = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        self.out = self.proc.stdout.read()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            found = OWNS.search(line)
            if found:
                self.owned = tuple(int(p) for p in found.group(1).split(",") if p.strip())

    def running(self) -> bool:
        # never poll()/wait() here: reaping is reap()'s job (it needs wait4's rusage)
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state not in ("Z", "X")

    def stderr(self) -> str:
        return "\n".join(self.lines)

    def reap(self, timeout: float, sig: int | None = None) -> int:
        """Send ``sig`` if given, wait up to ``timeout`` s (then SIGKILL); the exit code."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        # os.kill, not Popen.send_signal: that polls first and could reap the child,
        # and wait4 (its CPU) must be the one to do it
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
        result = exited(self.pid, timeout)
        if result is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            result = exited(self.pid, 30.0)
        if result is None:
            raise SystemExit(f"pid {self.pid} survived SIGKILL")
        code, usage = result
        self.proc.returncode = code  # so that Popen never waits for it again
        self.life_cpu = usage.ru_utime + usage.ru_stime
        for reader in self._readers:
            reader.join(timeout=5)
        self.log.write_text(self.stderr() + "\n")
        return code


def run_to_end(
    args: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float
) -> Process:
    """Run a command to its end (exit 0 or SystemExit); the process, its stdout and CPU."""
    proc = Process(args, env, cwd, log)
    code = proc.reap(timeout)
    if code != 0:
        raise SystemExit(f"{' '.join(args)} exited {code}:\n{proc.stderr()}")
    return proc


# -- workload and ceiling -----------------------------------------------------


def command_records(orders: Path) -> list[tuple[bytes, bytes]]:
    """(key, value) of each order's submit command, byte for byte what ``import`` produces."""
    now = time.time()
    records = []
    with orders.open("rb") as f:
        for position, line in enumerate(f, start=1):
            order = orjson.loads(line)
            value = encode_command(CommandKind.SUBMIT, order["id"], order, position, now)
            records.append((order["id"].encode(), value))
    return records


def ceiling(bootstrap: str, records: list[tuple[bytes, bytes]], partitions: int) -> dict[str, Any]:
    """The Python client's raw produce and consume rates on this broker, for these records."""
    topic = "ceiling.records"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
    )
    try:
        producer.partitions_for(topic)  # metadata before the clock starts
        started = time.perf_counter()
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush(timeout=300)
        produce_seconds = time.perf_counter() - started
    finally:
        producer.close()
    failed = sum(1 for future in futures if future.failed())
    if failed:
        raise SystemExit(f"ceiling: {failed} of {len(records)} records were not produced")

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5000,  # as the engine's consumer
    )
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        consumer.seek_to_beginning()
        got = 0
        nbytes = 0
        started = time.perf_counter()
        deadline = time.monotonic() + 300
        while got < len(records):
            for batch in consumer.poll(timeout_ms=200, max_records=5000).values():
                got += len(batch)
                nbytes += sum(len(rec.value) for rec in batch)
            if time.monotonic() > deadline:
                raise SystemExit(f"ceiling: consumed {got} of {len(records)} records in 300 s")
        consume_seconds = time.perf_counter() - started
    finally:
        consumer.close()
    count = len(records)
    return {
        "topic_partitions": partitions,
        "records": count,
        "record_bytes_mean": sum(len(v) for _, v in records) / count,
        "key_bytes_mean": sum(len(k) for k, _ in records) / count,
        "consumed_bytes": nbytes,
        "produce_seconds": produce_seconds,
        "produce_records_per_second": count / produce_seconds,
        "consume_seconds": consume_seconds,
        "consume_records_per_second": count / consume_seconds,
    }


# -- one measured run ----------------------------------------------------------


class JoinFailed(Exception):
    """The engines did not come to own every partition exactly once in time."""


def wait_for_ownership(engines: list[Process], partitions: int, timeout: float) -> None:
    """Until every engine owns a non-empty set and together they own each partition once."""
    deadline = time.monotonic() + timeout
    while True:
        sets = [set(e.owned) for e in engines]
        if all(sets) and sum(map(len, sets)) == partitions == len(set().union(*sets)):
            return
        for engine in engines:
            if not engine.running():
                raise SystemExit(f"an engine exited while joining:\n{engine.stderr()}")
        if time.monotonic() > deadline:
            raise JoinFailed(f"after {timeout:.0f} s the engines own {[sorted(s) for s in sets]}")
        time.sleep(0.05)


def start_engines(
    cmd: list[str], env: dict[str, str], work: Path, count: int, partitions: int
) -> tuple[list[Process], list[str]]:
    """``count`` engines that share the partitions; a failed join is retried once, reported.

    A failed attempt leaves ``py-spy dump`` of each engine (when py-spy is there) and the
    engines' logs in ``work``; its description is returned for the results.
    """
    failures: list[str] = []
    for attempt in (1, 2):
        engines = [
            Process([*cmd, "run"], env, work, work / f"engine{i + 1}-attempt{attempt}.log")
            for i in range(count)
        ]
        try:
            wait_for_ownership(engines, partitions, timeout=JOIN_TIMEOUT)
        except BaseException as exc:
            spy = py_spy()
            if spy is not None and isinstance(exc, JoinFailed):
                for i, engine in enumerate(engines):
                    dump = subprocess.run(
                        [spy, "dump", "--pid", str(engine.pid)],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    (work / f"engine{i + 1}-attempt{attempt}.dump").write_text(
                        dump.stdout + dump.stderr
                    )
            for engine in engines:
                engine.reap(timeout=30, sig=signal.SIGTERM)
            if not isinstance(exc, JoinFailed) or attempt == 2:
                raise
            failures.append(f"attempt {attempt}: {exc} (logs and py-spy dumps in {work})")
            print(f"warning: join failed, retrying: {failures[-1]}", file=sys.stderr)
        else:
            return engines, failures
    raise AssertionError("unreachable")


def cpu_snapshot(engines: list[Process], services: Services) -> dict[str, float]:
    """CPU seconds so far of each engine, the broker, Redis, this harness and the machine."""
    cpu = {f"engine{i + 1}": proc_cpu(e.pid) for i, e in enumerate(engines)}
    cpu |= {name: proc_cpu(pid) for name, pid in services.pids.items()}
    cpu["harness"] = own_cpu()
    cpu["machine"] = machine_cpu()
    return cpu


def wait_terminal(client: Client, engines: list[Process], n: int, timeout: float) -> None:
    """Poll Redis's status counts (one HGETALL) until ``n`` orders are terminal."""
    read_model = client.backend.orders
    deadline = time.monotonic() + timeout
    while True:
        counts = read_model.counts()
        if sum(counts[s.value] for s in TERMINAL) >= n:
            return
        for engine in engines:
            if not engine.running():
                raise SystemExit(f"an engine exited:\n{engine.stderr()}")
        if time.monotonic() > deadline:
            raise SystemExit(f"not finished after {timeout:.0f} s: {counts}")
        time.sleep(POLL_SECONDS)


def stop_engines(engines: list[Process]) -> None:
    """SIGTERM each engine (it commits and leaves the group) and reap it with its CPU."""
    for engine in engines:
        code = engine.reap(timeout=60, sig=signal.SIGTERM)
        if code != 0:
            raise SystemExit(f"engine pid {engine.pid} exited {code}:\n{engine.stderr()}")


def redis_commandstats(url: str, reset: bool = False) -> dict[str, dict[str, float]]:
    """Redis's own time per command since the last reset (calls made by scripts included)."""
    with redis.Redis.from_url(url) as r:
        info: dict[str, Any] = r.info("commandstats")
        if reset:
            r.config_resetstat()
    stats = {
        name.removeprefix("cmdstat_"): {"calls": v["calls"], "usec": v["usec"]}
        for name, v in info.items()
    }
    return dict(sorted(stats.items(), key=lambda kv: -kv[1]["usec"]))


def py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def start_profiles(engines: list[Process], out: Path | None, prefix: str) -> list[Process]:
    """``py-spy record`` (raw collapsed stacks, 100 Hz, non-blocking) on each engine."""
    spy = py_spy()
    if out is None:
        return []
    if spy is None:
        raise SystemExit("--py-spy: py-spy is not installed (pip install py-spy)")
    out.mkdir(parents=True, exist_ok=True)
    spies = []
    for i, engine in enumerate(engines):
        name = f"{prefix}-engine{i + 1}"
        argv = [spy, "record", "--pid", str(engine.pid), "--format", "raw", "--threads"]
        argv += ["--nonblocking", "--output", str(out / f"{name}.txt")]
        spies.append(Process(argv, dict(os.environ), out, out / f"{name}.log"))
    time.sleep(1.0)  # py-spy attaches before the clock starts
    return spies


def measure(
    directory: Path,
    services: Services,
    engines_count: int,
    inventory: Path,
    orders: Path,
    args: argparse.Namespace,
    prefix: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One engine count on a fresh store: init, engines up, import, drain, stop, check.

    ``prefix`` names the store (default ``bench<engines>``); ``extra_env`` goes to every
    realorders process (``distributed_ab.py`` points PYTHONPATH at the source to measure).
    """
    n: int = args.n
    prefix = prefix or f"bench{engines_count}"
    work = directory / prefix
    work.mkdir()
    env = store_env(services, prefix, args.partitions) | (extra_env or {})
    cmd = realorders_cmd()
    init = [*cmd, "init", "--inventory", str(inventory)]
    run_to_end(init, env, work, work / "init.log", timeout=120)
    timings: dict[str, float] = {}
    engines, join_failures = start_engines(cmd, env, work, engines_count, args.partitions)
    try:
        spies = start_profiles(engines, args.py_spy, prefix)
        with Client(config=store_config(services, prefix, args.partitions), create=False) as client:
            redis_commandstats(services.redis.url, reset=True)
            before = cpu_snapshot(engines, services)
            started = time.perf_counter()
            wall_start = time.time()
            importer = run_to_end(
                [*cmd, "import", "--json", str(orders)],
                env,
                work,
                work / "import.log",
                timeout=args.timeout,
            )
            timings["import"] = time.perf_counter() - started
            report = orjson.loads(importer.out)
            if report["accepted"] != n:
                raise SystemExit(f"{prefix}: the import accepted {report['accepted']} of {n}")
            wait_terminal(client, engines, n, args.timeout)
            timings["total"] = time.perf_counter() - started
            after = cpu_snapshot(engines, services)
            commandstats = redis_commandstats(services.redis.url)
            for spy in spies:
                spy.reap(timeout=30, sig=signal.SIGINT)
            stats = client.stats()
            with redis.Redis.from_url(services.redis.url) as r:
                last_terminal = r.hget(f"{prefix}:meta", "last_terminal")
            stop_engines(engines)
            checking = time.perf_counter()
            check = client.check()
            timings["check"] = time.perf_counter() - checking
    finally:
        for engine in engines:
            engine.reap(timeout=30, sig=signal.SIGTERM)
    delivered = stats["by_status"]["delivered"]
    if delivered != n or not check.ok:
        raise SystemExit(f"{prefix}: {delivered}/{n} delivered, check: {check.problems[:3]}")
    cpu = {name: after[name] - before[name] for name in after}
    cpu["import"] = importer.life_cpu  # the whole process: it ran inside the window
    machine = cpu.pop("machine")
    cpu["rest_of_machine"] = max(0.0, machine - sum(cpu.values()))
    engine_cpu = sum(cpu[f"engine{i + 1}"] for i in range(engines_count))
    seconds = timings["total"]
    latency = stats["latency_seconds"]
    return {
        "engines": engines_count,
        "prefix": prefix,
        "orders": n,
        "seconds": seconds,
        "orders_per_second": n / seconds,
        "last_terminal_seconds": float(last_terminal) - wall_start if last_terminal else None,
        "import_seconds": timings["import"],
        "import_own_seconds": report["seconds"],
        "import_orders_per_second": n / timings["import"],
        "latency_p50": latency["p50"],
        "latency_p95": latency["p95"],
        "latency_p99": latency["p99"],
        "latency_max": latency["max"],
        "engine_cpu_seconds": engine_cpu,
        "engine_cpu_per_1000": engine_cpu / n * 1000,
        "engine_life_cpu_seconds": sum(e.life_cpu for e in engines),
        "cpu_seconds": cpu,
        "busy_cores": machine / seconds,
        "owned_partitions": [sorted(e.owned) for e in engines],
        "check_seconds": timings["check"],
        "check": check.to_dict(),
        "redis_commandstats": commandstats,
        "profiled": args.py_spy is not None,
        "join_failures": join_failures,
    }


# -- main ----------------------------------------------------------------------


def parse_engines(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--engines {text!r}: e.g. 1,2") from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"--engines {text!r}: distinct counts >= 1, e.g. 1,2")
    return counts


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's two targets and the ceiling ratio, from the runs that exist."""
    runs = {run["engines"]: run for run in results["runs"]}
    produce = results["ceiling"]["produce_records_per_second"]
    out: dict[str, Any] = {
        "of_produce_ceiling": {str(k): r["orders_per_second"] / produce for k, r in runs.items()},
        "target_one_engine_orders_per_second": TARGET_ONE_ENGINE,
        "target_cpu_ratio": TARGET_CPU_RATIO,
    }
    if 1 in runs:
        out["one_engine_orders_per_second"] = runs[1]["orders_per_second"]
        out["one_engine_met"] = runs[1]["orders_per_second"] >= TARGET_ONE_ENGINE
    if 1 in runs and 2 in runs:
        ratio = runs[2]["engine_cpu_per_1000"] / runs[1]["engine_cpu_per_1000"]
        out["cpu_per_order_ratio_2_vs_1"] = ratio
        out["cpu_ratio_met"] = ratio <= TARGET_CPU_RATIO
        out["life_cpu_per_order_ratio_2_vs_1"] = (
            runs[2]["engine_life_cpu_seconds"] / runs[1]["engine_life_cpu_seconds"]
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="orders (default 100000)")
    parser.add_argument(
        "--engines", type=parse_engines, default=[1, 2], help="engine counts to run (default 1,2)"
    )
    parser.add_argument("--partitions", type=int, default=12, help="topic partitions (12)")
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="give up on a run after S seconds (900)"
    )
    parser.add_argument("--smoke", action="store_true", help=f"n={SMOKE_N}, 1 engine (CI)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--dir", type=Path, help="scratch directory to use and keep")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="profile each engine with py-spy during the window (raw stacks into DIR); "
        "the figures of such a run are not comparable",
    )
    args = parser.parse_args()
    if args.smoke:
        args.n, args.engines = SMOKE_N, [1]
    if max(args.engines) > args.partitions:
        parser.error(f"{max(args.engines)} engines need at least as many partitions")

    began = time.perf_counter()
    services_script = load_services()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="distributed-", dir=args.dir))
    else:
        directory = Path(tempfile.mkdtemp(prefix="realorders-bench-"))
    kafka_server: Any = None
    redis_server: Any = None
    try:
        inventory, orders = make_workload(directory, args.n, args.products, args.seed)
        kafka_server = services_script.start_kafka(directory / "kafka")
        redis_server = services_script.start_redis(directory / "redis")
        services = Services(
            kafka_server, redis_server, {"broker": kafka_server.pid, "redis": redis_server.pid}
        )
        print(
            f"broker {kafka_server.bootstrap} (pid {kafka_server.pid}), "
            f"redis {redis_server.url} (pid {redis_server.pid}), scratch {directory}",
            file=sys.stderr,
        )
        results: dict[str, Any] = {
            "machine": machine_info(kafka_server.version, redis_server.version),
            "load_average_start": load_average(),
            "n": args.n,
            "partitions": args.partitions,
            "products": args.products,
            "seed": args.seed,
            "poll": f"Redis terminal counts (HGETALL PREFIX:counts) every {POLL_SECONDS} s",
            "ceiling": ceiling(kafka_server.bootstrap, command_records(orders), args.partitions),
            "runs": [],
        }
        for count in args.engines:
            print(f"{count} engine(s): {args.n:,} orders", file=sys.stderr)
            results["runs"].append(measure(directory, services, count, inventory, orders, args))
        results["load_average_end"] = load_average()
    finally:
        if kafka_server is not None:
            services_script.stop_kafka(kafka_server)
        if redis_server is not None:
            services_script.stop_redis(redis_server)
        if args.dir is None and not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    results["summary"] = summary(results)
    results["benchmark_seconds"] = time.perf_counter() - began
    print_table(results)
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


def print_table(results: dict[str, Any]) -> None:
    m, ceil, summ = results["machine"], results["ceiling"], results["summary"]
    print(
        f"# {m['cores']} cores {m['cpu']}, Python {m['python']}, kafka-python {m['kafka_python']} "
        f"(CRC32C: {m['kafka_crc32c']}), "
        f"{m['broker']}, redis-server {m['redis_server']}, commit {m['commit']}"
    )
    print(
        f"ceiling: {ceil['records']:,} records ({ceil['record_bytes_mean']:.0f} B values) on "
        f"{ceil['topic_partitions']} partitions: produce {ceil['produce_seconds']:.2f}s = "
        f"{ceil['produce_records_per_second']:,.0f} records/s, consume "
        f"{ceil['consume_seconds']:.2f}s = {ceil['consume_records_per_second']:,.0f} records/s"
    )
    print(
        "| engines | orders | seconds | orders/s | of produce ceiling | import s | import orders/s "
        "| p50 s | p99 s | engine CPU s | engine CPU s/1k | broker CPU s | redis CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    of_ceiling = summ["of_produce_ceiling"]
    for run in results["runs"]:
        cpu = run["cpu_seconds"]
        print(
            f"| {run['engines']} | {run['orders']:,} | {run['seconds']:.2f} | "
            f"{run['orders_per_second']:,.0f} | {of_ceiling[str(run['engines'])]:.2f} | "
            f"{run['import_seconds']:.2f} | {run['import_orders_per_second']:,.0f} | "
            f"{run['latency_p50']:.3f} | {run['latency_p99']:.3f} | "
            f"{run['engine_cpu_seconds']:.2f} | {run['engine_cpu_per_1000']:.3f} | "
            f"{cpu['broker']:.2f} | {cpu['redis']:.2f} |"
        )
    print(
        "| engines | CPU s in the window: engines | import | broker | redis | harness | "
        "rest of machine | busy cores |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for run in results["runs"]:
        cpu = run["cpu_seconds"]
        print(
            f"| {run['engines']} | {run['engine_cpu_seconds']:.2f} | {cpu['import']:.2f} | "
            f"{cpu['broker']:.2f} | {cpu['redis']:.2f} | {cpu['harness']:.2f} | "
            f"{cpu['rest_of_machine']:.2f} | {run['busy_cores']:.2f} |"
        )
    for run in results["runs"]:
        for failure in run["join_failures"]:
            print(f"note: {run['engines']} engine(s), a join failed and was retried: {failure}")
        if run["profiled"]:
            print(f"note: {run['engines']} engine(s) ran under py-spy: not comparable figures")
    if "one_engine_orders_per_second" in summ:
        met = "met" if summ["one_engine_met"] else "missed"
        print(
            f"1 engine: {summ['one_engine_orders_per_second']:,.0f} orders/s "
            f"(target >= {TARGET_ONE_ENGINE:,}: {met})"
        )
    if "cpu_per_order_ratio_2_vs_1" in summ:
        met = "met" if summ["cpu_ratio_met"] else "missed"
        print(
            f"CPU per order, 2 engines / 1 engine: {summ['cpu_per_order_ratio_2_vs_1']:.2f} "
            f"(target <= {TARGET_CPU_RATIO}: {met}; whole process lives: "
            f"{summ['life_cpu_per_order_ratio_2_vs_1']:.2f})"
        )


if __name__ == "__main__":
    main()
