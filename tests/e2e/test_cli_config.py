"""``realorders config show`` and settings errors, through the real console script."""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING

from .conftest import as_json, fails, ok

if TYPE_CHECKING:
    from conftest import Cli  # tests/conftest.py: the `cli` fixture

SECRET = "s3cr3t-pa55"
URL_SECRET = "url-pa55"

CONFIG = f"""
backend = "kafka"
[kafka]
bootstrap = "k1:9092,k2:9092"
partitions = 3
password = "{SECRET}"
[redis]
url = "redis://:{URL_SECRET}@cache:6379/2"
"""


def shown_rows(stdout: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in stdout.splitlines():
        name, value, source = line.split(maxsplit=2)
        rows[name] = (value, source)
    return rows


def secrets_absent(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert URL_SECRET not in text


def test_config_show_from_flag_env_file_and_defaults(cli: Cli) -> None:
    (cli.cwd / "realorders.toml").write_text(CONFIG)
    env = {"REALORDERS_KAFKA_PARTITIONS": "6", "REALORDERS_REDIS_PASSWORD": SECRET}
    result = ok(cli, "--kafka-group", "g1", "config", "show", env=env)
    secrets_absent(result.stdout, result.stderr)
    rows = shown_rows(result.stdout)
    assert rows["backend"] == ("kafka", "file realorders.toml")
    assert rows["db"] == (str(cli.db), "env REALORDERS_DB")
    assert rows["kafka_bootstrap"] == ("k1:9092,k2:9092", "file realorders.toml")
    assert rows["kafka_partitions"] == ("6", "env REALORDERS_KAFKA_PARTITIONS")
    assert rows["kafka_group"] == ("g1", "flag")
    assert rows["kafka_password"] == ("****", "file realorders.toml")
    assert rows["redis_password"] == ("****", "env REALORDERS_REDIS_PASSWORD")
    assert rows["redis_url"] == ("redis://:****@cache:6379/2", "file realorders.toml")
    assert rows["kafka_username"] == ("-", "default")
    assert rows["kafka_topic_prefix"] == ("realorders", "default")
    assert "config file: realorders.toml" in result.stderr

    data = as_json(ok(cli, "--kafka-group", "g1", "config", "show", "--json", env=env))
    assert data["config_file"] == "realorders.toml"
    settings = data["settings"]
    assert settings["kafka_partitions"] == {
        "value": 6,
        "source": "env REALORDERS_KAFKA_PARTITIONS",
    }
    assert settings["kafka_group"] == {"value": "g1", "source": "flag"}
    assert settings["kafka_password"] == {"value": "****", "source": "file realorders.toml"}
    assert settings["kafka_username"] == {"value": None, "source": "default"}
    assert settings["kafka_replication_factor"] == {"value": None, "source": "default"}
    assert list(settings) == list(shown_rows(result.stdout))


def test_config_show_with_an_explicit_file(cli: Cli) -> None:
    other = cli.cwd / "conf" / "other.toml"
    other.parent.mkdir()
    other.write_text('[realorders]\ndb = "shop.db"\nredis_prefix = "shop"\n')
    data = as_json(
        ok(cli, "--config", str(other), "config", "show", "--json", env={"REALORDERS_DB": ""})
    )
    assert data["config_file"] == str(other)
    assert data["settings"]["db"] == {
        "value": str(other.parent / "shop.db"),
        "source": f"file {other}",
    }
    from_env = as_json(ok(cli, "config", "show", "--json", env={"REALORDERS_CONFIG": str(other)}))
    assert from_env["settings"]["redis_prefix"]["value"] == "shop"


def test_a_bad_config_file_is_one_line_and_exit_2(cli: Cli) -> None:
    (cli.cwd / "realorders.toml").write_text(f'kafka_password = "{SECRET}"\nkafka_partitions = \n')
    for args in (("config", "show"), ("list",), ("config", "show", "--json")):
        result = fails(cli, *args, code=2)
        assert result.stderr.strip() == (
            "error: realorders.toml:2: invalid TOML: Invalid value (column 20)"
        )
        assert result.stdout == ""
        secrets_absent(result.stderr)
    assert "Usage: realorders list" in ok(cli, "list", "--help").stdout  # help needs no config


def test_settings_errors_name_their_source(cli: Cli) -> None:
    (cli.cwd / "realorders.toml").write_text('[kafka]\nbootstap = "k:1"\n')
    result = fails(cli, "config", "show", code=2)
    assert result.stderr.strip() == (
        "error: realorders.toml: unknown key 'kafka.bootstap' (did you mean 'bootstrap'?)"
    )
    result = fails(cli, "--config", "missing.toml", "config", "show", code=2)
    assert result.stderr.strip() == "error: config file missing.toml does not exist"
    result = fails(
        cli, "--kafka-partitions", "0", "--config", "/dev/null", "config", "show", code=2
    )
    assert result.stderr.strip() == "error: --kafka-partitions: must be at least 1, got 0"
    env = {"REALORDERS_KAFKA_SECURITY_PROTOCOL": "TLS"}
    result = fails(cli, "--config", "/dev/null", "config", "show", code=2, env=env)
    assert "REALORDERS_KAFKA_SECURITY_PROTOCOL: unknown security protocol 'TLS'" in result.stderr


def test_a_password_in_a_redis_url_flag_is_refused(cli: Cli) -> None:
    result = fails(
        cli, "--redis-url", f"redis://:{URL_SECRET}@cache:6379/0", "config", "show", code=2
    )
    assert "--redis-url: a password in the URL would show in the process list" in result.stderr
    secrets_absent(result.stdout, result.stderr)


def test_kafka_backend_unreachable_is_one_line_without_secrets(cli: Cli) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = {"REALORDERS_REDIS_PASSWORD": SECRET, "REALORDERS_KAFKA_PASSWORD": SECRET}
        result = fails(
            cli,
            "--backend",
            "kafka",
            "--kafka-bootstrap",
            f"127.0.0.1:{port}",
            "--redis-url",
            f"redis://127.0.0.1:{port}/0",
            "list",
            env=env,
        )
    assert re.fullmatch(
        rf"error: cannot reach (Redis|Kafka) at 127\.0\.0\.1:{port}\S* .*connection refused\)?",
        result.stderr.strip(),
    ), result.stderr
    secrets_absent(result.stdout, result.stderr)
