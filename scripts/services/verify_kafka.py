#!/usr/bin/env python3
"""Check kafka-python and redis-py against the real servers that services.py starts.

Installs kafka-python (3.x) and redis-py into the running interpreter's environment when
missing (pip, cache in .cache/pip), starts a plain broker, a SASL/PLAIN broker and a
redis-server, runs each check, stops everything, and prints a JSON report (also written to
.cache/services/verify-report.json).

    .venv/bin/python scripts/services/verify_kafka.py [--messages 100000] [--skip-redis]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import services  # noqa: E402

REPORT: dict[str, Any] = {"checks": {}}
STARTED: list[int] = []  # every server PID this run started: all must be gone at the end
OPTIONS = {"kafka_version": services.KAFKA_VERSION}  # --kafka-version: try another broker


def start_kafka(directory: str | None = None, **kwargs: Any) -> services.KafkaServer:
    return services.start_kafka(directory, version=OPTIONS["kafka_version"], **kwargs)


def ensure_packages() -> None:
    """pip-install kafka-python 3.x and redis into this environment when they are missing."""
    wanted = {"kafka-python": "kafka-python>=3,<4", "redis": "redis>=5"}
    missing = []
    for dist, spec in wanted.items():
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(spec)
            continue
        if dist == "kafka-python" and not version.startswith("3."):
            missing.append(spec)
    if missing:
        env = {**os.environ, "PIP_CACHE_DIR": str(services.cache_dir() / "pip")}
        cmd = [sys.executable, "-m", "pip", "install", "-q", *missing]
        print("installing:", " ".join(missing), file=sys.stderr)
        subprocess.run(cmd, check=True, env=env)
        importlib.invalidate_caches()
    REPORT["versions"] = {
        "kafka-python": importlib.metadata.version("kafka-python"),
        "redis-py": importlib.metadata.version("redis"),
        "broker": OPTIONS["kafka_version"],
    }


@contextlib.contextmanager
def check(name: str) -> Iterator[dict[str, Any]]:
    """Record one check: ok, seconds, and details or the error."""
    entry: dict[str, Any] = {"ok": False}
    REPORT["checks"][name] = entry
    started = time.monotonic()
    try:
        yield entry
        entry["ok"] = entry.get("ok_override", True)
        entry.pop("ok_override", None)
    except Exception as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"
        entry["traceback"] = traceback.format_exc(limit=4).splitlines()[-6:]
    finally:
        entry["seconds"] = round(time.monotonic() - started, 2)
        status = "ok" if entry["ok"] else "FAILED"
        print(f"[{status}] {name} ({entry['seconds']} s)", file=sys.stderr)


def run_with_deadline(fn: Callable[[], Any], seconds: float) -> tuple[str, Any]:
    """Run fn in a thread: ('ok', value), ('error', exc) or ('timeout', None)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return "timeout", None
    if "error" in box:
        return "error", box["error"]
    return "ok", box.get("value")


# --------------------------------------------------------------------------- Kafka


def drain(consumer: Any, want: int, seconds: float) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + seconds
    while len(out) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            out.extend(records)
    return out


def _group_offsets(admin: Any, group: str) -> dict[int, int]:
    """Committed offsets of one group (kafka-python 3.x: list_group_offsets)."""
    result = admin.list_group_offsets(group)
    per_tp = result.get(group, result) if isinstance(result, dict) else result
    return {tp.partition: om.offset for tp, om in sorted(per_tp.items())}


def check_admin(cfg: dict[str, Any]) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    with check("admin: create topics with 3 partitions") as e:
        admin = KafkaAdminClient(**cfg)
        admin.create_topics(
            [NewTopic(t, 3, 1) for t in ("orders", "tx", "tx-out", "bench")], timeout_ms=10000
        )
        desc = admin.describe_topics(["orders"])
        e["partitions"] = sorted(p["partition_index"] for p in desc[0]["partitions"])
        e["topics"] = sorted(admin.list_topics())
        admin.close()
        assert e["partitions"] == [0, 1, 2], e["partitions"]


