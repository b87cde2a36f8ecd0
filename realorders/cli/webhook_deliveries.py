"""``realorders webhooks deliveries|replay``: what each endpoint was sent, and sending it again.

Apart from ``webhooks.py`` (the registry) because this is the operator's view
of the outbox: a table wide with one delivery per line, and the times people
type (``--since 2h``, ``--since 2026-12-03T14:00Z``) turned into epoch seconds.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

import typer
from rich.table import Table
from rich.text import Text

from realorders._webhooks import MAX_HISTORY
from realorders.deliveries import Delivery, DeliveryStatus
from realorders.errors import UsageError

from .app import err, out, settings
from .output import ago, write_json
from .webhooks import ListFormat, webhooks_app

_CUT = 40  # characters of an error or a response shown in the table (json: all of it)
_STATUS_STYLE = {
    DeliveryStatus.PENDING: "yellow",
    DeliveryStatus.DELIVERED: "green",
    DeliveryStatus.FAILED: "bold red",
}
_SINCE_HELP = (
    "Only deliveries enqueued since TIME: ISO 8601 (2026-12-03T14:00:00Z; without an offset, "
    "local time) or how long ago (30m, 2h)."
)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    ctx: typer.Context,
    endpoint_id: str | None = typer.Argument(
        None, metavar="ENDPOINT_ID", help="Only this endpoint's (default: every endpoint's)."
    ),
    failed: bool = typer.Option(False, "--failed", help="Only those given up on."),
    order_id: str | None = typer.Option(
        None, "--order", metavar="ORDER_ID", help="Only this order's."
    ),
    limit: int = typer.Option(
        100, "--limit", "-n", metavar="N", min=1, max=MAX_HISTORY, help="At most this many."
    ),
    fmt: ListFormat = typer.Option(ListFormat.table, "--format", help="table or json."),
) -> None:
    """Show deliveries, the latest change first.

    Per delivery: when it last changed, endpoint, order, seq, webhook-id,
    status (pending, delivered, failed), attempts, the last HTTP status or
    error, latency, when a pending one is tried next, and the start of the
    receiver's answer (cut in the table; whole, 200 characters at most, in json).
    """
    with settings(ctx).client() as client:
        found = client.webhook_deliveries(
            endpoint_id, order_id=order_id, failed_only=failed, limit=limit
        )
    if fmt is ListFormat.json:
        write_json([d.to_dict() for d in found])
        return
    if not found:
        asked = " matching" if endpoint_id or order_id or failed else ""
        err.print(f"no{asked} deliveries", markup=False, highlight=False)
        return
    out.print(_table(found, time.time(), endpoint_column=endpoint_id is None))


@webhooks_app.command("replay")
def webhooks_replay(
    ctx: typer.Context,
    endpoint_id: str = typer.Argument(..., metavar="ENDPOINT_ID", help="The endpoint's id."),
    since: str | None = typer.Option(None, "--since", metavar="TIME", help=_SINCE_HELP),
    order_id: str | None = typer.Option(
        None, "--order", metavar="ORDER_ID", help="Only this order's."
    ),
    failed: bool = typer.Option(False, "--failed", help="Only those given up on."),
) -> None:
    """Send an endpoint's settled deliveries again.

    Delivered and failed ones become pending, due now, with their attempts
    reset; `notify` sends them in order per order, with the same webhook-id.
    The filters combine; with none, every settled delivery of the endpoint
    is replayed. A disabled endpoint's go out once it is enabled. Prints how
    many were requeued.
    """
    at = None if since is None else parse_since(since, time.time())
    with settings(ctx).client() as client:
        count = client.replay_webhook(endpoint_id, since=at, order_id=order_id, failed_only=failed)
        endpoint = client.webhook(endpoint_id)
    noun = "delivery" if count == 1 else "deliveries"
    later = "; the endpoint is disabled: they go out once it is enabled"
    later = later if count and not endpoint.enabled else ""
    out.print(f"{count} {noun} of {endpoint_id} requeued{later}", markup=False, highlight=False)


def parse_since(text: str, now: float) -> float:
    """Epoch seconds of an ISO 8601 time (local if it has no offset) or of a duration ago.

    A bare number is refused: seconds ago, or epoch seconds? Either guess replays
    something else than what was meant.
    """
    value = text.strip()
    try:
        at = datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError, OSError):  # not ISO 8601, or out of the clock's range
        at = None
    if at is None:
        from realorders.tui.frame import parse_duration  # the dashboard's: one syntax for both

        try:
            float(value)
        except ValueError:
            pass
        else:
            raise UsageError(f"--since: {text!r} needs a unit (like 90s, 30m, 2h) or a date")
        try:
            at = now - parse_duration(value)
        except ValueError:
            raise UsageError(
                f"--since: {text!r} is neither an ISO 8601 time (like 2026-12-03T14:00:00Z) "
                "nor a duration (like 30m, 2h)"
            ) from None
    if not math.isfinite(at):
        raise UsageError(f"--since: {text!r} is too long ago")
    if at > now:
        raise UsageError(f"--since: {text!r} is in the future")
    return at


# -- the table ---------------------------------------------------------------------------


#: header, the least width, whether its cells may wrap (ids and texts, on a narrow terminal)
_COLUMNS: tuple[tuple[str, int, bool], ...] = (
    ("CHANGED", 9, False),
    ("ENDPOINT", 15, True),
    ("ORDER", 5, True),
    ("SEQ", 3, False),
    ("WEBHOOK ID", 12, True),
    ("STATUS", 9, False),
    ("ATTEMPTS", 8, False),
    ("RESULT", 8, True),
    ("LATENCY", 8, False),
    ("NEXT TRY", 9, False),
    ("RESPONSE", 8, True),
)
_RIGHT = frozenset({"SEQ", "ATTEMPTS", "LATENCY"})


def _table(deliveries: list[Delivery], now: float, *, endpoint_column: bool) -> Table:
    """One delivery a line on a wide terminal; on a narrow one the ids and texts wrap
    (never cut: an id is for copying), the short columns keep their width. The
    endpoint's column only when several endpoints are shown."""
    table = Table(show_edge=False, header_style="bold")
    for header, least, wraps in _COLUMNS:
        if header == "ENDPOINT" and not endpoint_column:
            continue
        table.add_column(
            header,
            justify="right" if header in _RIGHT else "left",
            min_width=least,
            no_wrap=not wraps,
            overflow="fold",
        )
    for d in deliveries:
        endpoint = [d.endpoint_id] if endpoint_column else []
        table.add_row(
            ago(max(0.0, now - d.updated_at)) + " ago",
            *endpoint,
            Text(_one_line(d.order_id)),
            str(d.seq),
            d.msg_id,
            Text(d.status.value, style=_STATUS_STYLE[d.status]),
            str(d.attempts),
            Text(_result(d)),
            "-" if d.last_latency_ms is None else f"{d.last_latency_ms:,.0f} ms",
            _next_try(d, now),
            Text(_cut(d.response_excerpt)),
        )
    return table


def _result(d: Delivery) -> str:
    """The last HTTP status, the error, or both (a 503 with its reason)."""
    parts = [str(d.last_code)] if d.last_code is not None else []
    if d.last_error:
        parts.append(d.last_error)
    return _cut(": ".join(parts)) if parts else "-"


def _next_try(d: Delivery, now: float) -> str:
    if d.status is not DeliveryStatus.PENDING or d.next_at is None:
        return "-"
    return "due now" if d.next_at <= now else "in " + _span(d.next_at - now)


def _span(seconds: float) -> str:
    """``4m 10s``, ``2h``, ``1d 3h``: two units at most, enough to know when to look again."""
    left = max(1, math.ceil(seconds))
    parts: list[str] = []
    for name, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count or parts:
            parts.append(f"{count}{name}")
    shown = parts[:2]
    return " ".join(shown if shown[-1][0] != "0" else shown[:1])


def _one_line(text: str) -> str:
    """Printable characters only: an answer's newlines or escape codes stay off the terminal."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _cut(text: str | None) -> str:
    if not text:
        return "-" if text is None else "(empty)"
    line = _one_line(text)
    return line if len(line) <= _CUT else line[: _CUT - 1] + "…"
