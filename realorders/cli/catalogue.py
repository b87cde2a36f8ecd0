"""Set-up, catalogue and stock commands: init, products …, inventory …"""

from __future__ import annotations

from pathlib import Path

import typer

from realorders.catalogue_file import read_inventory
from realorders.client import Client
from realorders.errors import UsageError

from .app import app, err, fail, settings
from .output import Format, render

products_app = typer.Typer(
    help="The product catalogue: product_id, name, price.", no_args_is_help=True
)
inventory_app = typer.Typer(
    help="Stock per product: on_hand, reserved, available.", no_args_is_help=True
)
app.add_typer(products_app, name="products")
app.add_typer(inventory_app, name="inventory")

PRODUCT_COLUMNS = [("product_id", "PRODUCT"), ("name", "NAME"), ("price", "PRICE")]
LEVEL_COLUMNS = [
    ("product_id", "PRODUCT"),
    ("name", "NAME"),
    ("on_hand", "ON HAND"),
    ("reserved", "RESERVED"),
    ("available", "AVAILABLE"),
    ("backordered", "BACKORDERED"),
]


@app.command()
def init(
    ctx: typer.Context,
    inventory: str | None = typer.Option(
        None,
        "--inventory",
        help="Load catalogue and stock from CSV or JSON (product_id,name,price,stock).",
    ),
) -> None:
    """Create the database (safe to repeat) and optionally load the catalogue and stock."""
    cfg = settings(ctx)
    if inventory is not None and not Path(inventory).is_file():
        raise UsageError(f"{inventory}: no such file")
    rows = None if inventory is None else read_inventory(inventory)  # bad file: no database
    with cfg.client(create=True) as client:
        for line in client.init_store():
            err.print(line, highlight=False)
        if rows is not None:
            added, updated = client.load_inventory(rows)
            err.print(
                f"loaded {inventory}: {added} products added, {updated} updated", highlight=False
            )


@products_app.command("list")
def products_list(
    ctx: typer.Context,
    fmt: Format = typer.Option(Format.table, "--format", help="table, json, ndjson or csv."),
) -> None:
    """List the catalogue."""
    with settings(ctx).client() as client:
        render(client.products(), fmt, PRODUCT_COLUMNS)


