"""The library stays headless, and its public names are what ``__all__`` says.

Each import check runs in a fresh interpreter: this test process has long
since loaded Rich and Typer through other tests and the CLI fixtures.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import realorders

# the fronts' libraries: the core loads none of them (terminal UI, CLI, HTTP server)
UI_MODULES = ("textual", "rich", "typer", "click", "fastapi", "starlette", "uvicorn")

USE_THE_LIBRARY = """
import json, sys
import realorders, realorders.engine
from realorders import Client, LineItem, Status
from realorders.engine.backends.sqlite.backend import SqliteBackend

with Client(sys.argv[1]) as shop:
    shop.add_product("A", "a thing", 2.0, 3)
    order_id = shop.submit(customer_id="ada", items=[LineItem("A", 2)]).order_id
    shop.run(until_idle=True)
    status = shop.get(order_id).status
    ok = shop.check().ok
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {names!r})
print(json.dumps({{"status": status.value, "ok": ok, "loaded": loaded}}))
"""


def isort_style(names: list[str]) -> list[str]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then the rest."""

    def key(name: str) -> tuple[int, str]:
        group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
        return group, name

    return sorted(names, key=key)


def fresh(code: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_using_the_library_loads_no_ui_package(tmp_path: Path) -> None:
    out = fresh(USE_THE_LIBRARY.format(names=set(UI_MODULES)), str(tmp_path / "tiny.db"))
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "delivered"
    assert result["ok"] is True
    assert result["loaded"] == []


@pytest.mark.parametrize(
    "module",
    [
        "realorders",
        "realorders.engine",
        "realorders.domain",
        "realorders.engine.ports",
        "realorders.engine.backends.sqlite.backend",
        "realorders.check",
        "realorders.tokens",
        "realorders.webhooks",
        "realorders.deliveries",
    ],
)
def test_importing_loads_no_ui_package(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(UI_MODULES)!r}))"
    )
    assert fresh(code).strip() == "[]"


def test_top_level_all_is_the_public_api() -> None:
    names = realorders.__all__
    assert names == isort_style(names)
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(realorders, name), name
    public = {
        name
        for name, value in vars(realorders).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(names) - {"__version__"}
    assert isinstance(realorders.__version__, str)


def test_top_level_names_are_the_real_objects() -> None:
    from realorders.client import Client
    from realorders.domain import LineItem, Order, Status
    from realorders.engine import Delays, Engine

    for obj in (Client, LineItem, Order, Status, Delays, Engine):
        assert getattr(realorders, obj.__name__) is obj


@pytest.mark.parametrize(
    "module",
    [
        "realorders.domain",
        "realorders.engine",
        "realorders.engine.ports",
        "realorders.engine.actors",
        "realorders.engine.engine",
        "realorders.engine.backends.sqlite.backend",
        "realorders.errors",
        "realorders.check",
        "realorders.client",
        "realorders.tokens",
        "realorders.webhooks",
        "realorders.deliveries",
        "realorders.delivery",
    ],
)
def test_module_all_names_exist_and_are_sorted(module: str) -> None:
    mod = importlib.import_module(module)
    names = mod.__all__
    assert names == isort_style(names)
    assert len(names) == len(set(names))
    missing = [name for name in names if not hasattr(mod, name)]
    assert missing == []


def test_the_dashboard_reads_only_through_the_client() -> None:
    """No second query path: the TUI must run unchanged on any backend (issue 4)."""
    tui = Path(realorders.__file__).parent / "tui"
    sources = {path.name: path.read_text() for path in tui.glob("*.py")}
    assert {"feed.py", "app.py"} <= sources.keys()
    for name, text in sources.items():
        for needle in ("sqlite", "SELECT ", "INSERT ", "UPDATE ", "execute("):
            assert needle not in text, f"realorders/tui/{name} contains {needle!r}"
    loaded = json.loads(
        fresh("import json, sys, realorders.tui.feed; print(json.dumps(sorted(sys.modules)))")
    )
    assert "textual" not in loaded  # the feed is testable without a terminal


def test_the_cli_loads_the_http_stack_only_to_serve() -> None:
    """FastAPI, Starlette and uvicorn take ~0.5 s to import here: every command but ``serve``
    (and ``demo --serve``, through it) starts without them."""
    loaded = fresh(
        "import sys, realorders.cli, realorders.server; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fastapi', 'starlette', 'uvicorn'}))"
    )
    assert loaded.strip() == "[]"