def check_produce(cfg: dict[str, Any]) -> None:
    from kafka import KafkaProducer

    with check("produce: keyed, acks=all, idempotent") as e:
        producer = KafkaProducer(**cfg, acks="all", enable_idempotence=True, linger_ms=5)
        e["negotiated_api_version"] = list(producer.config["api_version"])
        placement: dict[bytes, set[int]] = {}
        futures = []
        for i in range(300):
            key = f"order-{i % 30}".encode()
            futures.append((key, producer.send("orders", key=key, value=f"v{i}".encode())))
        producer.flush()
        for key, fut in futures:
            placement.setdefault(key, set()).add(fut.get(timeout=10).partition)
        e["keys_on_one_partition"] = all(len(p) == 1 for p in placement.values())
        e["partitions_used"] = sorted(set().union(*placement.values()))
        e["idempotence"] = producer.config["enable_idempotence"]
        producer.close()
        assert e["keys_on_one_partition"]


GROUP = {"group_id": "g-orders", "auto_offset_reset": "earliest", "enable_auto_commit": False}


def check_group(cfg: dict[str, Any]) -> None:
    from kafka import KafkaConsumer

    with check("consumer group: two consumers share 3 partitions, commit") as e:
        c1 = KafkaConsumer("orders", **cfg, **GROUP, client_id="c1")
        c2 = KafkaConsumer("orders", **cfg, **GROUP, client_id="c2")
        got: list[Any] = []
        deadline = time.monotonic() + 30
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            for c in (c1, c2):
                for records in c.poll(timeout_ms=200).values():
                    got.extend(records)
            a1, a2 = c1.assignment(), c2.assignment()
            unique = {(r.partition, r.offset) for r in got}
            if a1 and a2 and len(a1 | a2) == 3 and len(unique) >= 300:
                break
        e["rebalance_and_consume_seconds"] = round(time.monotonic() - t0, 2)
        a1, a2 = c1.assignment(), c2.assignment()
        e["assignment_c1"] = sorted(tp.partition for tp in a1)
        e["assignment_c2"] = sorted(tp.partition for tp in a2)
        e["consumed_records"] = len(got)
        e["unique_records"] = len({(r.partition, r.offset) for r in got})
        # c1 alone held all partitions first and committed nothing before the rebalance, so
        # what it read of c2's new partitions is read again by c2 (at-least-once).
        e["redelivered_after_rebalance"] = len(got) - e["unique_records"]
        c1.commit()
        c2.commit()
        c1.close()
        c2.close()
        assert a1, "c1 has no partitions"
        assert a2, "c2 has no partitions"
        assert not (a1 & a2), "overlapping assignment"
        assert len(a1 | a2) == 3, (a1, a2)
        assert e["unique_records"] == 300, e["unique_records"]


def check_resume(cfg: dict[str, Any]) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    with check("consumer group: committed offsets, restart resumes") as e:
        admin = KafkaAdminClient(**cfg)
        e["committed"] = _group_offsets(admin, "g-orders")
        e["list_groups"] = repr(admin.list_groups())[:300]
        e["describe_groups"] = repr(admin.describe_groups(["g-orders"]))[:300]
        producer = KafkaProducer(**cfg, acks="all")
        for i in range(50):
            producer.send("orders", key=f"order-{i}".encode(), value=b"after-restart")
        producer.flush()
        producer.close()
        c3 = KafkaConsumer("orders", **cfg, **GROUP, client_id="c3")
        got = drain(c3, 50, 20)
        extra = drain(c3, 1, 2)
        e["resumed_consumed"] = len(got) + len(extra)
        e["all_new"] = all(r.value == b"after-restart" for r in got + extra)
        c3.commit()
        c3.close()
        e["committed_after"] = _group_offsets(admin, "g-orders")
        admin.close()
        assert sum(e["committed"].values()) == 300, e["committed"]
        assert e["resumed_consumed"] == 50, e["resumed_consumed"]
        assert e["all_new"]


