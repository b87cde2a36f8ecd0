"""The order-processing engine: actors, the engine loop, ports and backends.

Importing this package loads neither Typer, Rich nor Textual.
"""

from realorders.engine.actors import Delays
from realorders.engine.engine import Engine, EngineStats

__all__ = ["Delays", "Engine", "EngineStats"]
