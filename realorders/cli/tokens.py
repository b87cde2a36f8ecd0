"""``realorders tokens``: bearer tokens for the HTTP server (create, list, revoke)."""

from __future__ import annotations

from enum import StrEnum

import typer

from realorders.errors import InputError, UsageError
from realorders.tokens import Scope, check_name

from .app import app, err, out, settings
from .output import Format, render, write_json

tokens_app = typer.Typer(
    help=(
        "Bearer tokens for the HTTP server (realorders serve): read may GET and subscribe, "
        "write may also submit, import and cancel, admin may also change catalogue and stock."
    ),
    no_args_is_help=True,
)
app.add_typer(tokens_app, name="tokens")

_COLUMNS = [
    ("token_id", "TOKEN ID"),
    ("name", "NAME"),
    ("scope", "SCOPE"),
    ("created_at", "CREATED"),
    ("state", "STATE"),
]


class ListFormat(StrEnum):
    table = "table"
    json = "json"


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: str = typer.Argument(
        ..., metavar="NAME", help="1-64 letters, digits, '.', '_' or '-'; unique among active."
    ),
    scope: Scope = typer.Option(Scope.READ, "--scope", help="What the token may do."),
    as_json: bool = typer.Option(
        False, "--json", help="Print name, scope, token_id, token and created_at as JSON."
    ),
) -> None:
    """Create a token and print it once.

    The store keeps only a hash of its secret: the token cannot be shown again.
    """
    try:
        check_name(name)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    with settings(ctx).client() as client:
        record, token = client.create_token(name, scope)
    if as_json:
        write_json(
            {
                "name": record.name,
                "scope": record.scope.value,
                "token_id": record.token_id,
                "token": token,
                "created_at": record.to_dict()["created_at"],
            }
        )
    else:
        out.print(token, markup=False, highlight=False)
    err.print(
        f"token {record.name} ({record.scope.value}, id {record.token_id}) created; "
        "it will not be shown again: store it now",
        markup=False,
        highlight=False,
    )


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    fmt: ListFormat = typer.Option(ListFormat.table, "--format", help="table or json."),
) -> None:
    """List every token, revoked ones marked.

    Oldest first; never a secret or a digest.
    """
    with settings(ctx).client() as client:
        records = [token.to_dict() for token in client.tokens()]
    if fmt is ListFormat.json:
        write_json(records)
        return
    if not records:
        err.print("no tokens (create one: realorders tokens create NAME)", highlight=False)
        return
    rows = [
        (
            r["token_id"],
            r["name"],
            r["scope"],
            r["created_at"],
            "active" if r["revoked_at"] is None else f"revoked {r['revoked_at']}",
        )
        for r in records
    ]
    render(records, Format.table, _COLUMNS, table_rows=rows)


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context,
    name_or_id: str = typer.Argument(
        ..., metavar="NAME_OR_ID", help="The name of an active token, or a token id."
    ),
) -> None:
    """Revoke a token by name or id.

    A running server refuses it within a second; it stays listed, marked revoked.
    """
    with settings(ctx).client() as client:
        count = client.revoke_token(name_or_id)
    what = "token" if count == 1 else f"{count} tokens"
    err.print(f"revoked {what} {name_or_id}", markup=False, highlight=False)
