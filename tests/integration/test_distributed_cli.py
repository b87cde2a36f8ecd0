"""The distributed mode end to end: real console scripts, a real broker, a real Redis.

Every engine here is a ``realorders run`` process started as an operator
would; this test only imports files and reads. ``check`` must then find every
order in one terminal state, its events numbered 1..n in the events topic,
and stock conserved in Redis.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from waiting import HARD_BOUND, cpu_ticks, wait_exit, wait_for

from realorders import Client
from realorders.config import load_config

pytestmark = [pytest.mark.services, pytest.mark.slow]

PRODUCTS = [f"SKU-{i:02}" for i in range(20)]


@dataclass
class KafkaCli:
    """The ``cli`` fixture, pointed (by environment) at a store of its own on shared services."""

    cli: Any
    env: dict[str, str]

    def __call__(self, *args: str, **kwargs: Any) -> Any:
        return self.cli(*args, env={**self.env, **kwargs.pop("env", {})}, **kwargs)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = self.cli.popen(*args, env=self.env)
        return proc


def kafka_env(bootstrap: str, redis_url: str, prefix: str) -> dict[str, str]:
    return {
        "REALORDERS_BACKEND": "kafka",
        "REALORDERS_KAFKA_BOOTSTRAP": bootstrap,
        "REALORDERS_REDIS_URL": redis_url,
        "REALORDERS_KAFKA_TOPIC_PREFIX": prefix,
        "REALORDERS_REDIS_PREFIX": prefix,
        "REALORDERS_KAFKA_GROUP": f"{prefix}-engine",
        "REALORDERS_KAFKA_PARTITIONS": "4",
    }


@pytest.fixture
def kafka_cli(cli: Any, kafka_server: Any, redis_server: Any, kafka_prefix: str) -> KafkaCli:
    return KafkaCli(cli, kafka_env(kafka_server.bootstrap, redis_server.url, kafka_prefix))


def write_inventory(path: Path, stock: int) -> Path:
    rows = ["product_id,name,price,stock"]
    rows += [f"{p},product {p},{1 + i}.50,{stock}" for i, p in enumerate(PRODUCTS)]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_orders(path: Path, count: int, seed: int = 3) -> Path:
    rng = random.Random(seed)
    with path.open("w") as out:
        for i in range(count):
            items = [
                {"product_id": rng.choice(PRODUCTS), "quantity": rng.randint(1, 3)}
                for _ in range(rng.randint(1, 3))
            ]
            order = {"id": f"d{seed}-{i:06}", "customer_id": f"c{i % 50}", "items": items}
            out.write(json.dumps(order))
            out.write("\n")
    return path


def start_engine(cli: KafkaCli, *options: str) -> subprocess.Popen[bytes]:
    return cli.popen("run", *options)


def stats(cli: KafkaCli) -> dict[str, Any]:
    result = cli("stats", "--json", check=True)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def stats_or_error(cli: KafkaCli) -> dict[str, Any]:
    """``stats --json``, or ``{"error": stderr}`` while a service restarts (it exits 1)."""
    result = cli("stats", "--json", timeout=30)
    if result.returncode != 0:
        assert "Traceback" not in result.stderr, result.stderr
        return {"error": result.stderr.strip()}
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def work_done(data: dict[str, Any]) -> object:
    """A progress measure of the engines' work: orders and their statuses (never rates)."""
    if "error" in data:
        return "unavailable"
    return (data["orders"], tuple(sorted(data["by_status"].items())))


def settled(count: int) -> Callable[[dict[str, Any]], bool]:
    def done(data: dict[str, Any]) -> bool:
        if "error" in data:
            return False
        finished = data["finished"] + data["by_status"].get("backordered", 0)
        return bool(data["orders"] == count and finished == count)

    return done


def wait_finished(cli: KafkaCli, count: int, idle_timeout: float = 60) -> dict[str, Any]:
    """Until all ``count`` orders are settled; waits for as long as the engines make progress.

    ``idle_timeout`` must exceed the longest quiet spell the test causes on purpose (a
    takeover after a kill -9, a service restart).
    """
    return wait_for(
        lambda: stats_or_error(cli),
        settled(count),
        progress=work_done,
        idle_timeout=idle_timeout,
        interval=0.5,
        what=f"{count} orders settled",
    )


@contextmanager
def reader(cli: KafkaCli) -> Iterator[Client]:
    """A read-only Python client on the test's store: a cheap look, unlike a ``stats`` process."""
    with Client(config=load_config({}, cli.env), create=False) as client:
        yield client


@dataclass
class Exited:
    returncode: int
    stdout: str
    stderr: str


