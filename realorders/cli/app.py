"""The Typer application, its global options and the error boundary.

Commands live in sibling modules and only translate between the shell and
:class:`realorders.Client`; no business logic here.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from realorders.client import BACKENDS, Client
from realorders.errors import RealordersError, UsageError

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 failed operation, rejected rows or failed check; "
    "2 usage error; 130 interrupted."
)

app = typer.Typer(
    name="realorders",
    help=(
        "Real-time order tracking with an embedded engine.\n\n"
        "Submit or import orders, run the engine, and follow every order through "
        "pending → reserved → packed → shipped → delivered from the shell.\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

out = Console(soft_wrap=True)  # data: stdout
err = Console(stderr=True, soft_wrap=True)  # messages, progress: stderr


@dataclass(slots=True)
class Settings:
    db: Path
    backend: str
    debug: bool

    def client(self, *, create: bool = False) -> Client:
        return Client(self.db, backend=self.backend, create=create)


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"realorders {version('realorders')}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Path = typer.Option(
        Path("realorders.db"),
        "--db",
        envvar="REALORDERS_DB",
        help="Database file.",
        show_default=True,
    ),
    backend: str = typer.Option(
        "sqlite",
        "--backend",
        envvar="REALORDERS_BACKEND",
        help=f"Storage backend: {', '.join(BACKENDS)} (kafka comes with distributed mode).",
    ),
    debug: bool = typer.Option(
        False, "--debug", envvar="REALORDERS_DEBUG", help="Show tracebacks for errors."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    ctx.obj = Settings(db=db, backend=backend, debug=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line on stderr and return the Exit to raise."""
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def run_cli(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure becomes one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or bool(_env_flag("REALORDERS_DEBUG"))
    try:
        result = app(args=args, prog_name="realorders", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted")
        return 130
    except typer.TyperException as exc:  # usage errors from typer's (vendored) click
        code = int(getattr(exc, "exit_code", 2))
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]  # the help text itself
            return code
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        err.print(f"error: {message}{where}", markup=False, highlight=False)
        return code
    except RealordersError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if debug:
            raise
        err.print(
            f"[bold red]error:[/] unexpected {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback)",
            markup=True,
            highlight=False,
        )
        return 1
    return result if isinstance(result, int) else 0


def _env_flag(name: str) -> bool:
    import os

    return os.environ.get(name, "").lower() in {"1", "true", "yes", "on"}