def check_transactions(cfg: dict[str, Any]) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    with check("transactions: commit, abort, read_committed") as e:
        t0 = time.monotonic()
        tp = KafkaProducer(**cfg, transactional_id="tx-verify-1", acks="all")
        tp.init_transactions()
        e["init_transactions_seconds"] = round(time.monotonic() - t0, 2)
        tp.begin_transaction()
        for i in range(10):
            tp.send("tx", key=b"k", value=f"committed-{i}".encode())
        tp.commit_transaction()
        tp.begin_transaction()
        for i in range(7):
            tp.send("tx", key=b"k", value=f"aborted-{i}".encode())
        tp.flush()
        tp.abort_transaction()
        tp.begin_transaction()
        for i in range(5):
            tp.send("tx", key=b"k", value=f"committed2-{i}".encode())
        tp.commit_transaction()
        tp.close()
        seen = {}
        for level in ("read_committed", "read_uncommitted"):
            c = KafkaConsumer(**cfg, isolation_level=level, auto_offset_reset="earliest")
            c.assign([TopicPartition("tx", p) for p in range(3)])
            c.seek_to_beginning()
            records = drain(c, 15 if level == "read_committed" else 22, 10)
            records += drain(c, 1, 1)  # nothing more may arrive
            c.close()
            seen[level] = sorted(r.value.decode() for r in records)
        e["read_committed_count"] = len(seen["read_committed"])
        e["read_uncommitted_count"] = len(seen["read_uncommitted"])
        e["aborted_visible_to_read_committed"] = any(
            v.startswith("aborted") for v in seen["read_committed"]
        )
        assert e["read_committed_count"] == 15
        assert not e["aborted_visible_to_read_committed"]
        assert e["read_uncommitted_count"] == 22


