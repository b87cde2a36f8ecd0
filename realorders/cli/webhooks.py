"""``realorders webhooks``: the registry of webhook endpoints and their signing secrets."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

import typer
from rich.text import Text

from realorders.errors import InputError, UsageError
from realorders.views import iso
from realorders.webhooks import (
    DEFAULT_GRACE,
    WebhookEndpoint,
    check_customer,
    check_grace,
    check_text_field,
    check_url,
    events_text,
    parse_events,
)

from .app import app, err, out, settings
from .output import Format, render, write_json

T = TypeVar("T")

webhooks_app = typer.Typer(
    help=(
        "The registry of webhook endpoints: a URL, the statuses and customer it is for, and "
        "its own signing secret (Standard Webhooks format, whsec_...), kept in the store."
    ),
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")

_COLUMNS = [
    ("id", "ENDPOINT ID"),  # "id": the table never cuts it
    ("url", "URL"),
    ("events", "EVENTS"),
    ("customer_id", "CUSTOMER"),
    ("state", "STATE"),
    ("created_at", "CREATED"),
    ("description", "DESCRIPTION"),
]
_SHOWN_ONCE = "will not be shown again: store it now"


class ListFormat(StrEnum):
    table = "table"
    json = "json"


def _usage(check: Callable[..., T], *args: Any) -> T:
    """A check of a command-line value: its InputError is a usage error (exit 2)."""
    try:
        return check(*args)
    except InputError as exc:
        raise UsageError(str(exc)) from None


def _blank_is_none(value: str) -> str | None:
    return None if value == "" else value


def _state(endpoint: WebhookEndpoint) -> str:
    return "enabled" if endpoint.enabled else f"disabled: {endpoint.disabled_reason}"


def _say(message: str) -> None:
    err.print(message, markup=False, highlight=False)


_ENDPOINT_ID = typer.Argument(..., metavar="ENDPOINT_ID", help="The endpoint's id (we_...).")
_EVENTS_HELP = "'all', or comma-separated statuses (e.g. shipped,delivered)."


@webhooks_app.command("add")
def webhooks_add(
    ctx: typer.Context,
    url: str = typer.Argument(..., metavar="URL", help="http:// or https:// URL, no user:pass@."),
    events: str = typer.Option("all", "--events", metavar="EVENTS", help=_EVENTS_HELP),
    customer: str | None = typer.Option(
        None, "--customer", metavar="CUSTOMER_ID", help="Only this customer's orders."
    ),
    description: str | None = typer.Option(
        None, "--description", metavar="TEXT", help="A note for operators (one line)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the endpoint and its secret as one JSON object."
    ),
) -> None:
    """Register an endpoint; print its secret once.

    The endpoint starts enabled. Only the secret goes to stdout (with --json: the
    endpoint and the secret); the endpoint id is in the line on stderr.
    """
    _usage(check_url, url)
    parsed = _usage(parse_events, events)
    _usage(check_customer, customer)
    _usage(check_text_field, description, "description")
    with settings(ctx).client() as client:
        endpoint, secret = client.add_webhook(url, parsed, customer, description)
    if as_json:
        write_json({**endpoint.to_dict(), "secret": secret})
    else:
        out.print(secret, markup=False, highlight=False)
    _say(
        f"webhook endpoint {endpoint.endpoint_id} added (events: {events_text(endpoint.events)}, "
        f"customer: {endpoint.customer_id or 'any'}); its secret {_SHOWN_ONCE}"
    )


@webhooks_app.command("list")
def webhooks_list(
    ctx: typer.Context,
    fmt: ListFormat = typer.Option(ListFormat.table, "--format", help="table or json."),
) -> None:
    """List every endpoint (never a secret).

    Oldest first; disabled ones marked with their reason.
    """
    with settings(ctx).client() as client:
        endpoints = client.webhooks()
    if fmt is ListFormat.json:
        write_json([endpoint.to_dict() for endpoint in endpoints])
        return
    if not endpoints:
        _say("no webhook endpoints (add one: realorders webhooks add URL)")
        return
    rows = [
        (
            e.endpoint_id,
            Text(e.url),
            events_text(e.events),
            Text(e.customer_id or "any"),
            Text(_state(e)),
            iso(e.created_at),
            Text(e.description or "-"),
        )
        for e in endpoints
    ]
    render([], Format.table, _COLUMNS, table_rows=rows)


@webhooks_app.command("show")
def webhooks_show(
    ctx: typer.Context,
    endpoint_id: str = _ENDPOINT_ID,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one endpoint (never its secret)."""
    with settings(ctx).client() as client:
        endpoint = client.webhook(endpoint_id)
    record = endpoint.to_dict()
    if as_json:
        write_json(record)
        return
    record["events"] = events_text(endpoint.events)
    record["customer_id"] = endpoint.customer_id or "any"
    width = max(len(key) for key in record)
    for key, value in record.items():
        shown = "-" if value is None else str(value).lower() if isinstance(value, bool) else value
        out.print(f"{key:<{width}}  {shown}", markup=False, highlight=False)


