"""The Client's webhook figures: per endpoint, their sums, and what counts as failing."""

from __future__ import annotations

import time
from pathlib import Path

from realorders import Client
from realorders.deliveries import DeliveryStatus
from realorders.delivery import new_delivery
from realorders.webhooks import WebhookTotals


def test_figures_per_endpoint_and_their_totals(tmp_path: Path) -> None:
    with Client(tmp_path / "shop.db") as shop:
        shop.init()
        assert shop.webhook_figures() == []
        assert shop.webhook_totals() == WebhookTotals()
        quiet = shop.add_webhook("https://quiet.example/in")[0].endpoint_id
        busy = shop.add_webhook("https://busy.example/in")[0].endpoint_id
        off = shop.add_webhook("https://off.example/in")[0].endpoint_id
        shop.disable_webhook(off)  # by an operator, nothing given up: still needs a look
        now = time.time()
        owed = [new_delivery(busy, f"O-{n}", 1, n, now) for n in range(1, 6)]
        assert shop.backend.deliveries.enqueue(owed, 5) == 5
        for n in (1, 2):
            assert shop.backend.deliveries.record(
                busy, f"O-{n}", 1, status=DeliveryStatus.FAILED, attempts=8, next_at=None,
                last_code=500, last_error=None, last_latency_ms=1.0, response_excerpt=None,
                at=now,
            )  # fmt: skip

        figures = {f.endpoint.endpoint_id: f for f in shop.webhook_figures()}
        assert list(figures) == [quiet, busy, off]  # oldest first, as webhooks() lists them
        got = {e: (f.backlog, f.failed, f.failing) for e, f in figures.items()}
        assert got == {quiet: (0, 0, False), busy: (3, 2, True), off: (0, 0, True)}
        totals = shop.webhook_totals()
        assert totals.to_dict() == {
            "endpoints": 3, "enabled": 2, "disabled": 1, "backlog": 3, "failed": 2, "failing": 2,
        }  # fmt: skip
        assert shop.stats()["webhooks"] == totals.to_dict()