def check_consume_transform_produce(cfg: dict[str, Any]) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    with check("transactions: send_offsets_to_transaction (consume-transform-produce)") as e:
        c = KafkaConsumer(
            "orders",
            **cfg,
            group_id="g-ctp",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        records = drain(c, 350, 20)
        tp = KafkaProducer(**cfg, transactional_id="tx-verify-ctp", acks="all")
        tp.init_transactions()
        tp.begin_transaction()
        offsets: dict[Any, Any] = {}
        for r in records:
            tp.send("tx-out", key=r.key, value=r.value.upper())
            offsets[TopicPartition(r.topic, r.partition)] = OffsetAndMetadata(r.offset + 1, "", -1)
        tp.send_offsets_to_transaction(offsets, c.group_metadata())
        tp.commit_transaction()
        tp.close()
        c.close()
        admin = KafkaAdminClient(**cfg)
        e["committed_via_tx"] = _group_offsets(admin, "g-ctp")
        admin.close()
        e["consumed"] = len(records)
        assert sum(e["committed_via_tx"].values()) == len(records) == 350


def check_fencing(cfg: dict[str, Any]) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    with check("transactions: zombie fencing (same transactional_id)") as e:
        p1 = KafkaProducer(**cfg, transactional_id="tx-fence")
        p1.init_transactions()
        p1.begin_transaction()
        p1.send("tx", value=b"from-p1")
        p1.flush()
        p2 = KafkaProducer(**cfg, transactional_id="tx-fence")
        p2.init_transactions()  # bumps the epoch, aborts p1's open transaction
        try:
            p1.send("tx", value=b"zombie")
            p1.commit_transaction()
            e["p1_commit_after_fence"] = "succeeded (unexpected)"
        except KafkaError as exc:
            e["p1_commit_after_fence"] = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            p1.close(timeout=2)
        p2.close()
        assert "unexpected" not in e["p1_commit_after_fence"]


def kafka_checks(server: services.KafkaServer, messages: int) -> None:
    cfg = server.client_config()
    check_admin(cfg)
    check_produce(cfg)
    check_group(cfg)
    check_resume(cfg)
    check_transactions(cfg)
    check_consume_transform_produce(cfg)
    check_fencing(cfg)
    rates(server, messages)


def rates(server: services.KafkaServer, messages: int) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    cfg = server.client_config()
    payload = b"x" * 100
    for label, extra in (
        ("acks=all idempotent", {"acks": "all", "enable_idempotence": True}),
        ("acks=1", {"acks": 1, "enable_idempotence": False}),
    ):
        with check(f"rate: produce {messages} x 100 B ({label})") as e:
            producer = KafkaProducer(**cfg, linger_ms=10, batch_size=256 * 1024, **extra)
            t0 = time.monotonic()
            for i in range(messages):
                producer.send("bench", key=str(i % 1000).encode(), value=payload)
            producer.flush()
            elapsed = time.monotonic() - t0
            producer.close()
            e["messages_per_s"] = round(messages / elapsed)
            e["mb_per_s"] = round(messages * 100 / elapsed / 1e6, 2)
    total = messages * 2
    with check(f"rate: consume {total} x 100 B (assign, no group)") as e:
        c = KafkaConsumer(
            **cfg,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            max_poll_records=5000,
        )
        c.assign([TopicPartition("bench", p) for p in range(3)])
        c.seek_to_beginning()
        t0 = time.monotonic()
        got = 0
        deadline = t0 + 120
        while got < total and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got += len(records)
        elapsed = time.monotonic() - t0
        c.close()
        e["consumed"] = got
        e["messages_per_s"] = round(got / elapsed)
        assert got == total, got


def restart_check(server: services.KafkaServer) -> services.KafkaServer:
    from kafka import KafkaAdminClient

    with check("broker restart in the same dir keeps ports and topics") as e:
        e["stop"] = services.stop_kafka(server)
        again = start_kafka(server.dir)
        STARTED.append(again.pid)
        e["same_bootstrap"] = again.bootstrap == server.bootstrap
        e["start_seconds"] = again.start_seconds
        admin = KafkaAdminClient(**again.client_config())
        e["topics_kept"] = "orders" in admin.list_topics()
        admin.close()
        assert e["same_bootstrap"], e
        assert e["topics_kept"], e
        return again
    return server


def wrong_password(server: services.KafkaServer, cfg: dict[str, Any]) -> None:
    from kafka import KafkaAdminClient, KafkaProducer

    with check("sasl: wrong password: stdlib probe gets the broker's message") as e:
        e["right"] = services.kafka_sasl_probe(server.bootstrap, "alice", "alice-secret")
        e["wrong"] = services.kafka_sasl_probe(server.bootstrap, "alice", "wrong")
        assert e["right"] is None
        assert e["wrong"] is not None
        assert "Invalid username or password" in e["wrong"], e["wrong"]

    bad = {**cfg, "sasl_plain_password": "wrong"}
    fast = {**bad, "bootstrap_timeout_ms": 5000}
    ctors: dict[str, Callable[[], Any]] = {
        "KafkaProducer() default bootstrap_timeout_ms": lambda: KafkaProducer(**bad).close(),
        "KafkaProducer() bootstrap_timeout_ms=5000": lambda: KafkaProducer(**fast).close(),
        "KafkaAdminClient() bootstrap_timeout_ms=5000": lambda: KafkaAdminClient(**fast).close(),
        "KafkaConsumer()+poll bootstrap_timeout_ms=5000": lambda: _consumer_poll(fast),
    }
    for name, fn in ctors.items():
        with check(f"sasl: wrong password: {name}") as e:
            t0 = time.monotonic()
            status, value = run_with_deadline(fn, 45)
            e["seconds_to_outcome"] = round(time.monotonic() - t0, 2)
            e["outcome"] = status
            if status == "error":
                e["exception"] = f"{type(value).__module__}.{type(value).__name__}"
                e["message"] = str(value)[:500]
            elif status == "ok":
                e["returned"] = repr(value)[:300]
            # "ok" here means: the client did fail, within the deadline.
            e["ok_override"] = status == "error"


def sasl_checks() -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    server = start_kafka(sasl_user="alice", sasl_password="alice-secret")
    STARTED.append(server.pid)
    REPORT["checks"]["sasl: start SASL_PLAINTEXT broker"] = {
        "ok": True,
        "bootstrap": server.bootstrap,
        "start_seconds": server.start_seconds,
    }
    try:
        cfg = server.client_config()
        with check("sasl: right password: admin, produce, consume") as e:
            admin = KafkaAdminClient(**cfg)
            admin.create_topics([NewTopic("secure", 1, 1)])
            admin.close()
            p = KafkaProducer(**cfg, acks="all")
            p.send("secure", b"hello").get(timeout=10)
            p.close()
            c = KafkaConsumer("secure", **cfg, group_id="gs", auto_offset_reset="earliest")
            got = drain(c, 1, 20)
            c.close()
            e["consumed"] = len(got)
            assert len(got) == 1

        wrong_password(server, cfg)
    finally:
        with check("sasl: stop broker") as e:
            e["result"] = services.stop_kafka(server, remove=True)


def _consumer_poll(config: dict[str, Any]) -> Any:
    from kafka import KafkaConsumer

    c = KafkaConsumer("secure", **config, group_id="gs-bad")
    try:
        return c.poll(timeout_ms=10000)
    finally:
        c.close()


# --------------------------------------------------------------------------- Redis


def redis_checks() -> None:
    import redis

    server = services.start_redis()
    STARTED.append(server.pid)
    REPORT["versions"]["redis-server"] = server.version
    REPORT["checks"]["redis: start"] = {
        "ok": True,
        "url": server.url,
        "start_seconds": server.start_seconds,
    }
    try:
        client = redis.Redis.from_url(server.url)
        with check("redis: PING, persistence off") as e:
            e["ping"] = client.ping()
            e["save"] = client.config_get("save")
            e["appendonly"] = client.config_get("appendonly")
        with check("redis: pipeline 10k SET (transaction=False)") as e:
            n = 10_000
            t0 = time.monotonic()
            pipe = client.pipeline(transaction=False)
            for i in range(n):
                pipe.set(f"k:{i}", i)
            pipe.execute()
            elapsed = time.monotonic() - t0
            e["ops_per_s"] = round(n / elapsed)
        with check("redis: 2k single round trips (GET)") as e:
            n = 2000
            t0 = time.monotonic()
            for i in range(n):
                client.get(f"k:{i}")
            e["ops_per_s"] = round(n / (time.monotonic() - t0))
        with check("redis: EVAL Lua (capped increment)") as e:
            script = """
            local v = tonumber(redis.call('GET', KEYS[1]) or '0')
            if v + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return -1 end
            return redis.call('INCRBY', KEYS[1], ARGV[1])
            """
            e["results"] = [client.eval(script, 1, "cap", 4, 10) for _ in range(4)]
            capped = client.register_script(script)
            e["registered_script_result"] = capped(keys=["cap2"], args=[3, 5])
            assert e["results"] == [4, 8, -1, -1], e["results"]
        client.close()
    finally:
        with check("redis: stop") as e:
            e["result"] = services.stop_redis(server, remove=True)
    redis_password_check()


def redis_password_check() -> None:
    import redis

    with check("redis: password: right works, wrong gives an error") as e:
        server = services.start_redis(password="s3cret")
        STARTED.append(server.pid)
        try:
            ok = redis.Redis(port=server.port, password="s3cret")
            e["right"] = ok.ping()
            ok.close()
            # redis-py's AuthenticationError is a ConnectionError, which its default Retry
            # retries with backoff (about 4 s); retry=None fails at once.
            for label, kwargs in (
                ("wrong, default retry", {"password": "nope"}),
                ("wrong, retry=None", {"password": "nope", "retry": None}),
                ("none, retry=None", {"retry": None}),
            ):
                t0 = time.monotonic()
                bad = redis.Redis(port=server.port, **kwargs)
                try:
                    bad.ping()
                    e[label] = "accepted (unexpected)"
                except redis.RedisError as exc:
                    e[label] = f"{type(exc).__name__}: {exc}"[:200]
                e[label + " seconds"] = round(time.monotonic() - t0, 2)
                bad.close()
        finally:
            e["stop"] = services.stop_redis(server, remove=True)
        assert not any("unexpected" in str(v) for v in e.values())


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--skip-sasl", action="store_true")
    parser.add_argument("--kafka-version", default=services.KAFKA_VERSION)
    args = parser.parse_args()
    OPTIONS["kafka_version"] = args.kafka_version
    ensure_packages()

    with check("kafka: assemble (cached after the first run)") as e:
        t0 = time.monotonic()
        e["lib"] = str(services.assemble_kafka(OPTIONS["kafka_version"]))
        e["assemble_seconds"] = round(time.monotonic() - t0, 2)
    server = start_kafka()  # no point going on without it: let it raise
    STARTED.append(server.pid)
    REPORT["checks"]["kafka: start plain broker"] = {
        "ok": True,
        "bootstrap": server.bootstrap,
        "start_seconds": server.start_seconds,
    }
    try:
        kafka_checks(server, args.messages)
        server = restart_check(server)
    finally:
        with check("kafka: stop plain broker") as e:
            t0 = time.monotonic()
            e["result"] = services.stop_kafka(server, remove=True)
            e["stop_seconds"] = round(time.monotonic() - t0, 2)
    if not args.skip_sasl:
        sasl_checks()
    if not args.skip_redis:
        redis_checks()

    REPORT["started_pids"] = STARTED
    REPORT["leftover_pids"] = [p for p in STARTED if services.pid_alive(p)]
    out = services.cache_dir() / "services" / "verify-report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(REPORT, indent=2, default=str) + "\n")
    print(json.dumps(REPORT, indent=2, default=str))
    failed = [k for k, v in REPORT["checks"].items() if not v["ok"]]
    print(f"{len(REPORT['checks']) - len(failed)} passed, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
