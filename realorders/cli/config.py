"""``realorders config show``: every setting, its value and where it came from."""

from __future__ import annotations

import typer

from .app import app, err, out, settings
from .output import write_json

config_app = typer.Typer(
    help=(
        "Settings: flag > REALORDERS_* environment variable > config file "
        "(--config, REALORDERS_CONFIG or ./realorders.toml) > default."
    ),
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


@config_app.command("show")
def show(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print every setting, its value (secrets masked) and its source (flag, env, file, default)."""
    cfg = settings(ctx).config
    rows = cfg.report()
    config_file = None if cfg.config_file is None else str(cfg.config_file)
    if as_json:
        write_json(
            {
                "config_file": config_file,
                "settings": {r.name: {"value": r.value, "source": r.source} for r in rows},
            }
        )
        return
    # Plain aligned columns, not a table: a value is never cut or folded, and grep works.
    cells = [(r.name, "-" if r.value is None else str(r.value), r.source) for r in rows]
    name_width = max(len(name) for name, _, _ in cells)
    value_width = max(len(value) for _, value, _ in cells)
    for name, value, source in cells:
        out.print(
            f"{name:<{name_width}}  {value:<{value_width}}  {source}", highlight=False, markup=False
        )
    err.print(f"config file: {config_file or 'none'}", highlight=False, markup=False)
