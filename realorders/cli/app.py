"""The Typer application, its global options and the error boundary.

Commands live in sibling modules and only translate between the shell and
:class:`realorders.Client`; no business logic here.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer
import typer.core
from rich.console import Console
from typer import _click  # typer vendors click: its help types are these, not click's

from realorders.client import Client
from realorders.config import SETTINGS, Config, load_config
from realorders.errors import RealordersError

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 failed operation, rejected rows or failed check; "
    "2 usage error; 130 interrupted."
)


class CommandsFirst(typer.core.TyperGroup):
    """Plain help that lists the commands first, then the options by ``rich_help_panel``.

    The distributed mode's fourteen options sit in a panel of their own, after
    the common ones, so the first screen of ``realorders --help`` shows commands.
    """

    def format_options(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self.format_commands(ctx, formatter)
        sections: dict[str, list[tuple[str, str]]] = {"Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            panel = param.rich_help_panel if isinstance(param, typer.core.TyperOption) else None
            sections.setdefault(panel or "Options", []).append(record)
        for title, records in sections.items():
            with formatter.section(title):
                formatter.write_dl(records)


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
    rich_markup_mode=None,  # plain help: the [env: …] notes are text, not Rich markup
    cls=CommandsFirst,
    context_settings={"help_option_names": ["-h", "--help"]},
)

out = Console(soft_wrap=True)  # data: stdout
err = Console(stderr=True, soft_wrap=True)  # messages, progress: stderr


@dataclass(slots=True)
class Settings:
    """The global options. The Config they select is loaded on first use, so that a
    bad setting fails the command that needs it and ``COMMAND --help`` still works."""

    flags: dict[str, object | None]
    config_path: Path | None
    debug: bool
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.flags, os.environ, self.config_path)
        return self._config

    @property
    def db(self) -> Path:
        return self.config.db

    @property
    def backend(self) -> str:
        return self.config.backend

    @property
    def store_config(self) -> Config:
        """The config of a command that opens the store: no flag of the other backend."""
        self.config.refuse_misplaced_flags()
        return self.config

    def client(self, *, create: bool = False) -> Client:
        return Client(config=self.store_config, create=create)


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"realorders {version('realorders')}")
        raise typer.Exit()


_DEFAULTS = Config()
#: --help lists the commands first; the distributed mode's many options follow in a panel
DISTRIBUTED_PANEL = "Distributed mode (--backend kafka)"


def _help(name: str, text: str | None = None) -> str:
    """An option's help: what it sets, its default, and the variable and file key that also do."""
    setting = next(s for s in SETTINGS if s.name == name)
    default = _DEFAULTS.shown(name)
    shown = "unset" if default is None else default
    return f"{text or setting.help} [env: {setting.env}; file: {name}; default: {shown}]"


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        metavar="PATH",
        help="Config file (TOML). [env: REALORDERS_CONFIG; default: ./realorders.toml if present]",
    ),
    db: Path | None = typer.Option(
        None, "--db", metavar="PATH", help=_help("db", "Database file.")
    ),
    backend: str | None = typer.Option(
        None, "--backend", metavar="[sqlite|kafka]", help=_help("backend")
    ),
    kafka_bootstrap: str | None = typer.Option(
        None,
        "--kafka-bootstrap",
        metavar="HOST:PORT[,…]",
        help=_help("kafka_bootstrap"),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    kafka_security_protocol: str | None = typer.Option(
        None,
        "--kafka-security-protocol",
        metavar="[PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL]",
        help=_help("kafka_security_protocol"),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    kafka_sasl_mechanism: str | None = typer.Option(
        None,
        "--kafka-sasl-mechanism",
        metavar="[PLAIN|SCRAM-SHA-256|SCRAM-SHA-512]",
        help=_help("kafka_sasl_mechanism"),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    kafka_username: str | None = typer.Option(
        None,
        "--kafka-username",
        metavar="USER",
        help=_help(
            "kafka_username",
            "Kafka SASL user name (the password: REALORDERS_KAFKA_PASSWORD or the file).",
        ),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    kafka_ca_file: Path | None = typer.Option(
        None,
        "--kafka-ca-file",
        metavar="PEM",
        help=_help("kafka_ca_file"),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    kafka_topic_prefix: str | None = typer.Option(
        None,
        "--kafka-topic-prefix",
        metavar="PREFIX",
        help=_help("kafka_topic_prefix"),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    kafka_partitions: int | None = typer.Option(
        None,
        "--kafka-partitions",
        metavar="N",
        help=_help("kafka_partitions"),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    kafka_replication_factor: int | None = typer.Option(
        None,
        "--kafka-replication-factor",
        metavar="N",
        help=_help("kafka_replication_factor"),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    kafka_group: str | None = typer.Option(
        None,
        "--kafka-group",
        metavar="GROUP",
        help=_help("kafka_group"),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    redis_url: str | None = typer.Option(
        None,
        "--redis-url",
        metavar="URL",
        help=_help(
            "redis_url",
            "Redis URL: redis://HOST:PORT/DB, rediss:// (TLS) or unix://PATH; no password "
            "here (REALORDERS_REDIS_PASSWORD or the file).",
        ),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    redis_ca_file: Path | None = typer.Option(
        None,
        "--redis-ca-file",
        metavar="PEM",
        help=_help("redis_ca_file"),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    redis_prefix: str | None = typer.Option(
        None,
        "--redis-prefix",
        metavar="PREFIX",
        help=_help("redis_prefix"),
        rich_help_panel=DISTRIBUTED_PANEL,
    ),
    debug: bool = typer.Option(
        False, "--debug", envvar="REALORDERS_DEBUG", help="Show tracebacks for errors."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    flags: dict[str, object | None] = {
        "db": db,
        "backend": backend,
        "kafka_bootstrap": kafka_bootstrap,
        "kafka_security_protocol": kafka_security_protocol,
        "kafka_sasl_mechanism": kafka_sasl_mechanism,
        "kafka_username": kafka_username,
        "kafka_ca_file": kafka_ca_file,
        "kafka_topic_prefix": kafka_topic_prefix,
        "kafka_partitions": kafka_partitions,
        "kafka_replication_factor": kafka_replication_factor,
        "kafka_group": kafka_group,
        "redis_url": redis_url,
        "redis_ca_file": redis_ca_file,
        "redis_prefix": redis_prefix,
    }
    ctx.obj = Settings(flags=flags, config_path=config, debug=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # kafka-python narrates every connection, and logs each retry of a lost broker as an
    # error; realorders says itself, in one line, when a service goes away and comes back
    logging.getLogger("kafka").setLevel(logging.DEBUG if debug else logging.CRITICAL)


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
        # not the seam: the vendored click's exception classes carry these untyped
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
    return os.environ.get(name, "").lower() in {"1", "true", "yes", "on"}
