"""Which failures are an outage of a service (wait and retry) and which are bugs (stop).

Kept apart from the backends so that the retry loop in
:meth:`realorders.Client.run` names the cause in one line without importing
Kafka or Redis clients for the embedded mode.
"""

from __future__ import annotations

from realorders.errors import ServiceUnavailableError

__all__ = ["outage_reason"]


def outage_reason(exc: BaseException) -> str | None:
    """One line for a lost broker or Redis; None when ``exc`` is not an outage."""
    if isinstance(exc, ServiceUnavailableError):
        return str(exc)
    try:
        import redis
        from kafka.errors import KafkaError
    except ImportError:  # pragma: no cover - both are dependencies
        return None
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"Redis unavailable ({type(exc).__name__}: {exc})"
    if isinstance(exc, redis.ResponseError) and "LOADING" in str(exc):
        return "Redis is loading its data after a restart"
    if isinstance(exc, KafkaError):
        return f"Kafka unavailable ({type(exc).__name__}: {exc})"
    return None
