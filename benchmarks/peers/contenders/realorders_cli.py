"""realorders embedded, driven as an operator or a CI job drives it: the console script.

Untimed: the workload's ``inventory.csv`` and ``orders.ndjson``, then
``realorders init --inventory``. Timed:

- saturation: ``realorders import orders.ndjson`` then ``realorders run
  --until-idle`` (the README's CI recipe), each its own process, the clock
  from starting the import to the engine's exit;
- ``--rate R``: ``realorders run`` is already up; a paced submitter writes one
  NDJSON line per order, when it is due, into ``realorders import -
  --batch-size 1`` (each order is appended as it arrives: with a bigger batch
  the import would hold orders until the batch fills). The clock stops when
  the engine has committed every command (restocks included: the orders a
  restock wakes are committed in its batch). Latency runs from each order's
  due time (see ``due_latency``). Both processes are started, and have loaded,
  before the clock starts.

Restocks (``--workload restock``) are ``realorders inventory restock SKU QTY
[SKU QTY]…``, one process per delivery (the restocks due at one point of the
workload), as an operator restocks:

- saturation: the orders file is split where restocks fall due (untimed:
  ``orders-0.ndjson``, ``orders-1.ndjson``, …); timed: ``import orders-0.ndjson``,
  then the delivery due after it, ``import
  orders-1.ndjson``, …, then ``run --until-idle``. With no engine up each
  restock only appends its command ("queued"): every restock is at the
  workload's place in the log, behind the segment imported before it;
- ``--rate R``: when a restock falls due, the pacer's thread waits until
  ``import -`` has appended the last order written into the pipe (that order's
  submit command is in the log; the pipe is asynchronous), then starts the
  restock process and goes on: the orders keep flowing at their rate, as they
  would while an operator types the command. So a restock comes after every
  order before it, but the orders that fall due while its process starts are
  appended before it: ~0.5 s of them on a quiet core. Those
  among them that need the product are backordered, then woken by it: more
  state changes (events) than the workload's own order makes, the same final
  state. Every restock process has exited (appended its command and, the
  engine being up, seen it applied) before ``import -``'s stdin is closed.

Either way each restock process starts Python and loads the CLI, ~0.4 s of
CPU here; three deliveries in this workload (before ``inventory restock``
took several products, 20 processes dominated the restock workload's time
and CPU at small N).

Zero fulfilment delays (``--delays pack=0,ship=0,deliver=0``, also the default).
Counts and stock come back through the Client API; events and latency
(``terminal_at``, or ``updated_at`` for a backorder, minus ``created_at``, the
time the order was appended) from the store's tables.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
import workload

from realorders import Client

ZERO_DELAYS = "pack=0,ship=0,deliver=0"
DURABILITY = (
    "SQLite synchronous=NORMAL, WAL, one transaction per engine batch "
    "(up to 2,000 commands; crash = restart from the last commit)"
)
LATENCY_SQL_END = "coalesce(terminal_at, updated_at)"
LATENCY_SQL = f"{LATENCY_SQL_END} - created_at"
WORKLOADS = ("standard", "backorder", "restock")


def clean_env(db: Path) -> dict[str, str]:
    """Only this run's store: no REALORDERS_* settings from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALORDERS_")}
    env["REALORDERS_DB"] = str(db)
    env["REALORDERS_CONFIG"] = os.devnull  # no ./realorders.toml either
    return env


def read_back(db: Path) -> dict[str, Any]:
    """Final counts, stock, event rows and latency, from the store."""
    with Client(db, create=False) as client:
        counts = client.backend.orders.counts()
        stock = {level.product_id: level.available for level in client.levels()}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        latency = common.percentiles_sql(conn, LATENCY_SQL, "orders")
    finally:
        conn.close()
    return {"counts": counts, "stock": stock, "events": events, "latency": latency}


def due_latency(db: Path, pacer: common.Pacer) -> dict[str, dict[str, float]]:
    """Latency from each order's due time (its index in the schedule), not from its append.

    ``created_at`` is stamped when ``import`` appends the order, after it has
    waited in the pipe behind orders whose append waited for the engine's write
    lock; the submit is the line written into the pipe, at its due time (the
    pacer's own lag is reported beside). Returns the open-loop ``latency``, the
    append-based one, and the intake's lag behind the schedule.
    """
    due = f"({pacer.wall_start!r} + CAST(substr(id, 2) AS INTEGER) / {pacer.rate!r})"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            "latency": common.percentiles_sql(conn, f"{LATENCY_SQL_END} - {due}", "orders"),
            "latency_from_append": common.percentiles_sql(conn, LATENCY_SQL, "orders"),
            "intake_lag": common.percentiles_sql(conn, f"created_at - {due}", "orders"),
        }
    finally:
        conn.close()