def wait_out(cli: KafkaCli, proc: subprocess.Popen[bytes], what: str) -> Exited:
    """Until ``proc`` exits by itself, for as long as the engines make progress."""
    with reader(cli) as client:
        out, err = wait_exit(proc, client.counts, what=what)
    return Exited(proc.returncode, out.decode(), err.decode())


def wait_engines_share(cli: KafkaCli, count: int) -> None:
    """Until ``count`` engines have reported owning partitions (their heartbeats, in Redis)."""
    with reader(cli) as client:
        engines = client.backend.registry.engines  # type: ignore[attr-defined]
        wait_for(
            # progress: engines appearing and partitions moving (not their heartbeat times)
            lambda: sorted((e["pid"], tuple(e["partitions"])) for e in engines()),
            lambda seen: sum(1 for _, partitions in seen if partitions) == count,
            interval=0.2,
            what=f"{count} engines owning partitions",
        )


def stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return err.decode()


def test_two_engines_share_the_orders(kafka_cli: KafkaCli, tmp_path: Path) -> None:
    cli = kafka_cli
    cli("init", "--inventory", str(write_inventory(tmp_path / "inv.csv", 100_000)), check=True)
    again = cli("init", check=True)  # idempotent: the topics exist now
    assert again.returncode == 0
    engines = [start_engine(cli), start_engine(cli)]
    try:
        try:
            wait_engines_share(cli, 2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n" + "\n".join(stop(p) for p in engines)) from None
        result = cli("import", str(write_orders(tmp_path / "orders.ndjson", 3000)), check=True)
        assert "3,000" in result.stderr + result.stdout or "3000" in result.stderr + result.stdout
        # watch reads the events topic itself: every event once, each order's in seq order
        watcher = cli.popen(
            "watch", "--from-start", "--until-done", "--json", "--timeout", f"{HARD_BOUND:g}"
        )
        watched = wait_out(cli, watcher, "watch --until-done to see every order done")
        assert watched.returncode == 0, watched.stderr
        done = wait_finished(cli, 3000)
        assert done["by_status"]["delivered"] == 3000
        # from the topic's end (the default): a finished order shows nothing and returns
        late = cli("watch", "d3-000001", "--until-done", "--json", "--timeout", "60")
        assert (late.returncode, late.stdout) == (0, ""), late.stderr
    finally:
        logs = [stop(p) for p in engines]
    records = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [r["cursor"] for r in records] == list(range(1, 15_001))  # 5 events per order
    seqs: dict[str, list[int]] = {}
    for record in records:
        seqs.setdefault(record["order_id"], []).append(record["seq"])
    assert len(seqs) == 3000
    assert all(s == [1, 2, 3, 4, 5] for s in seqs.values())
    for log in logs:
        assert "now owns partitions" in log, log  # both took part
    report = cli("check", check=True)
    assert "every invariant holds" in report.stdout + report.stderr


def test_a_restock_wakes_the_backorders_of_every_engine(
    kafka_cli: KafkaCli, tmp_path: Path
) -> None:
    """A restock is applied by its product's partition owner; the others hear of it by wake."""
    cli = kafka_cli
    cli("init", "--inventory", str(write_inventory(tmp_path / "inv.csv", 0)), check=True)
    orders_file = write_orders(tmp_path / "orders.ndjson", 400, seed=7)
    demand: dict[str, int] = {}
    for line in orders_file.read_text().splitlines():
        for item in json.loads(line)["items"]:
            demand[item["product_id"]] = demand.get(item["product_id"], 0) + item["quantity"]
    engines = [start_engine(cli), start_engine(cli)]
    try:
        wait_engines_share(cli, 2)
        cli("import", str(orders_file), check=True)
        assert wait_finished(cli, 400)["by_status"]["backordered"] == 400  # no stock at all
        # one delivery of every product: each owner wakes its own partitions' backorders
        pairs = [str(x) for product, units in sorted(demand.items()) for x in (product, units)]
        cli("inventory", "restock", *pairs, check=True)
        wait_for(
            lambda: stats_or_error(cli),
            lambda data: data.get("by_status", {}).get("delivered") == 400,
            progress=work_done,
            idle_timeout=60,
            interval=0.5,
            what="every backorder woken and delivered",
        )
    finally:
        logs = [stop(p) for p in engines]
    for log in logs:
        assert "now owns partitions" in log, log
    with reader(cli) as client:
        assert {level.product_id: level.on_hand for level in client.levels()} == dict.fromkeys(
            PRODUCTS, 0
        )
    report = cli("check", check=True)
    assert "every invariant holds" in report.stdout + report.stderr


def test_kill_9_one_engine_the_other_takes_over(kafka_cli: KafkaCli, tmp_path: Path) -> None:
    cli = kafka_cli
    cli("init", "--inventory", str(write_inventory(tmp_path / "inv.csv", 300)), check=True)
    # a packing delay keeps orders in flight (timers in the engine's memory) when the victim
    # dies: the survivor must find them in the read model and finish them
    victim, survivor = (start_engine(cli, "--delays", "pack=2") for _ in range(2))
    importer: subprocess.Popen[bytes] | None = None
    try:
        wait_engines_share(cli, 2)
        # scarce stock: some orders backorder, so reservations and releases both matter
        importer = cli.popen("import", str(write_orders(tmp_path / "first.ndjson", 6000, seed=5)))
        # An order stays reserved for the 2 s pack delay only: watch while the import runs,
        # one Redis read a look. Waiting for the import to return, or a `stats` process a
        # look, can take longer than that on a slow machine and miss the orders in flight.
        with reader(cli) as client:
            wait_for(
                client.counts,
                lambda counts: counts["reserved"] >= 500,
                what="orders to get in flight (500 reserved)",
            )
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        # the import goes on while it still works (its CPU time moves), however slowly
        _, err = wait_exit(importer, lambda: cpu_ticks(importer.pid), what="the import")
        assert importer.returncode == 0, err.decode()
        # half of these land on the dead engine's partitions: only a takeover finishes them
        cli("import", str(write_orders(tmp_path / "more.ndjson", 1000, seed=6)), check=True)
        wait_finished(cli, 7000)  # quiet while the survivor notices and takes over: < 60 s
    finally:
        if importer is not None and importer.poll() is None:
            importer.kill()
            importer.communicate()
        survivor_log = stop(survivor)
        if victim.poll() is None:
            victim.kill()
            victim.communicate(timeout=30)
    assert "now owns partitions [0, 1, 2, 3]" in survivor_log, survivor_log  # took over
    assert "orders in flight" in survivor_log, survivor_log  # and re-armed the victim's timers
    report = cli("check", check=False)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "every invariant holds" in report.stdout + report.stderr


def test_poison_commands_go_to_the_dlq_and_replay(
    kafka_cli: KafkaCli, tmp_path: Path, kafka_server: Any
) -> None:
    from kafka import KafkaProducer

    cli = kafka_cli
    cli("init", "--inventory", str(write_inventory(tmp_path / "inv.csv", 100)), check=True)
    topic = cli.env["REALORDERS_KAFKA_TOPIC_PREFIX"] + ".commands"
    producer = KafkaProducer(bootstrap_servers=kafka_server.bootstrap)
    producer.send(topic, key=b"fixme-1", value=b'{"kind": "submit", "order_id": "fixme-1", "bo')
    producer.send(topic, key=b"o9", value=json.dumps({"kind": "refund", "body": {}}).encode())
    producer.flush()
    producer.close()
    engine = start_engine(cli)
    try:
        # processing goes on around the poison
        after = cli("submit", "-c", "ada", "-i", "SKU-01=2", "--wait", "--timeout", "60")
        assert after.returncode == 0, after.stderr
        letters = wait_for(
            lambda: json.loads(cli("dlq", "list", "-f", "json").stdout),
            lambda letters: len(letters) >= 2,
            progress=len,
            interval=0.2,
            what="both poison commands in the dead-letter topic",
        )
        reasons = sorted(d["reason"] for d in letters)
        assert reasons[0].startswith("not JSON"), reasons
        assert reasons[1] == "unknown command kind 'refund'"
        assert all(d["source"].startswith(topic + ":") for d in letters)
        junk = next(d for d in letters if d["reason"].startswith("not JSON"))

        refused = cli("dlq", "replay", str(junk["offset"]))
        assert refused.returncode == 1
        assert "still not a command: not JSON" in refused.stderr
        assert "Traceback" not in refused.stderr

        fixed = {
            "kind": "submit",
            "order_id": "fixme-1",
            "body": {
                "id": "fixme-1",
                "customer_id": "ada",
                "items": [{"product_id": "SKU-00", "quantity": 1}],
            },
        }
        (tmp_path / "fixed.json").write_text(json.dumps(fixed))
        replay = cli(
            "dlq", "replay", str(junk["offset"]), "--value-file", str(tmp_path / "fixed.json")
        )
        assert replay.returncode == 0, replay.stderr
        assert "order fixme-1 accepted" in replay.stderr
        again = cli("dlq", "replay", str(junk["offset"]))
        assert again.returncode == 1
        assert "replayed already" in again.stderr
        waited = cli("watch", "fixme-1", "--from-start", "--until-done", "--timeout", "60")
        assert waited.returncode == 0, waited.stderr
        assert json.loads(cli("show", "fixme-1", "--json").stdout)["status"] == "delivered"
        left = json.loads(cli("dlq", "list", "-f", "json").stdout)
        assert [d["reason"] for d in left] == ["unknown command kind 'refund'"]
        assert len(json.loads(cli("dlq", "list", "--all", "-f", "json").stdout)) == 2
    finally:
        stop(engine)
    report = cli("check", check=False)
    assert report.returncode == 0, report.stdout + report.stderr


def run_through_an_outage(cli: KafkaCli, tmp_path: Path, outage: Any) -> str:
    """Feed orders in chunks (as a CI script would, retrying a chunk that fails), break a
    service once the engine is busy, and require every order done and ``check`` clean."""
    cli("init", "--inventory", str(write_inventory(tmp_path / "inv.csv", 100_000)), check=True)
    chunks = [write_orders(tmp_path / f"chunk{i}.ndjson", 500, seed=20 + i) for i in range(8)]
    failures: list[str] = []

    def feed() -> None:
        for chunk in chunks:
            while True:
                result = cli("import", str(chunk), timeout=60)
                if result.returncode == 0:
                    break
                failures.append(result.stderr.strip())  # the service is down: try again
                time.sleep(0.5)
            time.sleep(0.3)

    engine = start_engine(cli)
    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        deadline = time.monotonic() + 60
        while (finished := stats(cli)["finished"]) < 800 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert finished < 4000, "the engine finished before the outage: nothing was tested"
        outage()
        feeder.join(timeout=180)
        try:
            wait_finished(cli, 4000, idle_timeout=120)  # a restart: quiet until it is back
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nengine log:\n{stop(engine)[-6000:]}") from None
    finally:
        feeder.join(timeout=60)
        log = stop(engine)
    for failure in failures:
        assert "Traceback" not in failure, failure
        assert failure.startswith("error: "), failure
    assert "Traceback" not in log, log
    report = cli("check", check=False)
    assert report.returncode == 0, report.stdout + report.stderr + log
    return log


def test_redis_restart_mid_run(
    cli: Any, kafka_server: Any, restartable_redis: Any, kafka_prefix: str, tmp_path: Path
) -> None:
    kcli = KafkaCli(cli, kafka_env(kafka_server.bootstrap, restartable_redis.url, kafka_prefix))

    def outage() -> None:
        restartable_redis.stop()
        time.sleep(3)
        restartable_redis.restart()

    log = run_through_an_outage(kcli, tmp_path, outage)
    assert "engine paused: Redis unavailable" in log, log
    assert "engine resuming on" in log, log


def test_broker_restart_mid_run(
    cli: Any, restartable_kafka: Any, redis_server: Any, kafka_prefix: str, tmp_path: Path
) -> None:
    kcli = KafkaCli(cli, kafka_env(restartable_kafka.bootstrap, redis_server.url, kafka_prefix))

    def outage() -> None:
        restartable_kafka.stop()
        time.sleep(3)
        restartable_kafka.restart()

    log = run_through_an_outage(kcli, tmp_path, outage)
    assert "engine paused:" in log, log


def test_sasl_plain_wrong_password_is_one_clear_line_and_the_right_one_works(
    cli: Any, sasl_kafka_server: Any, redis_server: Any, kafka_prefix: str, tmp_path: Path
) -> None:
    env = kafka_env(sasl_kafka_server.bootstrap, redis_server.url, kafka_prefix)
    env |= {
        "REALORDERS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "REALORDERS_KAFKA_SASL_MECHANISM": "PLAIN",
        "REALORDERS_KAFKA_USERNAME": sasl_kafka_server.sasl_user,
    }
    wrong = KafkaCli(cli, env | {"REALORDERS_KAFKA_PASSWORD": "not-the-password"})
    started = time.monotonic()
    refused = wrong("init")
    assert refused.returncode == 1
    assert time.monotonic() - started < 20  # not kafka-python's long bootstrap timeout
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert f"Kafka at {sasl_kafka_server.bootstrap} refused the credentials" in lines[0]
    assert f"user {sasl_kafka_server.sasl_user}" in lines[0]
    assert "not-the-password" not in refused.stderr + refused.stdout
    shown = wrong("config", "show")
    assert "not-the-password" not in shown.stdout + shown.stderr

    right = KafkaCli(cli, env | {"REALORDERS_KAFKA_PASSWORD": sasl_kafka_server.sasl_password})
    right("init", "--inventory", str(write_inventory(tmp_path / "inv.csv", 10)), check=True)
    engine = start_engine(right)
    try:
        done = right("submit", "-c", "ada", "-i", "SKU-03=2", "--wait", "--timeout", "60")
        assert done.returncode == 0, done.stderr
    finally:
        log = stop(engine)
    assert "now owns partitions" in log, log
    assert sasl_kafka_server.sasl_password not in log
    assert right("check").returncode == 0