@webhooks_app.command("update")
def webhooks_update(
    ctx: typer.Context,
    endpoint_id: str = _ENDPOINT_ID,
    url: str | None = typer.Option(None, "--url", metavar="URL", help="New URL."),
    events: str | None = typer.Option(None, "--events", metavar="EVENTS", help=_EVENTS_HELP),
    customer: str | None = typer.Option(
        None, "--customer", metavar="CUSTOMER_ID", help="Only this customer's orders; '' for any."
    ),
    description: str | None = typer.Option(
        None, "--description", metavar="TEXT", help="New note; '' removes it."
    ),
) -> None:
    """Change URL, events, customer or description.

    Only the options given change; the secret stays.
    """
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = _usage(check_url, url)
    if events is not None:
        changes["events"] = _usage(parse_events, events)
    if customer is not None:
        changes["customer_id"] = _usage(check_customer, _blank_is_none(customer))
    if description is not None:
        text = _blank_is_none(description)
        changes["description"] = _usage(check_text_field, text, "description")
    if not changes:
        raise UsageError("nothing to update: pass --url, --events, --customer or --description")
    with settings(ctx).client() as client:
        client.update_webhook(endpoint_id, **changes)
    _say(f"updated {endpoint_id}")


@webhooks_app.command("disable")
def webhooks_disable(
    ctx: typer.Context,
    endpoint_id: str = _ENDPOINT_ID,
    reason: str = typer.Option(
        "disabled by an operator", "--reason", metavar="TEXT", help="Why (shown in list and show)."
    ),
) -> None:
    """Mark an endpoint disabled, with a reason.

    It stays listed, with its secret, until it is enabled or removed.
    """
    _usage(check_text_field, reason, "reason")
    with settings(ctx).client() as client:
        client.disable_webhook(endpoint_id, reason)
    _say(f"disabled {endpoint_id}: {reason}")


@webhooks_app.command("enable")
def webhooks_enable(ctx: typer.Context, endpoint_id: str = _ENDPOINT_ID) -> None:
    """Mark a disabled endpoint enabled again.

    Its disabled reason is cleared.
    """
    with settings(ctx).client() as client:
        client.enable_webhook(endpoint_id)
    _say(f"enabled {endpoint_id}")


@webhooks_app.command("remove")
def webhooks_remove(ctx: typer.Context, endpoint_id: str = _ENDPOINT_ID) -> None:
    """Delete an endpoint and its secrets."""
    with settings(ctx).client() as client:
        client.remove_webhook(endpoint_id)
    _say(f"removed {endpoint_id}")


@webhooks_app.command("rotate-secret")
def webhooks_rotate_secret(
    ctx: typer.Context,
    endpoint_id: str = _ENDPOINT_ID,
    grace: float = typer.Option(
        DEFAULT_GRACE,
        "--grace",
        metavar="SECONDS",
        help="How long the old secret stays valid too (0: it stops now).",
    ),
) -> None:
    """Give an endpoint a new secret; print it once.

    Only the new secret goes to stdout. The old one stays valid for --grace
    seconds (one old secret at most: rotating again ends the one before).
    """
    _usage(check_grace, grace)
    with settings(ctx).client() as client:
        secret = client.rotate_webhook_secret(endpoint_id, grace)
    out.print(secret, markup=False, highlight=False)
    old = f"the old one stays valid {grace:g} s more" if grace > 0 else "the old one is invalid"
    _say(f"new secret for {endpoint_id} ({old}); it {_SHOWN_ONCE}")