def run(cmd: list[str], env: dict[str, str], cwd: Path, *args: str) -> None:
    proc = subprocess.run(
        [*cmd, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"realorders {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")


def wait_engine_claimed(db: Path, engine: subprocess.Popen[bytes]) -> None:
    with Client(db, create=False) as client:
        deadline = time.monotonic() + 30
        while not client.engine_running():
            if engine.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("realorders run did not start")
            time.sleep(0.02)


def wait_idle(pid: int, timeout: float = 15.0) -> None:
    """Until a just-started process has done its start-up (its CPU time stops moving).

    ``import -`` then sits blocked on its stdin: the first orders must not wait
    in the pipe for Python and the CLI to load (~0.3-0.5 s), which is start-up,
    not intake.
    """
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + timeout
    last, still = -1, 0
    while still < 3 and time.monotonic() < deadline:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        cpu = int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        still = still + 1 if cpu == last and fields[0] == "S" else 0
        last = cpu
        time.sleep(0.05)


def wait_processed(db: Path) -> None:
    """Until the engine has committed every command (zero delays: every order settled)."""
    with Client(db, create=False) as client:
        while client.engine_info().backlog:
            time.sleep(0.005)


class Restocking:
    """At a rate: ``realorders inventory restock`` processes, started once their orders are in.

    ``add`` (the pacer's ``restock`` callback, once per product) gathers a
    delivery; ``start``, before the next orders are written, waits until
    ``import -`` has appended the last order written into its pipe, then starts
    one process for the delivery and returns; ``finish`` waits for every one.
    """

    def __init__(
        self,
        cmd: list[str],
        env: dict[str, str],
        cwd: Path,
        db: Path,
        intake: subprocess.Popen[bytes],
    ) -> None:
        self.cmd, self.env, self.cwd, self.db, self.intake = cmd, env, cwd, db, intake
        self.written: str | None = None  # the last order id written into the pipe
        self.running: list[tuple[list[workload.Restock], subprocess.Popen[str]]] = []
        self.due: list[workload.Restock] = []

    def add(self, r: workload.Restock) -> None:
        self.due.append(r)

    def start(self) -> None:
        if not self.due:
            return
        self._wait_appended()
        due, self.due = self.due, []
        proc = subprocess.Popen(
            [*self.cmd, "inventory", "restock", *common.delivery(due)],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.running.append((due, proc))

    def _wait_appended(self) -> None:
        if self.written is None:
            return
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            query = "SELECT 1 FROM commands WHERE kind = 'submit' AND order_id = ?"
            while conn.execute(query, (self.written,)).fetchone() is None:
                if self.intake.poll() is not None:
                    raise SystemExit(f"realorders import - exited {self.intake.returncode}")
                time.sleep(0.001)
        finally:
            conn.close()

    def finish(self) -> None:
        self.start()
        for due, proc in self.running:
            _, stderr = proc.communicate()
            if proc.returncode != 0:
                pairs = " ".join(common.delivery(due))
                raise SystemExit(f"realorders inventory restock {pairs} failed: {stderr}")
        self.running.clear()


def saturate(
    args: common.Args,
    cmd: list[str],
    env: dict[str, str],
    restocks: list[workload.Restock],
    clock: common.Clock,
) -> str:
    """Import everything (with the deliveries at their places), then run until idle; how."""
    steps = common.segments(args, restocks)  # untimed: the files
    clock.start()
    for orders_file, due in steps:
        if orders_file is not None:
            run(cmd, env, args.dir, "import", str(orders_file))
        if due:
            run(cmd, env, args.dir, "inventory", "restock", *common.delivery(due))
    run(cmd, env, args.dir, "run", "--until-idle", "--delays", ZERO_DELAYS)
    clock.stop()
    clock.stop_cpu()
    if not restocks:
        return "import FILE, then run --until-idle"
    return (
        f"import of {len(steps)} segments, each followed by the "
        "`inventory restock` of the delivery due there, then run --until-idle"
    )


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    db = args.dir / "realorders.db"
    restocks = args.restocks()
    inventory = workload.write_inventory(args.stock(), args.dir)
    cmd = common.realorders_cmd()
    env = clean_env(db)
    run(cmd, env, args.dir, "init", "--inventory", str(inventory))
    clock = common.Clock()
    pacer = common.Pacer(args.rate)
    extra: dict[str, Any] = {}
    if args.rate <= 0:
        how = saturate(args, cmd, env, restocks, clock)
    else:
        engine_log = (args.dir / "engine.log").open("wb")
        engine = subprocess.Popen(
            [*cmd, "run", "--delays", ZERO_DELAYS],
            env=env,
            cwd=args.dir,
            stdout=subprocess.DEVNULL,
            stderr=engine_log,
        )
        wait_engine_claimed(db, engine)
        intake = subprocess.Popen(
            [*cmd, "import", "-", "--format", "ndjson", "--batch-size", "1"],
            env=env,
            cwd=args.dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert intake.stdin is not None
        pipe = intake.stdin
        wait_idle(intake.pid)

        restocking = Restocking(cmd, env, args.dir, db, intake)

        def submit(batch: list[workload.Order]) -> None:
            restocking.start()  # the delivery due before these orders, if any
            pipe.write(
                b"".join(
                    json.dumps(workload.order_json(o), separators=(",", ":")).encode() + b"\n"
                    for o in batch
                )
            )
            pipe.flush()
            restocking.written = batch[-1].order_id

        # the orders, generated as they fall due
        pacer.run(args.orders(), submit, clock, restocks=restocks, restock=restocking.add)
        restocking.finish()
        pipe.close()
        if intake.wait() != 0:
            raise SystemExit(f"realorders import - failed: {intake.stderr.read().decode()}")
        wait_processed(db)
        clock.stop()
        engine.send_signal(signal.SIGTERM)
        if engine.wait() != 0:
            raise SystemExit(f"realorders run failed: see {args.dir / 'engine.log'}")
        clock.stop_cpu()
        extra = due_latency(db, pacer)
        how = "run (already up) fed by import - --batch-size 1, one NDJSON line per order as due"
        if restocks:
            how += (
                "; each restock an `inventory restock` process, started once import has "
                "appended the orders before it, while the next orders keep coming"
            )
    common.write_result(
        args,
        contender="realorders_cli",
        durability=DURABILITY,
        versions=common.versions("realorders"),
        clock=clock,
        pacer=pacer,
        notes=(
            f"console scripts: {how}; zero delays; terminal times are the events' `at`, "
            "stamped before their batch commits"
        ),
        **{**read_back(db), **extra},
    )


if __name__ == "__main__":
    main()
