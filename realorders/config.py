"""Settings: one frozen :class:`Config`, resolved flag > environment > config file > default.

One place, so that the CLI, the Python API and both backends agree on names,
defaults and validation. Every value remembers where it came from, so that an
error and ``realorders config show`` can say which flag, variable or file to fix.

The environment variable of a setting is ``REALORDERS_<NAME>`` (an empty value
counts as unset). The config file is ``--config PATH``, else
``REALORDERS_CONFIG``, else ``./realorders.toml`` when it exists::

    backend = "kafka"
    kafka_bootstrap = "k1:9092,k2:9092"      # or a list: ["k1:9092", "k2:9092"]
    redis_url = "rediss://cache.internal:6380/0"

The same keys may sit under one ``[realorders]`` table (then nothing else may
be at the top level), and ``kafka_*`` / ``redis_*`` keys may be grouped as
``[kafka] bootstrap = …`` / ``[redis] url = …``. Unknown keys are errors.
Relative paths in a file are relative to the file's directory. Secrets
(``kafka_password``, ``redis_password`` and a password inside ``redis_url``)
never come from a flag: flags show in the process list and shell history.

Longer than 400 lines on purpose: every setting's parsing, checks and
provenance in one place, so no front or backend grows its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qs, urlsplit, urlunsplit

from realorders.config_file import find_config_file, read_config_file
from realorders.errors import UsageError

__all__ = [
    "BACKENDS",
    "MASK",
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "SETTINGS",
    "BackendName",
    "Config",
    "SaslMechanism",
    "SecurityProtocol",
    "Setting",
    "SettingValue",
    "load_config",
    "mask_url",
    "parse_bootstrap",
]

BackendName = Literal["sqlite", "kafka"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
BACKENDS: tuple[str, ...] = get_args(BackendName)
SECURITY_PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
SASL_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)

MASK = "****"
_ENV_PREFIX = "REALORDERS_"
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Setting:
    """What the CLI, the environment, the file and ``config show`` know about one setting."""

    name: str
    kind: Literal["str", "int", "path", "choice"]
    help: str
    choices: tuple[str, ...] = ()
    secret: bool = False

    @property
    def env(self) -> str:
        return _ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str | None:
        return None if self.secret else "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("backend", "choice", "Storage: sqlite (one file) or kafka (Kafka + Redis).", BACKENDS),
    Setting("db", "path", "SQLite database file (sqlite backend)."),
    Setting("kafka_bootstrap", "str", "Kafka bootstrap servers, HOST:PORT[,HOST:PORT…]."),
    Setting("kafka_security_protocol", "choice", "Kafka security protocol.", SECURITY_PROTOCOLS),
    Setting("kafka_sasl_mechanism", "choice", "SASL mechanism (SASL_*).", SASL_MECHANISMS),
    Setting("kafka_username", "str", "Kafka SASL user name."),
    Setting("kafka_password", "str", "Kafka SASL password.", secret=True),
    Setting("kafka_ca_file", "path", "CA bundle (PEM) to verify Kafka's TLS certificates."),
    Setting("kafka_topic_prefix", "str", "Topics are PREFIX.commands, PREFIX.events, PREFIX.dlq."),
    Setting("kafka_partitions", "int", "Partitions of the topics realorders creates."),
    Setting(
        "kafka_replication_factor",
        "int",
        "Replication factor of new topics (unset: min(3, brokers)).",
    ),
    Setting("kafka_group", "str", "Consumer group of the engines."),
    Setting("redis_url", "str", "Redis URL: redis://HOST:PORT/DB, rediss:// (TLS) or unix://PATH."),
    Setting("redis_password", "str", "Redis password.", secret=True),
    Setting("redis_ca_file", "path", "CA bundle (PEM) to verify Redis's TLS certificate."),
    Setting("redis_prefix", "str", "Namespace of realorders' Redis keys."),
)
_BY_NAME = {s.name: s for s in SETTINGS}
_LABELS = {"kafka_security_protocol": "security protocol", "kafka_sasl_mechanism": "SASL mechanism"}


@dataclass(frozen=True, slots=True)
class SettingValue:
    """One row of ``config show``: a value fit to print (secrets masked) and its source."""

    name: str
    value: str | int | None
    source: str


@dataclass(frozen=True, slots=True, repr=False)
class Config:
    """Every setting realorders reads. Build it with :func:`load_config` (or directly in code).

    >>> Config(backend="kafka", kafka_topic_prefix="shop").events_topic
    'shop.events'
    """

    backend: BackendName = "sqlite"
    db: Path = Path("realorders.db")
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "PLAIN"
    kafka_username: str | None = None
    kafka_password: str | None = None
    kafka_ca_file: Path | None = None
    kafka_topic_prefix: str = "realorders"
    kafka_partitions: int = 12
    kafka_replication_factor: int | None = None
    kafka_group: str = "realorders-engine"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str | None = None
    redis_ca_file: Path | None = None
    redis_prefix: str = "realorders"
    #: The file the values came from (None: no file was read).
    config_file: Path | None = field(default=None, compare=False)
    #: Setting name -> source, for the values that did not come from the defaults.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for setting in SETTINGS:
            try:
                _check(setting, getattr(self, setting.name))
            except ValueError as exc:
                raise UsageError(f"{setting.name}: {exc}") from None

    def __repr__(self) -> str:  # never a secret, in logs or tracebacks
        shown = ", ".join(f"{v.name}={v.value!r}" for v in self.report())
        return f"Config({shown})"

    @property
    def commands_topic(self) -> str:
        return f"{self.kafka_topic_prefix}.commands"

    @property
    def events_topic(self) -> str:
        return f"{self.kafka_topic_prefix}.events"

    @property
    def dlq_topic(self) -> str:
        return f"{self.kafka_topic_prefix}.dlq"

    @property
    def bootstrap_servers(self) -> list[str]:
        """``kafka_bootstrap`` as the list kafka-python takes."""
        return [item.strip() for item in self.kafka_bootstrap.split(",")]  # checked already

    def overridden(self, *, db: str | Path | None, backend: str | None) -> Config:
        """This config with ``db`` and ``backend`` given in code (``None``: keep)."""
        changes: dict[str, Any] = {}
        if db is not None:
            changes["db"] = Path(db)
        if backend is not None:
            if backend not in BACKENDS:
                raise UsageError(
                    f"unknown backend {backend!r}: this version supports {', '.join(BACKENDS)}"
                )
            changes["backend"] = backend
        if not changes:
            return self
        return replace(
            self, **changes, sources={**self.sources, **dict.fromkeys(changes, "argument")}
        )

    @property
    def scales_out(self) -> bool:
        """Whether several engines may share the store (the distributed mode)."""
        return self.backend == "kafka"

    def refuse_misplaced_flags(self) -> None:
        """UsageError for a flag of the other backend (``--db`` with kafka, ``--kafka-*`` or
        ``--redis-*`` with sqlite): the CLI says so rather than ignore what was typed."""
        for setting in SETTINGS:
            if setting.flag is None or self.source_of(setting.name) != "flag":
                continue
            kafka_only = setting.name.startswith(("kafka_", "redis_"))
            if kafka_only and not self.scales_out:
                raise UsageError(
                    f"{setting.flag} applies to the distributed mode only: add --backend kafka "
                    f"(the backend is sqlite, from {self.source_of('backend')})"
                )
            if setting.name == "db" and self.scales_out:
                raise UsageError(
                    "--db applies to the embedded mode only (--backend sqlite); "
                    "the kafka backend keeps no database file"
                )

    def where(self) -> str:
        """The store, as a person would name it in a message (never a password)."""
        if not self.scales_out:
            return str(self.db)
        return (
            f"Kafka {self.kafka_bootstrap} (topics {self.kafka_topic_prefix}.*) and "
            f"Redis {redis_location(self.redis_url)} (prefix {self.redis_prefix})"
        )

    def source_of(self, name: str) -> str:
        """Where ``name`` came from: "flag", "env REALORDERS_X", "file PATH" or "default"."""
        if name in self.sources:
            return self.sources[name]
        default = _DEFAULTS[name]
        return "default" if getattr(self, name) == default else "argument"

    def shown(self, name: str) -> str | int | None:
        """The value of ``name`` fit to print: secrets and passwords in URLs masked."""
        value = getattr(self, name)
        if _BY_NAME[name].secret:
            return None if value is None else MASK
        if name == "redis_url":
            return mask_url(value)
        return str(value) if isinstance(value, Path) else value

    def report(self) -> list[SettingValue]:
        """Every setting with its printable value and its source, in a stable order."""
        return [SettingValue(s.name, self.shown(s.name), self.source_of(s.name)) for s in SETTINGS]


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Config) if f.name in _BY_NAME}


def load_config(
    flags: Mapping[str, object | None],
    env: Mapping[str, str] = os.environ,
    config_path: Path | None = None,
) -> Config:
    """Resolve every setting: flag > ``REALORDERS_*`` env > config file > default.

    ``flags`` maps setting names to command-line values (None: not given).
    ``config_path`` is ``--config``; without it ``REALORDERS_CONFIG`` or
    ``./realorders.toml`` is read. Raises UsageError naming the flag, variable or
    file and key of a bad value.
    """
    unknown = sorted(set(flags) - _BY_NAME.keys())
    if unknown:
        raise ValueError(f"not settings: {', '.join(unknown)}")
    path = find_config_file(env, config_path)
    in_file = {} if path is None else read_config_file(path, list(_BY_NAME))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        flag_value = flags.get(setting.name)
        env_value = env.get(setting.env, "")
        if flag_value is not None:
            if setting.secret:
                raise UsageError(
                    f"{setting.name} cannot be given on the command line; "
                    f"set {setting.env} or {setting.name} in the config file"
                )
            raw, where, source = flag_value, str(setting.flag), "flag"
        elif env_value != "":
            raw, where, source = env_value, setting.env, f"env {setting.env}"
        elif setting.name in in_file:
            raw, key = in_file[setting.name]
            where, source = f"{path}: {key}", f"file {path}"
        else:
            continue
        try:
            value = _convert(setting, raw, text=source.startswith("env"))
            if path is not None and source.startswith("file") and isinstance(value, Path):
                value = path.parent / value
            _check(setting, value)
            if source == "flag" and setting.name == "redis_url" and mask_url(str(value)) != value:
                raise ValueError(
                    "a password in the URL would show in the process list; "
                    f"set REALORDERS_REDIS_PASSWORD (or the URL in {setting.env} or the file)"
                )
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        values[setting.name] = value
        sources[setting.name] = source
    return Config(**values, config_file=path, sources=sources)


def parse_bootstrap(text: str) -> list[tuple[str, int]]:
    """``"h1:9092,[::1]:9093"`` as (host, port) pairs; ValueError says what is wrong."""
    pairs: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        host, sep, port = item.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not (sep and host and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(
                f"expected HOST:PORT[,HOST:PORT…] with numeric ports, got {item or text!r}"
            )
        pairs.append((host, int(port)))
    return pairs


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def redis_location(url: str) -> str:
    """``HOST:PORT/DB`` (or ``unix:PATH``) of a Redis URL, for messages: never its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    db = parse_qs(parts.query).get("db", [parts.path.strip("/") or "0"])[0]
    return f"{host_port(parts.hostname or 'localhost', parts.port or 6379)}/{db}"


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``****``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:  # unparseable: hide everything that could be credentials
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}{MASK}@{rest.rpartition('@')[2]}" if "@" in rest else url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))


