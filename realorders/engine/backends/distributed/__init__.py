"""The distributed backend: Kafka topics for commands and events, Redis for stock and reads.

Importing this package loads kafka-python and redis-py; the embedded mode never does.
"""

from realorders.engine.backends.distributed.backend import KafkaBackend

__all__ = ["KafkaBackend"]
