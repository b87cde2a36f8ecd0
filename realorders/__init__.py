"""realorders: real-time order tracking with an embedded actor engine.

The package is usable without its CLI: importing it loads neither Typer,
Rich nor Textual.

>>> import realorders
>>> with realorders.Client("shop.db") as shop:          # doctest: +SKIP
...     shop.init(inventory="examples/inventory.csv")
...     shop.submit(customer_id="ada", items=[realorders.LineItem("KB-01", 1)])
...     shop.run(until_idle=True)
"""

from realorders.check import CheckReport
from realorders.client import Client, OrderView
from realorders.domain import Event, LineItem, Order, OrderState, Status
from realorders.engine import Delays, Engine, EngineStats
from realorders.engine.ports import IntakeOutcome, IntakeResult, StockLevel
from realorders.errors import (
    ConflictError,
    EngineBusyError,
    InputError,
    NotFoundError,
    RealordersError,
    RefusedError,
    UsageError,
)
from realorders.importer import ImportReport

__version__ = "0.1.0"

__all__ = [
    "CheckReport",
    "Client",
    "ConflictError",
    "Delays",
    "Engine",
    "EngineBusyError",
    "EngineStats",
    "Event",
    "ImportReport",
    "InputError",
    "IntakeOutcome",
    "IntakeResult",
    "LineItem",
    "NotFoundError",
    "Order",
    "OrderState",
    "OrderView",
    "RealordersError",
    "RefusedError",
    "Status",
    "StockLevel",
    "UsageError",
    "__version__",
]
