"""``/v1/webhooks``: the registry of webhook endpoints, as ``realorders webhooks`` manages it.

Every route needs ``admin``: an endpoint decides where order data goes, and its
secret is what receivers trust. The rules are the Client's (the same checks and
messages as the CLI's); only the creation and a rotation answer with a secret,
once, and no error or log line ever carries one. An endpoint's deliveries can be
looked at and sent again here too, as ``webhooks deliveries`` and ``replay`` do.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Query
from fastapi.responses import Response

from realorders._webhooks import MAX_HISTORY, UNSET
from realorders.client import Client
from realorders.intake import MAX_ID_LENGTH
from realorders.server.models import (
    DeliveryRecord,
    DisableWebhookBody,
    NewWebhook,
    ReplayBody,
    Replayed,
    RotatedSecret,
    RotateSecretBody,
    WebhookChange,
    WebhookCreated,
    WebhookRecord,
)
from realorders.server.responses import errors_doc, json_response
from realorders.server.services import Admin

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["webhooks"])


def webhook_path(endpoint_id: str) -> str:
    return f"/v1/webhooks/{quote(endpoint_id, safe='')}"


@router.post(
    "/webhooks",
    status_code=201,
    summary="Register an endpoint; its secret is in this answer only",
    responses={201: {"model": WebhookCreated}, **errors_doc(401, 403, 413, 422)},
)
async def add_webhook(body: NewWebhook, services: Admin) -> Response:
    """Like `realorders webhooks add --json`: the endpoint, enabled, and its `secret`
    (`whsec_…`), which no other answer repeats. `events` omitted or `all`: every status."""
    endpoint, secret = await services.store.call(
        lambda client: client.add_webhook(body.url, body.events, body.customer_id, body.description)
    )
    return json_response(
        {**endpoint.to_dict(), "secret": secret},
        201,
        {"Location": webhook_path(endpoint.endpoint_id)},
    )


@router.get(
    "/webhooks",
    summary="Every endpoint, oldest first (never a secret)",
    responses={200: {"model": list[WebhookRecord]}, **errors_doc(401, 403)},
)
async def webhooks(services: Admin) -> Response:
    endpoints = await services.store.call(Client.webhooks)
    return json_response([endpoint.to_dict() for endpoint in endpoints])


@router.get(
    "/webhooks/{endpoint_id}",
    summary="One endpoint (never its secret)",
    responses={200: {"model": WebhookRecord}, **errors_doc(401, 403, 404)},
)
async def webhook(endpoint_id: str, services: Admin) -> Response:
    endpoint = await services.store.call(lambda client: client.webhook(endpoint_id))
    return json_response(endpoint.to_dict())


@router.patch(
    "/webhooks/{endpoint_id}",
    summary="Change an endpoint's URL, events, customer or description",
    responses={200: {"model": WebhookRecord}, **errors_doc(401, 403, 404, 413, 422)},
)
async def update_webhook(endpoint_id: str, body: WebhookChange, services: Admin) -> Response:
    """Only the fields given change (`422` when none is): null clears `customer_id` and
    `description`, and `events` null means every status. The secret stays."""
    given = body.model_fields_set
    changes: dict[str, Any] = {name: getattr(body, name) for name in given}
    endpoint = await services.store.call(
        lambda client: client.update_webhook(
            endpoint_id,
            url=changes.get("url", UNSET),
            events=changes.get("events", UNSET),
            customer_id=changes.get("customer_id", UNSET),
            description=changes.get("description", UNSET),
        )
    )
    return json_response(endpoint.to_dict())


@router.post(
    "/webhooks/{endpoint_id}/disable",
    summary="Send an endpoint nothing until it is enabled again",
    responses={200: {"model": WebhookRecord}, **errors_doc(401, 403, 404, 413, 422)},
)
async def disable_webhook(
    endpoint_id: str,
    services: Admin,
    body: Annotated[DisableWebhookBody | None, Body()] = None,
) -> Response:
    """Like `realorders webhooks disable`; the optional `reason` is shown with it."""
    reason = body.reason if body is not None else None

    def disable(client: Client) -> dict[str, Any]:
        if reason is None:
            return client.disable_webhook(endpoint_id).to_dict()
        return client.disable_webhook(endpoint_id, reason).to_dict()

    return json_response(await services.store.call(disable))


@router.post(
    "/webhooks/{endpoint_id}/enable",
    summary="Enable an endpoint again",
    responses={200: {"model": WebhookRecord}, **errors_doc(401, 403, 404)},
)
async def enable_webhook(endpoint_id: str, services: Admin) -> Response:
    endpoint = await services.store.call(lambda client: client.enable_webhook(endpoint_id))
    return json_response(endpoint.to_dict())


@router.delete(
    "/webhooks/{endpoint_id}",
    status_code=204,
    summary="Remove an endpoint and its secrets",
    responses={204: {"description": "Removed"}, **errors_doc(401, 403, 404)},
)
async def remove_webhook(endpoint_id: str, services: Admin) -> Response:
    await services.store.call(lambda client: client.remove_webhook(endpoint_id))
    return Response(status_code=204)


@router.post(
    "/webhooks/{endpoint_id}/rotate-secret",
    summary="Give an endpoint a new secret; it is in this answer only",
    responses={200: {"model": RotatedSecret}, **errors_doc(401, 403, 404, 413, 422)},
)
async def rotate_webhook_secret(
    endpoint_id: str,
    services: Admin,
    body: Annotated[RotateSecretBody | None, Body()] = None,
) -> Response:
    """Like `realorders webhooks rotate-secret`: deliveries are signed with both secrets
    until `grace_seconds` (default a day) have passed, so receivers can switch."""
    grace = (body or RotateSecretBody()).grace_seconds
    secret = await services.store.call(
        lambda client: client.rotate_webhook_secret(endpoint_id, grace)
    )
    return json_response({"endpoint_id": endpoint_id, "secret": secret, "grace_seconds": grace})


@router.get(
    "/webhooks/{endpoint_id}/deliveries",
    summary="An endpoint's deliveries, newest first",
    responses={200: {"model": list[DeliveryRecord]}, **errors_doc(401, 403, 404, 422)},
)
async def webhook_deliveries(
    endpoint_id: str,
    services: Admin,
    failed: Annotated[bool, Query(description="Only those given up on")] = False,
    order_id: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 100,
) -> Response:
    """Like `realorders webhooks deliveries ENDPOINT --format json`: attempts, the last status
    code or error, latency, the next try and the start of the receiver's answer."""
    found = await services.store.call(
        lambda client: client.webhook_deliveries(
            endpoint_id, order_id=order_id, failed_only=failed, limit=limit
        )
    )
    return json_response([delivery.to_dict() for delivery in found])


@router.post(
    "/webhooks/{endpoint_id}/replay",
    summary="Send an endpoint's settled deliveries again",
    responses={200: {"model": Replayed}, **errors_doc(401, 403, 404, 413, 422)},
)
async def replay_webhook(
    endpoint_id: str,
    services: Admin,
    body: Annotated[ReplayBody | None, Body()] = None,
) -> Response:
    """Like `realorders webhooks replay`: delivered or failed deliveries (`since`, `order_id`
    and `failed_only` narrow them) are due again now, with the same `webhook-id`."""
    asked = body or ReplayBody()
    since = None if asked.since is None else asked.since.timestamp()
    count = await services.store.call(
        lambda client: client.replay_webhook(
            endpoint_id, since=since, order_id=asked.order_id, failed_only=asked.failed_only
        )
    )
    return json_response({"requeued": count})
