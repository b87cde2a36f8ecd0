"""Every error as RFC 9457 ``application/problem+json``, and never a traceback.

The library's errors carry their own HTTP status and a stable slug
(:mod:`realorders.errors`, the table the CLI's exit codes come from too);
FastAPI's validation errors point at the field; anything unexpected is logged
here with its request id and answered with a bare 500 that names the id.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from realorders.errors import InputError, RealordersError

__all__ = ["PROBLEM", "Problem", "install", "problem_response", "problem_schema"]

log = logging.getLogger("realorders.server")

PROBLEM = "application/problem+json"

#: the title each problem type always has (RFC 9457: the same for every occurrence)
TITLES = {
    "bad-request": "The request is malformed",
    "invalid-input": "The input breaks a rule",
    "conflict": "Conflicts with what is stored",
    "refused": "Not allowed in the current state",
    "not-found": "No such resource",
    "engine-busy": "Another engine runs on this store",
    "service-unavailable": "A service behind the store is unavailable",
    "unauthorized": "A valid bearer token is needed",
    "forbidden": "The token's scope does not allow this",
    "method-not-allowed": "The route does not take this method",
    "not-acceptable": "Cannot produce an acceptable representation",
    "too-large": "The request body is too large",
    "unsupported-media-type": "The request body's Content-Type is not accepted here",
    "overloaded": "The engine is behind; retry later",
    "timeout": "The client took too long to send its request",
    "unavailable": "Not offered by this store",
    "error": "Internal error",
}
_SLUG_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    408: "timeout",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    503: "service-unavailable",
}


class Problem(Exception):
    """A problem a route answers with (raise it; the handler below renders it)."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    @classmethod
    def resubmitted(cls, order_id: str) -> Problem:
        """``409``: an order id submitted before with other content (that one is kept)."""
        return cls(
            409,
            "conflict",
            f"order {order_id!r} was already submitted with different content; "
            "the stored order is kept",
            order_id=order_id,
        )


def problem_response(
    request: Request | None,
    status: int,
    slug: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:realorders:problem:{slug}",
        "title": TITLES.get(slug, TITLES["error"]),
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
        request_id = getattr(request.state, "request_id", None)
        if request_id is not None:
            body["request_id"] = request_id
    body.update({k: v for k, v in extensions.items() if v is not None})
    return Response(orjson.dumps(body), status, headers=headers, media_type=PROBLEM)


def problem_schema() -> dict[str, Any]:
    """The problem document in OpenAPI, shared by every route's error answers."""
    return {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "request_id": {"type": "string"},
            "pointer": {"type": "string", "description": "RFC 6901 pointer to the bad field"},
            "parameter": {"type": "string", "description": "the bad query or path parameter"},
            "line": {"type": "integer", "description": "the input line (imports)"},
        },
    }


def _pointer(loc: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in loc)


async def _library_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RealordersError)
    status = exc.http_status
    if status >= 500:
        log.warning("%s %s: %s", getattr(request.state, "request_id", "-"), request.url.path, exc)
    if isinstance(exc, InputError):
        return problem_response(
            request, status, exc.problem, exc.reason, pointer=exc.pointer, line=exc.line
        )
    headers = {"Retry-After": "5"} if status == 503 else None
    return problem_response(request, status, exc.problem, str(exc), headers)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(
        request, exc.status, exc.slug, exc.detail, exc.headers, **exc.extensions
    )


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    where, rest = (loc[0], loc[1:]) if loc else ("body", ())
    message = str(first.get("msg", "invalid"))
    if where == "body":
        if first.get("type") == "json_invalid":
            return problem_response(request, 400, "bad-request", f"body is not JSON: {message}")
        field = "/".join(map(str, rest)) or "body"
        return problem_response(
            request, 422, "invalid-input", f"{field}: {message}", pointer=_pointer(rest)
        )
    name = str(rest[0]) if rest else str(where)
    return problem_response(
        request, 422, "invalid-input", f"{where} parameter {name}: {message}", parameter=name
    )


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slug = _SLUG_BY_STATUS.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(slug, "error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}"
    return problem_response(request, exc.status_code, slug, detail, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = getattr(request.state, "request_id", "-")
    log.error("%s %s %s failed", request_id, request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        500,
        "error",
        f"unexpected {type(exc).__name__}; the server log has request {request_id}",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RealordersError, _library_error)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
