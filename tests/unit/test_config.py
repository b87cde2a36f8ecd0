"""Settings: precedence flag > env > file > default, both file shapes, every error, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from realorders.client import Client
from realorders.config import MASK, SETTINGS, Config, load_config, mask_url, parse_bootstrap
from realorders.errors import UsageError

SECRET = "s3cr3t-pa55"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load(
    tmp_path: Path, toml: str | None = None, env: dict[str, str] | None = None, **flags: object
) -> Config:
    path = None if toml is None else write(tmp_path / "cfg.toml", toml)
    return load_config(flags, env or {}, path)


def error(
    tmp_path: Path, toml: str | None = None, env: dict[str, str] | None = None, **flags: object
) -> str:
    with pytest.raises(UsageError) as caught:
        load(tmp_path, toml, env, **flags)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code == 2
    return message


@pytest.fixture(autouse=True)
def _no_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # ./realorders.toml is read when present: keep the repo's out


# -- precedence ---------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path)
    assert cfg == Config()
    assert cfg.backend == "sqlite"
    assert cfg.db == Path("realorders.db")
    assert cfg.kafka_bootstrap == "127.0.0.1:9092"
    assert cfg.kafka_partitions == 12
    assert cfg.kafka_replication_factor is None
    assert cfg.config_file is None
    assert {v.source for v in cfg.report()} == {"default"}
    assert [v.name for v in cfg.report()] == [s.name for s in SETTINGS]


@pytest.mark.parametrize(
    ("name", "flag", "env", "file", "expected"),
    [
        ("kafka_bootstrap", "f:1", "e:2", '"c:3"', ("f:1", "e:2", "c:3", "127.0.0.1:9092")),
        ("kafka_partitions", 4, "5", "6", (4, 5, 6, 12)),
        ("backend", "kafka", "kafka", '"kafka"', ("kafka", "kafka", "kafka", "sqlite")),
        ("kafka_group", "fg", "eg", '"cg"', ("fg", "eg", "cg", "realorders-engine")),
        ("redis_prefix", "fp", "ep", '"cp"', ("fp", "ep", "cp", "realorders")),
    ],
)
def test_flag_beats_env_beats_file_beats_default(
    tmp_path: Path, name: str, flag: object, env: str, file: str, expected: tuple[object, ...]
) -> None:
    toml = f"{name} = {file}\n"
    env_vars = {f"REALORDERS_{name.upper()}": env}
    path = tmp_path / "cfg.toml"
    layers = [
        (load(tmp_path, toml, env_vars, **{name: flag}), "flag"),
        (load(tmp_path, toml, env_vars), f"env REALORDERS_{name.upper()}"),
        (load(tmp_path, toml), f"file {path}"),
        (load(tmp_path), "default"),
    ]
    for (cfg, source), value in zip(layers, expected, strict=True):
        assert getattr(cfg, name) == value
        assert cfg.source_of(name) == source


def test_a_flag_of_none_is_not_given(tmp_path: Path) -> None:
    cfg = load(tmp_path, env={"REALORDERS_KAFKA_GROUP": "from-env"}, kafka_group=None)
    assert cfg.kafka_group == "from-env"


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'kafka_group = "file"\n', {"REALORDERS_KAFKA_GROUP": ""})
    assert cfg.kafka_group == "file"


def test_the_db_variable_and_flag(tmp_path: Path) -> None:
    assert load(tmp_path, env={"REALORDERS_DB": "env.db"}).db == Path("env.db")
    assert load(tmp_path, env={"REALORDERS_DB": "env.db"}, db=Path("flag.db")).db == Path("flag.db")


def test_choices_ignore_case(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        env={"REALORDERS_KAFKA_SECURITY_PROTOCOL": "sasl_ssl"},
        kafka_sasl_mechanism="scram-sha-512",
        backend="KAFKA",
    )
    assert (cfg.backend, cfg.kafka_security_protocol) == ("kafka", "SASL_SSL")
    assert cfg.kafka_sasl_mechanism == "SCRAM-SHA-512"


# -- the file ------------------------------------------------------------------------

FLAT = """
backend = "kafka"
kafka_bootstrap = "k1:9092,k2:9093"
kafka_partitions = 3
kafka_password = "{secret}"
redis_url = "rediss://cache:6380/1"
"""
GROUPED = """
backend = "kafka"
[kafka]
bootstrap = ["k1:9092", "k2:9093"]
partitions = 3
password = "{secret}"
[redis]
url = "rediss://cache:6380/1"
"""


@pytest.mark.parametrize(
    "toml",
    [
        FLAT,
        "[realorders]\n" + FLAT,
        GROUPED,
        GROUPED.replace("[kafka]", "[realorders.kafka]")
        .replace("[redis]", "[realorders.redis]")
        .replace('backend = "kafka"', '[realorders]\nbackend = "kafka"'),
    ],
    ids=["flat", "realorders-table", "kafka-redis-tables", "nested-under-realorders"],
)
def test_every_file_shape_gives_the_same_settings(tmp_path: Path, toml: str) -> None:
    cfg = load(tmp_path, toml.format(secret=SECRET))
    assert cfg.backend == "kafka"
    assert cfg.bootstrap_servers == ["k1:9092", "k2:9093"]
    assert cfg.kafka_partitions == 3
    assert cfg.kafka_password == SECRET
    assert cfg.redis_url == "rediss://cache:6380/1"
    assert cfg.config_file == tmp_path / "cfg.toml"
    assert cfg.source_of("kafka_partitions") == f"file {tmp_path / 'cfg.toml'}"


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    write(tmp_path / "etc" / "ca.pem", "-----BEGIN CERTIFICATE-----\n")
    path = write(tmp_path / "etc" / "realorders.toml", 'db = "shop.db"\nkafka_ca_file = "ca.pem"\n')
    cfg = load_config({}, {}, path)
    assert cfg.db == tmp_path / "etc" / "shop.db"
    assert cfg.kafka_ca_file == tmp_path / "etc" / "ca.pem"


def test_the_file_from_the_environment_and_the_default_file(tmp_path: Path) -> None:
    other = write(tmp_path / "other.toml", 'kafka_group = "from-env-file"\n')
    assert load_config({}, {"REALORDERS_CONFIG": str(other)}).kafka_group == "from-env-file"
    write(tmp_path / "realorders.toml", 'kafka_group = "from-cwd"\n')
    cfg = load_config({}, {})
    assert cfg.kafka_group == "from-cwd"
    assert cfg.source_of("kafka_group") == "file realorders.toml"
    assert load_config({}, {"REALORDERS_CONFIG": str(other)}).kafka_group == "from-env-file"


# -- errors --------------------------------------------------------------------------


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message = error(tmp_path, 'backend = "kafka"\n\nkafka_partitions = \n')
    assert message == f"{tmp_path / 'cfg.toml'}:3: invalid TOML: Invalid value (column 20)"
    message = error(tmp_path, '[kafka]\nbootstrap = "a:1"\n[kafka]\n')
    assert message.startswith(f"{tmp_path / 'cfg.toml'}:3: invalid TOML: ")


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            'kafka_bootstrp = "a:1"',
            "unknown key 'kafka_bootstrp' (did you mean 'kafka_bootstrap'?)",
        ),
        ('[kafka]\nbootstap = "a:1"', "unknown key 'kafka.bootstap' (did you mean 'bootstrap'?)"),
        ("[realorders]\nzzz = 1", "unknown key 'realorders.zzz'"),
        ('backend = "kafka"\n[realorders]\ndb = "x"', "unknown key 'backend' (with a [realorders]"),
        ('kafka = "a:1"', "kafka: expected a table ([kafka])"),
        ('realorders = "x"', "realorders: expected a table of settings"),
        (
            'kafka_group = "a"\n[kafka]\ngroup = "b"',
            "kafka_group is set twice (as kafka_group and kafka.group)",
        ),
        ('kafka_partitions = "12"', "kafka_partitions: expected an integer, got a string ('12')"),
        ("kafka_partitions = true", "kafka_partitions: expected an integer, got a boolean (True)"),
        ("kafka_partitions = 1.5", "kafka_partitions: expected an integer, got a number (1.5)"),
        ("kafka_group = 7", "kafka_group: expected a string, got an integer (7)"),
        ("kafka_bootstrap = [1]", "kafka_bootstrap: expected a list of HOST:PORT strings"),
        ('backend = "mongo"', "backend: unknown backend 'mongo'; choose from sqlite, kafka"),
        (
            '[kafka]\nsecurity_protocol = "TLS"',
            "kafka.security_protocol: unknown security protocol 'TLS'; choose from PLAINTEXT, SSL, "
            "SASL_PLAINTEXT, SASL_SSL",
        ),
        ("kafka_partitions = 0", "kafka_partitions: must be at least 1, got 0"),
        ("kafka_replication_factor = -1", "kafka_replication_factor: must be at least 1, got -1"),
        (
            'kafka_bootstrap = "a:1,b"',
            "expected HOST:PORT[,HOST:PORT…] with numeric ports, got 'b'",
        ),
        ('kafka_topic_prefix = "a b"', "kafka_topic_prefix: 'a b' is not a topic name prefix"),
        ('kafka_group = ""', "kafka_group: must not be empty"),
        ('kafka_ca_file = "missing.pem"', "kafka_ca_file: no such file: "),
        ('redis_url = "http://h:1/0"', "redis_url: 'http://h:1/0': the scheme must be redis://"),
        ('redis_url = "redis://h:x/0"', "redis_url: 'redis://h:x/0' is not a valid URL"),
        ('redis_url = "redis://h:1/zero"', "the database after the '/' must be a number"),
        ('redis_url = "unix://"', "a unix:// URL needs the socket's path"),
    ],
)
def test_file_errors_name_the_file_and_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    message = error(tmp_path, toml + "\n")
    assert message.startswith(f"{tmp_path / 'cfg.toml'}: ")
    assert expected in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REALORDERS_BACKEND": "redis"}, "REALORDERS_BACKEND: unknown backend 'redis'"),
        (
            {"REALORDERS_KAFKA_PARTITIONS": "many"},
            "REALORDERS_KAFKA_PARTITIONS: expected an integer, got 'many'",
        ),
        (
            {"REALORDERS_KAFKA_BOOTSTRAP": "host:port"},
            "REALORDERS_KAFKA_BOOTSTRAP: expected HOST:PORT",
        ),
        ({"REALORDERS_KAFKA_BOOTSTRAP": "host:99999"}, "got 'host:99999'"),
        (
            {"REALORDERS_REDIS_CA_FILE": "/no/ca.pem"},
            "REALORDERS_REDIS_CA_FILE: no such file: /no/ca.pem",
        ),
    ],
)
def test_env_errors_name_the_variable(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    assert expected in error(tmp_path, env=env)


def test_flag_errors_name_the_flag(tmp_path: Path) -> None:
    assert error(tmp_path, kafka_partitions=0) == "--kafka-partitions: must be at least 1, got 0"
    assert error(tmp_path, kafka_ca_file=Path("/no/ca.pem")) == (
        "--kafka-ca-file: no such file: /no/ca.pem"
    )
    assert error(tmp_path, backend="mongo") == (
        "--backend: unknown backend 'mongo'; choose from sqlite, kafka"
    )


def test_a_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^config file .*nope.toml does not exist$"):
        load_config({}, {}, tmp_path / "nope.toml")
    with pytest.raises(UsageError, match=r"^REALORDERS_CONFIG: config file nope.toml does not"):
        load_config({}, {"REALORDERS_CONFIG": "nope.toml"})


def test_a_file_that_is_not_utf8_or_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "latin1.toml").write_bytes(b'kafka_group = "caf\xe9"\n')
    with pytest.raises(UsageError, match=r"latin1\.toml: not UTF-8 text"):
        load_config({}, {}, tmp_path / "latin1.toml")
    with pytest.raises(UsageError, match="Is a directory"):
        load_config({}, {}, tmp_path)


def test_secrets_never_come_from_flags(tmp_path: Path) -> None:
    message = error(tmp_path, kafka_password=SECRET)
    assert message == (
        "kafka_password cannot be given on the command line; "
        "set REALORDERS_KAFKA_PASSWORD or kafka_password in the config file"
    )
    message = error(tmp_path, redis_url=f"redis://:{SECRET}@h:1/0")
    assert message.startswith("--redis-url: a password in the URL would show in the process list")
    assert SECRET not in message
    url = f"redis://:{SECRET}@h:1/0"  # the same URL from the environment or a file is fine
    assert load(tmp_path, env={"REALORDERS_REDIS_URL": url}).redis_url == url


def test_errors_never_echo_a_secret(tmp_path: Path) -> None:
    assert error(tmp_path, "kafka_password = 123456\n").endswith(
        "kafka_password: expected a string, got an integer"
    )
    message = error(tmp_path, env={"REALORDERS_REDIS_URL": f"http://:{SECRET}@h/0"})
    assert SECRET not in message
    assert f"http://:{MASK}@h/0" in message


def test_unknown_flag_names_are_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not settings: kafka_topic"):
        load_config({"kafka_topic": "x"}, {})


# -- masking and reporting -----------------------------------------------------------


def test_secrets_are_masked_in_the_report_and_the_repr(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        f'redis_password = "{SECRET}"\n',
        {
            "REALORDERS_KAFKA_PASSWORD": SECRET,
            "REALORDERS_REDIS_URL": f"redis://bob:{SECRET}@cache:6379/2",
        },
    )
    shown = {v.name: v for v in cfg.report()}
    assert shown["kafka_password"].value == MASK
    assert shown["kafka_password"].source == "env REALORDERS_KAFKA_PASSWORD"
    assert shown["redis_password"].value == MASK
    assert shown["redis_password"].source == f"file {tmp_path / 'cfg.toml'}"
    assert shown["redis_url"].value == f"redis://bob:{MASK}@cache:6379/2"
    assert shown["redis_url"].source == "env REALORDERS_REDIS_URL"
    assert SECRET not in repr(cfg)
    assert SECRET not in str(cfg.report())
    assert cfg.kafka_password == SECRET  # masked when shown, not when used


def test_an_unset_secret_is_shown_as_unset() -> None:
    assert Config().shown("kafka_password") is None


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@h:1/0", f"redis://:{MASK}@h:1/0"),
        ("rediss://user:pw@h/0?db=1", f"rediss://user:{MASK}@h/0?db=1"),
        ("redis://user@h:1/0", "redis://user@h:1/0"),
        ("redis://:p@ss:w@[::1:6379/0", f"redis://{MASK}@[::1:6379/0"),  # unparseable
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_parse_bootstrap() -> None:
    assert parse_bootstrap("a:1, b:2,[::1]:3") == [("a", 1), ("b", 2), ("::1", 3)]
    for bad in ("", "a", "a:", ":1", "a:0", "a:1,", "a:x"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_bootstrap(bad)


# -- Config in code ------------------------------------------------------------------


def test_topics_and_direct_construction() -> None:
    cfg = Config(backend="kafka", kafka_topic_prefix="shop")
    assert (cfg.commands_topic, cfg.events_topic, cfg.dlq_topic) == (
        "shop.commands",
        "shop.events",
        "shop.dlq",
    )
    assert cfg.source_of("kafka_topic_prefix") == "argument"
    with pytest.raises(UsageError, match="kafka_partitions: must be at least 1, got 0"):
        Config(kafka_partitions=0)
    with pytest.raises(UsageError, match="backend: unknown backend 'mongo'"):
        Config(backend="mongo")  # type: ignore[arg-type]


def test_the_client_takes_its_store_from_the_config(tmp_path: Path) -> None:
    with Client(config=Config(db=tmp_path / "cfg.db")) as shop:
        assert shop.config.db == tmp_path / "cfg.db"
    assert (tmp_path / "cfg.db").exists()
    with Client(tmp_path / "arg.db", config=Config(db=tmp_path / "cfg.db")) as shop:
        assert shop.config.source_of("db") == "argument"
    assert (tmp_path / "arg.db").exists()
    with pytest.raises(UsageError, match="unknown backend 'mongo'"):
        Client(tmp_path / "x.db", backend="mongo")


def test_the_readme_lists_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in section.splitlines()
        if line.startswith("| `")
    }
    assert list(rows) == [s.name for s in SETTINGS]
    for setting in SETTINGS:
        assert f"`{setting.env}`" in rows[setting.name]
        assert (f"`{setting.flag}`" if setting.flag else "none (secret)") in rows[setting.name]
