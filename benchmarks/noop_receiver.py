"""A webhook receiver that answers 204 to everything, for uvicorn: the benchmarks' peer.

    python -m uvicorn --app-dir benchmarks noop_receiver:app --port PORT

``RECEIVER_DELAY`` (seconds) makes it a slow receiver: each answer waits that
long (without holding the event loop), as a receiver doing real work would.
``RECEIVER_UNAVAILABLE=N`` makes its first N answers ``503`` with ``Retry-After:
RECEIVER_RETRY_AFTER`` (seconds, default 30): a receiver down for maintenance.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

DELAY = float(os.environ.get("RECEIVER_DELAY", "0"))
unavailable = [int(os.environ.get("RECEIVER_UNAVAILABLE", "0"))]  # 503s still to give
RETRY_AFTER = os.environ.get("RECEIVER_RETRY_AFTER", "30").encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if DELAY:
        await asyncio.sleep(DELAY)
    if unavailable[0] > 0:
        unavailable[0] -= 1
        headers = [(b"retry-after", RETRY_AFTER)]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