# -- values --------------------------------------------------------------------


def _convert(setting: Setting, raw: object, *, text: bool) -> object:
    """A flag's, variable's or file's raw value as the setting's type (ValueError: why not)."""
    if setting.kind == "int":
        if text and isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                raise ValueError(f"expected an integer, got {raw!r}") from None
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"expected an integer, got {_describe(setting, raw)}")
        return raw
    if setting.name == "kafka_bootstrap" and isinstance(raw, list):
        if not raw or not all(isinstance(item, str) for item in raw):
            raise ValueError("expected a list of HOST:PORT strings")
        raw = ",".join(raw)
    if setting.kind == "path" and isinstance(raw, os.PathLike):
        return Path(raw)
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {_describe(setting, raw)}")
    if setting.kind == "path":
        return Path(raw)
    if setting.kind == "choice":
        by_lower = {choice.lower(): choice for choice in setting.choices}
        try:
            return by_lower[raw.strip().lower()]
        except KeyError:
            label = _LABELS.get(setting.name, setting.name)
            raise ValueError(
                f"unknown {label} {raw!r}; choose from {', '.join(setting.choices)}"
            ) from None
    return raw


def _check(setting: Setting, value: object) -> None:
    """Rules beyond the type; ValueError says what is wrong without echoing a secret."""
    name = setting.name
    if value is None:
        if _DEFAULTS[name] is not None:
            raise ValueError("must be set")
        return
    if setting.kind == "choice" and value not in setting.choices:
        label = _LABELS.get(name, name)
        raise ValueError(f"unknown {label} {value!r}; choose from {', '.join(setting.choices)}")
    if name == "kafka_bootstrap":
        parse_bootstrap(str(value))
    elif name in ("kafka_partitions", "kafka_replication_factor"):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"must be at least 1, got {value!r}")
    elif name == "kafka_topic_prefix":
        if not _TOPIC_CHARS.fullmatch(str(value)) or len(str(value)) > 200:
            raise ValueError(
                f"{value!r} is not a topic name prefix (letters, digits, '.', '_', '-')"
            )
    elif name == "redis_url":
        _check_redis_url(str(value))
    elif name.endswith("_ca_file") and not Path(str(value)).is_file():
        raise ValueError(f"no such file: {value}")
    elif setting.kind == "str" and value == "" and not setting.secret:
        raise ValueError("must not be empty")


def _check_redis_url(url: str) -> None:
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{shown!r} is not a valid URL (is the port a number?)") from None
    if port == 0:
        raise ValueError(f"{shown!r}: the port must be from 1 to 65535")
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"{shown!r}: the scheme must be redis://, rediss:// (TLS) or unix://")
    if parts.scheme == "unix" and not parts.path:
        raise ValueError(f"{shown!r}: a unix:// URL needs the socket's path")
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not (db.isascii() and db.isdigit()):
        raise ValueError(f"{shown!r}: the database after the '/' must be a number")


def _describe(setting: Setting, raw: object) -> str:
    """A wrong value's type, and the value itself unless it is a secret."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    kinds |= {dict: "a table", list: "a list"}
    kind = kinds.get(type(raw), type(raw).__name__)
    return kind if setting.secret else f"{kind} ({raw!r})"
