"""Every command and option explains itself (as sqlite-utils checks for its CLI)."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from realorders.cli import app
from realorders.config import SETTINGS


def _commands() -> list[tuple[str, Any]]:
    """Every (sub)command; typer builds on its own copy of click, so walk by duck typing."""
    root = typer.main.get_command(app)
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, command: Any) -> None:
        found.append((prefix, command))
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(f"{prefix} {name}".strip(), sub)

    walk("", root)
    return found


COMMANDS = _commands()


@pytest.mark.parametrize(
    ("name", "command"), COMMANDS, ids=[n or "realorders" for n, _ in COMMANDS]
)
def test_command_and_its_options_have_help(name: str, command: Any) -> None:
    assert (command.help or "").strip(), f"`realorders {name}` has no help text"
    for param in command.params:
        if param.param_type_name == "option" and "--help" not in param.opts:
            assert (param.help or "").strip(), f"`realorders {name}` option {param.opts} lacks help"


def test_every_contract_command_exists() -> None:
    names = {name for name, _ in COMMANDS}
    expected = {
        "init",
        "run",
        "demo",
        "dashboard",
        "submit",
        "import",
        "list",
        "show",
        "cancel",
        "watch",
        "stats",
        "check",
        "products list",
        "products add",
        "products show",
        "products update",
        "products remove",
        "inventory list",
        "inventory set",
        "inventory restock",
        "config show",
        "tokens create",
        "tokens list",
        "tokens revoke",
        "webhooks add",
        "webhooks list",
        "webhooks show",
        "webhooks update",
        "webhooks disable",
        "webhooks enable",
        "webhooks remove",
        "webhooks rotate-secret",
    }
    assert expected <= names


def test_every_setting_but_a_secret_has_its_flag() -> None:
    """Secrets come from the environment or the config file only (flags show in `ps`)."""
    root = typer.main.get_command(app)
    flags = {opt for param in root.params for opt in param.opts}
    for setting in SETTINGS:
        if setting.secret:
            assert setting.flag is None
            assert not any(setting.name.replace("_", "-") in flag for flag in flags), setting.name
        else:
            assert setting.flag in flags, setting.name
