"""Real Kafka and Redis for tests: fixtures over ``scripts/services/services.py``.

Loaded by ``tests/conftest.py`` (``pytest_plugins = ["services"]``). Session-scoped:

- ``redis_server``: a :class:`RedisServer` (``.url`` ``redis://127.0.0.1:PORT/0``,
  ``.port``), persistence off.
- ``kafka_server``: a :class:`KafkaServer` (``.bootstrap`` ``127.0.0.1:PORT``,
  ``.client_config()`` for kafka-python), topics are never auto-created.
- ``sasl_kafka_server``: another broker whose only listener is SASL_PLAINTEXT with
  SASL/PLAIN; ``.sasl_user`` / ``.sasl_password`` are :data:`SASL_USER` /
  :data:`SASL_PASSWORD`, and ``.client_config()`` carries them. Started on first use.
- ``sasl_ssl_kafka_server``: another broker whose client listener is SASL_SSL: TLS with a
  certificate (SAN 127.0.0.1, localhost) from a throwaway CA made by services.py with
  ``openssl``, SASL/PLAIN on top (same user and password). ``.ca_file`` is that CA's PEM;
  ``.client_config()`` carries the CA and the login. Started on first use.

Helpers for tests of the distributed mode over it (the CLI or the Python API):

- :func:`sasl_ssl_kafka_config` ``(server, redis_server, prefix)``: a realorders
  :class:`~realorders.config.Config` for a store of its own on that broker (SASL_SSL,
  PLAIN, user, password, ``kafka_ca_file``).
- :func:`config_env` ``(config)``: the same as ``REALORDERS_*`` environment variables,
  for the real console script (``cli(..., env=config_env(cfg))``).
- :func:`untrusted_ca_file` ``(directory)``: a CA that signed nothing the broker serves,
  to play a client that does not trust the broker's certificate.

Per test:

- ``redis_prefix`` / ``kafka_prefix``: a fresh namespace such as ``t3f9c01a2b4``, so
  tests share one broker and one Redis without seeing each other's keys, topics,
  groups or transactional ids (``f"{redis_prefix}:stock"``, ``f"{kafka_prefix}.events"``).
- ``kafka_store_config``: a realorders :class:`~realorders.config.Config` for a store of
  the test's own (topics, group, Redis keys under ``kafka_prefix``, two partitions) on
  the session's broker and Redis.
- ``restartable_redis`` / ``restartable_kafka``: a server of the test's own (Redis with
  persistence on) whose ``.restart()`` stops it by PID and starts it again on the same
  port with the same data directory.

Every server is stopped by PID when its scope ends, whatever the outcome. A missing
prerequisite (redis-server, Java 17, Maven or the broker it fetches) skips the tests
that need it, with a one-line hint; with ``CI=true`` it fails them instead, so a CI
machine cannot go green without running them. The decision is taken once a session.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from realorders.config import SETTINGS, Config

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "services" / "services.py"
SASL_USER = "realorders"
SASL_PASSWORD = "realorders-test-secret"
MIN_JAVA = 17
SERVICE_FIXTURES = frozenset(
    {
        "redis_server",
        "kafka_server",
        "sasl_kafka_server",
        "sasl_ssl_kafka_server",
        "restartable_redis",
        "restartable_kafka",
    }
)


def _load_script() -> ModuleType:
    # This module is ``services`` on sys.path, so the script is loaded under its own name.
    name = "_realorders_service_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


script = _load_script()
if TYPE_CHECKING:  # mypy reads the same classes where they are defined (no sys.path trick)
    from scripts.services import services as _typed

    KafkaServer = _typed.KafkaServer
    RedisServer = _typed.RedisServer
else:
    KafkaServer = script.KafkaServer
    RedisServer = script.RedisServer
ServiceError = script.ServiceError
kafka_sasl_probe = script.kafka_sasl_probe


def unavailable(reason: str) -> NoReturn:
    """Skip (a developer machine) or fail (``CI=true``): a prerequisite is missing."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3.0.12 reads its protocol schemas with importlib.resources.read_text,
    # deprecated on Python 3.11-3.12 (undeprecated in 3.13): its warning, not ours. The
    # second filter is read_text's own inner open_text call, attributed to the stdlib.
    for line in (
        "ignore:read_text is deprecated:DeprecationWarning:kafka.protocol.schemas.load_json",
        "ignore:open_text is deprecated:DeprecationWarning:importlib.resources._legacy",
    ):
        config.addinivalue_line("filterwarnings", line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that start services get the marker by themselves: -m "not services" leaves them out.
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


# --------------------------------------------------------------------------- prerequisites


def _attempt(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, Exception | None]:
    """``(result, None)`` or ``(None, the ServiceError)``: skip/fail outside the ``except``,
    so the report shows one reason instead of a chained traceback."""
    try:
        return call(*args, **kwargs), None
    except ServiceError as exc:
        return None, exc


@pytest.fixture(scope="session")
def redis_available() -> str:
    """The redis-server executable; skips/fails once per session when there is none."""
    exe, error = _attempt(script.redis_executable, install=False)
    if error is not None:
        unavailable("redis-server not found: apt-get install redis-server (Debian) to run it")
    return str(exe)


@pytest.fixture(scope="session")
def kafka_available() -> Path:
    """The assembled broker's lib directory; Java 17+ and (on first use) Maven checked once."""
    java_hint = f"apt-get install openjdk-{MIN_JAVA}-jre-headless (or set JAVA_HOME)"
    java, error = _attempt(script.java_executable)
    if error is not None:
        unavailable(f"java not found, Kafka needs Java {MIN_JAVA}+: {java_hint}")
    major, error = _attempt(script.java_major, java)
    if error is not None or major < MIN_JAVA:
        found = f"Java {major}" if error is None else _first_line(error)
        unavailable(f"{java}: {found}, Kafka needs Java {MIN_JAVA}+: {java_hint}")
    lib, error = _attempt(script.assemble_kafka)
    if error is not None:
        if "mvn not found" in str(error):
            unavailable("mvn not found: apt-get install maven (fetches Kafka once into .cache/)")
        unavailable(
            f"could not assemble Kafka {script.KAFKA_VERSION} ({_first_line(error)}); "
            "run python3 scripts/services/services.py kafka assemble to see why"
        )
    return Path(lib)


# --------------------------------------------------------------------------- shared servers


def _started(start: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a start_* function; a service that fails with its prerequisites present fails."""
    server, error = _attempt(start, *args, **kwargs)
    if error is not None:
        pytest.fail(f"{start.__name__} failed: {error}", pytrace=False)
    return server


@pytest.fixture(scope="session")
def redis_server(
    redis_available: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    server = _started(script.start_redis, tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        script.stop_redis(server)


@pytest.fixture(scope="session")
def kafka_server(
    kafka_available: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaServer]:
    server = _started(script.start_kafka, tmp_path_factory.mktemp("kafka"))
    try:
        yield server
    finally:
        script.stop_kafka(server)


@pytest.fixture(scope="session")
def sasl_kafka_server(
    kafka_available: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaServer]:
    server = _started(
        script.start_kafka,
        tmp_path_factory.mktemp("kafka-sasl"),
        sasl_user=SASL_USER,
        sasl_password=SASL_PASSWORD,
    )
    try:
        yield server
    finally:
        script.stop_kafka(server)


def _namespace() -> str:
    # Starts with a letter and uses only [a-z0-9]: valid in Redis keys and Kafka names alike.
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def redis_prefix() -> str:
    return _namespace()


@pytest.fixture
def kafka_prefix() -> str:
    return _namespace()


@pytest.fixture(scope="session")
def sasl_ssl_kafka_server(
    kafka_available: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaServer]:
    """A broker whose client listener is SASL_SSL (PLAIN as SASL_USER); ``.ca_file`` its CA."""
    _, error = _attempt(script.openssl_executable)
    if error is not None:
        unavailable("openssl not found: apt-get install openssl (makes the broker's certificates)")
    server = _started(
        script.start_kafka,
        tmp_path_factory.mktemp("kafka-sasl-ssl"),
        sasl_user=SASL_USER,
        sasl_password=SASL_PASSWORD,
        tls=True,
    )
    try:
        yield server
    finally:
        script.stop_kafka(server)


def kafka_config(kafka_server: Any, redis_server: Any, prefix: str) -> Config:
    """A store of its own (topics, group and keys under ``prefix``) on these services."""
    return Config(
        backend="kafka",
        kafka_bootstrap=kafka_server.bootstrap,
        redis_url=redis_server.url,
        kafka_topic_prefix=prefix,
        kafka_group=f"{prefix}-engine",
        kafka_partitions=2,
        redis_prefix=prefix,
    )


def sasl_ssl_kafka_config(server: KafkaServer, redis_server: Any, prefix: str) -> Config:
    """:func:`kafka_config` over ``sasl_ssl_kafka_server``: TLS trusting its CA, PLAIN login."""
    if server.ca_file is None:
        raise ValueError(f"the broker at {server.bootstrap} has no TLS listener (no ca_file)")
    return dataclasses.replace(
        kafka_config(server, redis_server, prefix),
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_username=server.sasl_user,
        kafka_password=server.sasl_password,
        kafka_ca_file=Path(server.ca_file),
    )


def config_env(config: Config) -> dict[str, str]:
    """``config``'s settings that differ from the defaults, as ``REALORDERS_*`` variables.

    What an operator would export for the CLI; the password goes this way too (it has no
    flag). Give the result to the ``cli`` fixture: ``cli("init", env=config_env(cfg))``.
    """
    defaults = Config()
    env: dict[str, str] = {}
    for setting in SETTINGS:
        value = getattr(config, setting.name)
        if value is not None and value != getattr(defaults, setting.name):
            env[setting.env] = str(value)
    return env


def untrusted_ca_file(directory: Path) -> Path:
    """A fresh CA certificate (PEM) in ``directory``: valid, but it signed nothing served here."""
    path: Path = script.make_ca(directory, "untrusted", subject="realorders untrusted test CA")
    return path


@pytest.fixture
def kafka_store_config(kafka_server: Any, redis_server: Any, kafka_prefix: str) -> Config:
    return kafka_config(kafka_server, redis_server, kafka_prefix)


# --------------------------------------------------------------------------- restartable servers


class RestartableRedis:
    """A test's own redis-server (persistence on); ``restart()`` keeps its port and data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server: RedisServer = _started(script.start_redis, directory, persistence=True)
        self.restarts = 0

    @property
    def url(self) -> str:
        return str(self.server.url)

    @property
    def port(self) -> int:
        return int(self.server.port)

    @property
    def pid(self) -> int:
        return int(self.server.pid)

    def stop(self) -> str:
        result: str = script.stop_redis(self.server)
        return result

    def restart(self) -> RedisServer:
        """Stop by PID (SIGTERM: Redis writes its data), start on the same port and dir."""
        self.stop()
        self.server = _started(
            script.start_redis, self.directory, persistence=True, port=self.server.port
        )
        self.restarts += 1
        return self.server


class RestartableKafka:
    """A test's own broker; ``restart()`` keeps its port and its KRaft log directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server: KafkaServer = _started(script.start_kafka, directory)
        self.restarts = 0

    @property
    def bootstrap(self) -> str:
        return str(self.server.bootstrap)

    @property
    def port(self) -> int:
        return int(self.server.port)

    @property
    def pid(self) -> int:
        return int(self.server.pid)

    def client_config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.server.client_config()
        return config

    def stop(self) -> str:
        result: str = script.stop_kafka(self.server)
        return result

    def restart(self) -> KafkaServer:
        """Stop by PID, start again in the same directory (formatted once) and on the same port.

        services.start_kafka reuses the recorded ports when they are free; if one was taken
        meanwhile the broker would come back elsewhere, which this refuses.
        """
        before = self.server.bootstrap
        self.stop()
        self.server = _started(script.start_kafka, self.directory)
        self.restarts += 1
        if self.server.bootstrap != before:
            pytest.fail(
                f"the restarted broker listens on {self.server.bootstrap}, not {before} "
                "(its port was taken while it was down)",
                pytrace=False,
            )
        return self.server


@pytest.fixture
def restartable_redis(redis_available: str, tmp_path: Path) -> Iterator[RestartableRedis]:
    redis = RestartableRedis(tmp_path / "redis")
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def restartable_kafka(kafka_available: Path, tmp_path: Path) -> Iterator[RestartableKafka]:
    kafka = RestartableKafka(tmp_path / "kafka")
    try:
        yield kafka
    finally:
        kafka.stop()
