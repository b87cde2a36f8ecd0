"""Webhook delivery figures in ``/metrics`` and ``/v1/stats``, on both backends.

The figures are read from the store at each scrape, through the Client, so
the backlog and failures left in the outbox (written here as the deliverer
would, without running it) show at once, and a removed endpoint's series go.
Labels carry the endpoint id only: never its URL, which may hold a credential.
"""

from __future__ import annotations

import re
import time

import pytest

from realorders import Client
from realorders.deliveries import DeliveryStatus
from realorders.delivery import new_delivery
from realorders.tokens import Scope

from .conftest import BACKENDS, Api

GONE = "410 Gone from the receiver"


def gauges(text: str, name: str) -> dict[str, float]:
    """``name``'s samples in a Prometheus text page: label value -> value."""
    found = re.findall(rf'^{name}\{{\w+="([^"]*)"\}} (\S+)$', text, re.M)
    return {label: float(value) for label, value in found}


def leave_backlog(client: Client) -> tuple[str, str, str]:
    """crm owes 3 deliveries; gone owes 1, gave 1 up and was disabled; the secret of crm."""
    crm, secret = client.add_webhook("https://crm.example/in?key=k1")
    gone = client.add_webhook("http://127.0.0.1:9/in")[0].endpoint_id
    now = time.time()
    owed = [new_delivery(crm.endpoint_id, f"M-{n}", 1, n, now) for n in (1, 2, 3)]
    owed += [new_delivery(gone, "M-9", seq, 10 + seq, now) for seq in (1, 2)]
    assert client.backend.deliveries.enqueue(owed, 20) == 5
    assert client.backend.deliveries.record(
        gone, "M-9", 1, status=DeliveryStatus.FAILED, attempts=1, next_at=None,
        last_code=410, last_error=None, last_latency_ms=1.0, response_excerpt=None, at=now,
    )  # fmt: skip
    client.disable_webhook(gone, GONE)
    return crm.endpoint_id, gone, secret


@pytest.mark.parametrize("fresh_api", BACKENDS, indirect=True)
def test_webhook_gauges_follow_the_outbox(fresh_api: Api) -> None:
    fresh_api.start_server()
    with fresh_api.client(Scope.READ) as http:
        empty = http.get("/metrics").text
        assert gauges(empty, "realorders_webhook_endpoints") == {"enabled": 0, "disabled": 0}
        assert gauges(empty, "realorders_webhook_backlog") == {}
        assert http.get("/v1/stats").json()["webhooks"]["endpoints"] == 0

        with fresh_api.library() as shop:
            crm, gone, secret = leave_backlog(shop)
        text = http.get("/metrics").text
        assert gauges(text, "realorders_webhook_endpoints") == {"enabled": 1, "disabled": 1}
        assert gauges(text, "realorders_webhook_backlog") == {crm: 3, gone: 1}
        assert gauges(text, "realorders_webhook_failed") == {crm: 0, gone: 1}
        for hidden in ("crm.example", "key=k1", "127.0.0.1:9", secret):
            assert hidden not in text
        # /v1/stats (as `stats --json`): the same totals, for a read token too
        assert http.get("/v1/stats").json()["webhooks"] == {
            "endpoints": 2, "enabled": 1, "disabled": 1, "backlog": 4, "failed": 1, "failing": 1,
        }  # fmt: skip

        with fresh_api.library() as shop:
            shop.remove_webhook(crm)
        text = http.get("/metrics").text
        assert gauges(text, "realorders_webhook_backlog") == {gone: 1}  # crm's series gone
        assert gauges(text, "realorders_webhook_endpoints") == {"enabled": 0, "disabled": 1}