@products_app.command("show")
def products_show(
    ctx: typer.Context,
    product_id: str = typer.Argument(..., metavar="PRODUCT_ID", help="Product id."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, json, ndjson or csv."),
) -> None:
    """Show one product with its stock."""
    with settings(ctx).client() as client:
        product = client.product(product_id)
        level = client.level(product_id)
        record = {**product, **(level.to_dict() if level else {})}
        if fmt is Format.json:
            from .output import write_json

            write_json(record)
        else:
            render([record], fmt, PRODUCT_COLUMNS + LEVEL_COLUMNS[2:])


@products_app.command("add")
def products_add(
    ctx: typer.Context,
    product_id: str = typer.Argument(..., metavar="PRODUCT_ID", help="Product id."),
    name: str = typer.Option(..., "--name", help="Display name."),
    price: float = typer.Option(..., "--price", help="Unit price."),
    stock: int = typer.Option(0, "--stock", min=0, help="Initial on-hand stock."),
) -> None:
    """Add a product (with optional initial stock)."""
    with settings(ctx).client() as client:
        client.add_product(product_id, name, price, stock)
        err.print(f"added {product_id}", highlight=False)


@products_app.command("update")
def products_update(
    ctx: typer.Context,
    product_id: str = typer.Argument(..., metavar="PRODUCT_ID", help="Product id."),
    name: str | None = typer.Option(None, "--name", help="New display name."),
    price: float | None = typer.Option(None, "--price", help="New unit price."),
) -> None:
    """Change a product's name or price (orders already accepted keep their price)."""
    if name is None and price is None:
        raise UsageError("nothing to update: pass --name and/or --price")
    with settings(ctx).client() as client:
        client.update_product(product_id, name=name, price=price)
        err.print(f"updated {product_id}", highlight=False)


@products_app.command("remove")
def products_remove(
    ctx: typer.Context,
    product_id: str = typer.Argument(..., metavar="PRODUCT_ID", help="Product id."),
) -> None:
    """Remove a product (refused while open orders include it)."""
    with settings(ctx).client() as client:
        client.remove_product(product_id)
        err.print(f"removed {product_id}", highlight=False)


@inventory_app.command("list")
def inventory_list(
    ctx: typer.Context,
    fmt: Format = typer.Option(Format.table, "--format", help="table, json, ndjson or csv."),
) -> None:
    """Stock per product (available = on_hand - reserved), with backordered order counts."""
    with settings(ctx).client() as client:
        render([level.to_dict() for level in client.levels()], fmt, LEVEL_COLUMNS)


def _apply(client: Client, position: int, what: str, timeout: float) -> bool:
    """Wait for the engine to apply a queued inventory command; False if none runs."""
    if not client.engine_running():
        err.print(
            f"{what} queued; it applies when the engine runs (`realorders run`)", highlight=False
        )
        return False
    if not client.wait_processed(position, timeout=timeout):
        raise fail(f"{what} queued, but the engine has not applied it within {timeout}s")
    return True


@inventory_app.command("set")
def inventory_set(
    ctx: typer.Context,
    product_id: str = typer.Argument(..., metavar="PRODUCT_ID", help="Product id."),
    quantity: int = typer.Argument(..., min=0, metavar="QTY", help="New on-hand quantity."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for the engine."),
) -> None:
    """Set on-hand stock (not below what is reserved); wakes backorders if it rises."""
    with settings(ctx).client() as client:
        position = client.set_stock(product_id, quantity)
        if _apply(client, position, f"stock of {product_id} set to {quantity}", timeout):
            # the engine refuses a level below what orders reserved since the request
            level = client.level(product_id)
            if level is not None and level.on_hand != quantity:
                raise fail(
                    f"the engine refused: {level.reserved} units of {product_id} are "
                    f"reserved by open orders; on hand stays {level.on_hand}"
                )
            err.print(f"stock of {product_id} set to {quantity}: applied", highlight=False)


@inventory_app.command("restock")
def inventory_restock(
    ctx: typer.Context,
    pairs: list[str] = typer.Argument(
        ...,
        metavar="PRODUCT_ID QTY",
        help="Product id and units arriving; repeat the pair for a delivery of several.",
    ),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for the engine."),
) -> None:
    """Add stock; backordered orders waiting for it are woken in arrival order."""
    arrivals = _arrivals(pairs)
    what = "restock of " + ", ".join(f"{product} by {quantity}" for product, quantity in arrivals)
    with settings(ctx).client() as client:
        positions = client.restock_many(arrivals)
        if _apply(client, positions[-1], what, timeout):
            err.print(f"{what}: applied", highlight=False)


def _arrivals(pairs: list[str]) -> list[tuple[str, int]]:
    """``SKU 3 OTHER 5`` as (product, quantity) pairs; a usage error names the bad one."""
    if len(pairs) % 2:
        raise typer.BadParameter(
            f"{pairs[-1]!r} has no quantity: give PRODUCT_ID QTY pairs", param_hint="QTY"
        )
    arrivals = []
    for product_id, raw in zip(pairs[::2], pairs[1::2], strict=True):
        shown = raw if len(raw) <= 20 else raw[:20] + "…"
        if not (raw.isascii() and raw.isdigit()) or int(raw[:20]) < 1:  # not "²", "1e3", "0"
            raise typer.BadParameter(
                f"{shown!r} for {product_id} is not a whole number of units from 1",
                param_hint="QTY",
            )
        if len(raw) > 18:  # past any stock level (and int()'s digit limit, ~4,300)
            raise typer.BadParameter(
                f"{shown!r} for {product_id} is more units than any stock level",
                param_hint="QTY",
            )
        arrivals.append((product_id, int(raw)))
    return arrivals
