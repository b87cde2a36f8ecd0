"""The distributed mode over SASL_SSL: TLS to the project's broker, SASL/PLAIN on top.

The broker (``sasl_ssl_kafka_server``) serves a certificate from a throwaway CA that
services.py made with openssl; every command here is the real console script with the
settings an operator would export. The ways it goes wrong must each be one line on
stderr, exit 1, and come at once: kafka-python itself would only retry its bootstrap for
30 s and then say "Unable to bootstrap".
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from services import (
    KafkaServer,
    RedisServer,
    config_env,
    sasl_ssl_kafka_config,
    untrusted_ca_file,
)

from realorders import Client

pytestmark = [pytest.mark.services, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WRONG_PASSWORD = "not-the-password"
#: A refusal comes from one probe round trip; kafka-python's bootstrap would take 30 s.
PROMPT_S = 15.0


def refusal(cli: Any, env: dict[str, str], *args: str) -> str:
    """Run a command that must fail at once: its only stderr line (exit 1, no traceback)."""
    started = time.monotonic()
    result = cli(*args, env=env, timeout=60)
    took = time.monotonic() - started
    shown = f"realorders {' '.join(args)} exited {result.returncode} after {took:.1f} s:\n"
    shown += result.stdout + result.stderr
    assert result.returncode == 1, shown
    assert took < PROMPT_S, shown
    assert "Traceback" not in result.stderr, shown
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, shown
    line: str = lines[0]
    assert line.startswith("error: "), shown
    return line


def store_env(cli: Any, server: KafkaServer, redis: RedisServer, prefix: str) -> dict[str, str]:
    """A store of the test's own on the SASL_SSL broker, initialised with the right settings."""
    env = config_env(sasl_ssl_kafka_config(server, redis, prefix))
    cli("init", "--inventory", str(EXAMPLES / "inventory.csv"), env=env, check=True)
    return env


def test_the_distributed_mode_end_to_end_over_sasl_ssl(
    cli: Any,
    sasl_ssl_kafka_server: KafkaServer,
    redis_server: RedisServer,
    kafka_prefix: str,
) -> None:
    server = sasl_ssl_kafka_server
    config = sasl_ssl_kafka_config(server, redis_server, kafka_prefix)
    env = config_env(config)
    assert env["REALORDERS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["REALORDERS_KAFKA_CA_FILE"] == server.ca_file
    outputs: list[str] = []

    def run(*args: str) -> str:
        result = cli(*args, env=env, check=True, timeout=120)
        outputs.append(result.stdout + result.stderr)
        return str(result.stdout)

    init = cli("init", "--inventory", str(EXAMPLES / "inventory.csv"), env=env, check=True)
    assert f"{kafka_prefix}.events: created" in init.stdout + init.stderr
    run("products", "add", "TLS-1", "--name", "Cipher suite", "--price", "12.50", "--stock", "9")
    order_id = run("submit", "-c", "ada", "-i", "TLS-1=2", "-i", "KB-01=1").strip()
    run("import", str(EXAMPLES / "orders.ndjson"))
    engine = cli("run", "--until-idle", env=env, check=True, timeout=120)
    outputs.append(engine.stdout + engine.stderr)
    assert "now owns partitions" in engine.stderr, engine.stderr

    shown = json.loads(run("show", order_id, "--json"))
    assert shown["status"] == "delivered"
    assert [e["seq"] for e in shown["events"]] == [1, 2, 3, 4, 5]
    stats = json.loads(run("stats", "--json"))
    assert stats["orders"] == 49
    assert stats["by_status"].get("pending", 0) == 0
    assert "every invariant holds" in run("check") + outputs[-1]
    product = json.loads(run("products", "show", "TLS-1", "--format", "json"))
    assert product["on_hand"] == 7, product

    # The Python API on the same Config: the helper a bridge test builds on.
    with Client(config=config, create=False) as client:
        assert client.get(order_id).status == "delivered"

    settings = run("config", "show")
    assert "kafka_password" in settings
    assert str(server.ca_file) in settings
    for output in outputs:
        assert str(server.sasl_password) not in output


def test_a_wrong_password_is_one_clear_line_at_once(
    cli: Any,
    sasl_ssl_kafka_server: KafkaServer,
    redis_server: RedisServer,
    kafka_prefix: str,
) -> None:
    server = sasl_ssl_kafka_server
    env = store_env(cli, server, redis_server, kafka_prefix)
    wrong = env | {"REALORDERS_KAFKA_PASSWORD": WRONG_PASSWORD}
    expected = (
        f"error: Kafka at {server.bootstrap} refused the credentials of user {server.sasl_user} "
        "(SASL PLAIN): Authentication failed: Invalid username or password"
    )
    for args in (
        ("init",),
        ("submit", "-c", "ada", "-i", "KB-01=1"),
        ("run", "--until-idle"),
        ("stats",),
        ("check",),
        ("watch", "--until-done", "--timeout", "30"),
        ("dlq", "list"),
    ):
        line = refusal(cli, wrong, *args)
        assert line == expected, (args, line)
    shown = cli("config", "show", env=wrong, check=True)
    assert WRONG_PASSWORD not in shown.stdout + shown.stderr
    assert "****" in shown.stdout


@pytest.mark.parametrize("trusting", ["another CA", "the system CAs"])
def test_an_untrusted_certificate_is_one_clear_line_at_once(
    cli: Any,
    sasl_ssl_kafka_server: KafkaServer,
    redis_server: RedisServer,
    kafka_prefix: str,
    tmp_path: Path,
    trusting: str,
) -> None:
    server = sasl_ssl_kafka_server
    env = store_env(cli, server, redis_server, kafka_prefix)
    if trusting == "another CA":
        other = untrusted_ca_file(tmp_path)
        untrusting = env | {"REALORDERS_KAFKA_CA_FILE": str(other)}
        trusted = f"kafka_ca_file is {other} (from env REALORDERS_KAFKA_CA_FILE)"
    else:
        untrusting = {k: v for k, v in env.items() if k != "REALORDERS_KAFKA_CA_FILE"}
        trusted = "kafka_ca_file is unset, so only the system's CAs are trusted"
    for args in (("init",), ("run", "--until-idle"), ("stats",), ("check",)):
        line = refusal(cli, untrusting, *args)
        assert line.startswith(f"error: Kafka at {server.bootstrap}: TLS certificate not trusted")
        assert "unable to get local issuer certificate" in line, line
        assert trusted in line, line
        assert "set it to the CA (PEM) that signed the broker's certificate" in line


def test_plaintext_sasl_against_the_tls_listener_is_one_clear_line(
    cli: Any,
    sasl_ssl_kafka_server: KafkaServer,
    redis_server: RedisServer,
    kafka_prefix: str,
) -> None:
    env = store_env(cli, sasl_ssl_kafka_server, redis_server, kafka_prefix)
    line = refusal(cli, env | {"REALORDERS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "stats")
    assert f"cannot reach Kafka at {sasl_ssl_kafka_server.bootstrap}" in line
    assert "does it expect another security protocol?" in line
