"""JSON answers (orjson, no pydantic round trip) and the error answers routes document."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from realorders.server.problems import PROBLEM, TITLES, problem_schema

__all__ = ["JSON", "errors_doc", "json_response"]

JSON = "application/json"

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    408: "timeout",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    503: "overloaded",
}


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(document), status, headers=headers, media_type=JSON)


def errors_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error codes, each a problem document."""
    return {
        status: {
            "description": TITLES[_SLUGS[status]],
            "content": {PROBLEM: {"schema": problem_schema()}},
        }
        for status in statuses
    }
