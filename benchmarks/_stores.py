"""The store a benchmark runs on: a SQLite file, or the project's own Kafka broker and Redis.

``running_store("kafka", directory)`` starts both services with
``scripts/services/services.py`` on free loopback ports and stops them by PID
on the way out, whatever happens; the settings come back as environment
variables (for ``realorders`` subprocesses) and as a
:class:`~realorders.config.Config` (for the harness's own Client).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from realorders.config import Config

__all__ = [
    "RunningStore",
    "Services",
    "load_services",
    "running_store",
    "store_config",
    "store_env",
]

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "services" / "services.py"


def load_services() -> ModuleType:
    """scripts/services/services.py as a module (it is a script, not a package)."""
    name = "_realorders_service_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SERVICES)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {SERVICES}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@dataclass
class Services:
    kafka: Any
    redis: Any
    pids: dict[str, int] = field(default_factory=dict)


def store_env(services: Services, prefix: str, partitions: int) -> dict[str, str]:
    """The environment of a ``realorders`` process on these services (nothing else leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALORDERS_")}
    env.update(
        {
            "REALORDERS_BACKEND": "kafka",
            "REALORDERS_KAFKA_BOOTSTRAP": services.kafka.bootstrap,
            "REALORDERS_REDIS_URL": services.redis.url,
            "REALORDERS_KAFKA_TOPIC_PREFIX": prefix,
            "REALORDERS_REDIS_PREFIX": prefix,
            "REALORDERS_KAFKA_GROUP": f"{prefix}-engines",
            "REALORDERS_KAFKA_PARTITIONS": str(partitions),
        }
    )
    return env


def store_config(services: Services, prefix: str, partitions: int) -> Config:
    """The same store as :func:`store_env`, for the harness's own Client."""
    return Config(
        backend="kafka",
        kafka_bootstrap=services.kafka.bootstrap,
        redis_url=services.redis.url,
        kafka_topic_prefix=prefix,
        redis_prefix=prefix,
        kafka_group=f"{prefix}-engines",
        kafka_partitions=partitions,
    )


@dataclass
class RunningStore:
    backend: str
    env: dict[str, str]  # for realorders subprocesses
    config: Config  # for the harness's Client
    services: Services | None = None

    def fresh(self, name: str) -> RunningStore:
        """Another empty store beside this one (a new SQLite file, or new topics and prefix)."""
        if self.services is None:
            db = Path(self.config.db).with_name(f"{name}.db")
            env = {**self.env, "REALORDERS_DB": str(db)}
            return RunningStore("sqlite", env, Config(db=db))
        prefix = f"{name}{uuid.uuid4().hex[:6]}"
        partitions = self.config.kafka_partitions
        return RunningStore(
            "kafka",
            store_env(self.services, prefix, partitions),
            store_config(self.services, prefix, partitions),
            self.services,
        )


@contextlib.contextmanager
def running_store(backend: str, directory: Path, partitions: int = 4) -> Iterator[RunningStore]:
    """An empty store of ``backend`` in ``directory``, services stopped on the way out.

    SIGTERM becomes SystemExit here, so a stopped benchmark still stops its services.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if backend == "sqlite":
        db = directory / "bench.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("REALORDERS_")}
        env["REALORDERS_DB"] = str(db)
        yield RunningStore("sqlite", env, Config(db=db))
        return
    with kafka_and_redis(directory) as services:
        prefix = f"bench{uuid.uuid4().hex[:6]}"
        yield RunningStore(
            "kafka",
            store_env(services, prefix, partitions),
            store_config(services, prefix, partitions),
            services,
        )


@contextlib.contextmanager
def kafka_and_redis(directory: Path) -> Iterator[Services]:
    """A broker and a Redis server of their own in ``directory``, stopped by PID after."""
    script = load_services()
    kafka_server: Any = None
    redis_server: Any = None
    try:
        kafka_server = script.start_kafka(directory / "kafka")
        redis_server = script.start_redis(directory / "redis")
        yield Services(
            kafka_server, redis_server, {"broker": kafka_server.pid, "redis": redis_server.pid}
        )
    finally:
        if kafka_server is not None:
            script.stop_kafka(kafka_server)
        if redis_server is not None:
            script.stop_redis(redis_server)
