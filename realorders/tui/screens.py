"""Modal screens: order detail, confirmation, restock quantity and help."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from realorders.client import OrderView
from realorders.domain import CANCELLABLE, TERMINAL, Status
from realorders.ui.style import clock, status_text

from .widgets import age

__all__ = ["ConfirmScreen", "HelpScreen", "OrderDetailScreen", "QuantityScreen", "render_order"]

KEYS = (
    ("/", "filter orders: a status, a customer or id prefix, or status:/customer:/id: terms"),
    ("esc", "clear the filter / close a dialog"),
    ("enter", "open the selected order (timeline, time in each state)"),
    ("c", "cancel the selected order (asks first)"),
    ("r", "restock the selected product (Inventory tab)"),
    ("s / S", "sort orders by the next column / reverse the sort"),
    ("1 2 3 4", "Orders, Stuck, Inventory and Webhooks tabs"),
    ("p", "pause or resume live updates"),
    ("t", "switch theme"),
    ("ctrl+p", "command palette"),
    ("?", "this help"),
    ("q", "quit"),
)


def render_order(view: OrderView, now: float) -> Text | Table:
    """Items, totals and the event timeline with the time spent in each state."""
    record = view.to_dict()
    head = Text.assemble(
        (record["id"], "bold"),
        "  ",
        status_text(view.status),
        f"  customer {record['customer_id']}",
    )
    if view.queued:
        head.append("  (queued: waiting for the engine)", style="yellow")
    if record.get("reason"):
        head.append(f"\nreason: {record['reason']}", style="italic")
    if record.get("notes"):
        head.append(f"\nnotes: {record['notes']}", style="dim")
    items = Table(title="items", title_justify="left", show_edge=False)
    for column in ("PRODUCT", "QTY", "PRICE", "LINE"):
        items.add_column(column, justify="left" if column == "PRODUCT" else "right")
    for item in record["items"]:
        price = item.get("price")
        line = None if price is None else price * item["quantity"]
        items.add_row(
            item["product_id"],
            str(item["quantity"]),
            "-" if price is None else f"{price:,.2f}",
            "-" if line is None else f"{line:,.2f}",
        )
    total = record.get("total")
    items.add_row("", "", "total", "-" if total is None else f"{total:,.2f}", style="bold")
    timeline = Table(title="timeline", title_justify="left", expand=True, show_edge=False)
    for column in ("#", "AT", "STATUS", "TIME IN STATE", "REASON"):
        timeline.add_column(column, no_wrap=column != "REASON")
    events = view.events
    for index, event in enumerate(events):
        until = events[index + 1].at if index + 1 < len(events) else None
        spent = age((until or now) - event.at)
        if until is None and event.status not in TERMINAL:
            spent += " so far"
        timeline.add_row(
            str(event.seq), clock(event.at), status_text(event.status), spent, event.reason or ""
        )
    grid = Table.grid(expand=True)
    grid.add_row(head)
    grid.add_row(timeline)  # first: where the order is and for how long matters most
    grid.add_row(items)
    return grid


class OrderDetailScreen(ModalScreen[str | None]):
    """One order, refreshed live while open; ``c`` asks to cancel it."""

    BINDINGS = [  # noqa: RUF012
        Binding("escape,q", "close", "Close"),
        Binding("c", "cancel_order", "Cancel order"),
        Binding("p", "app.toggle_pause", "Pause"),
    ]

    def __init__(self, order_id: str) -> None:
        super().__init__(id="detail")
        self.order_id = order_id
        self.view: OrderView | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-box"):
            yield Static(Text(f"loading {self.order_id}…"), id="detail-title")
            with VerticalScroll():
                yield Static(id="detail-body")
            yield Static(
                Text("c cancel order   p pause   esc close", style="dim"), id="detail-keys"
            )

    def show(self, view: OrderView, now: float) -> None:
        self.view = view
        self.query_one("#detail-title", Static).update(Text(f"order {self.order_id}", "bold"))
        self.query_one("#detail-body", Static).update(render_order(view, now))

    def show_error(self, message: str) -> None:
        self.query_one("#detail-body", Static).update(Text(message, style="red"))

    def action_close(self) -> None:
        self.dismiss(None)

    def action_cancel_order(self) -> None:
        if self.view is not None and self.view.status not in CANCELLABLE:
            self.notify(
                f"{self.order_id} is {self.view.status.value}: it can no longer be cancelled",
                severity="warning",
            )
            return
        self.dismiss("cancel")


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no before an action that cannot be undone (a cancellation)."""

    BINDINGS = [  # noqa: RUF012
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(id="confirm")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question, style="bold"))
            yield Static(Text("y yes   n no", style="dim"))

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class QuantityScreen(ModalScreen[int | None]):
    """Asks how many units; refuses anything but a positive whole number."""

    BINDINGS = [Binding("escape", "close", "Cancel")]  # noqa: RUF012

    def __init__(self, question: str) -> None:
        super().__init__(id="quantity")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question, style="bold"))
            yield Input(placeholder="units, e.g. 20", id="quantity-input", type="integer")
            yield Static(Text("enter confirm   esc cancel", style="dim"), id="quantity-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            units = int(event.value)
        except ValueError:
            units = 0
        if units < 1:
            self.query_one("#quantity-hint", Static).update(
                Text(f"{event.value!r} is not a positive whole number", style="red")
            )
            return
        self.dismiss(units)

    def action_close(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """The keys, and the stuck limits in force (they are per run: --stuck-after)."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]  # noqa: RUF012

    def __init__(self, stuck_after: dict[Status, float]) -> None:
        super().__init__(id="help")
        self.stuck_after = stuck_after

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        for key, meaning in KEYS:
            keys.add_row(Text(key, style="bold"), meaning)
        stuck = ", ".join(f"{s.value} > {age(t)}" for s, t in self.stuck_after.items())
        with Vertical(classes="dialog", id="help-box"):
            yield Static(Text("realorders dashboard — keys", style="bold"))
            yield Static(keys)
            yield Static(
                Text(
                    f"\nStuck means longer in one state than: {stuck} "
                    "(change with --stuck-after).\nAge is time in the current state.",
                    style="dim",
                )
            )

    def action_close(self) -> None:
        self.dismiss(None)
