"""schemathesis against the live /openapi.json: no 5xx, every answer matches the document.

A bounded number of generated requests per route (``EXAMPLES``), with an admin
token, on both backends. The live streams are left out: a generated request
to one would stream until its timeout; they have their own tests. The earlier
design's routes (``/api/order``, ``/api/product``; ``serve --compat earlier-api``,
the default) are fuzzed like the rest: their 400s and 405s are in the document.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from realorders.tokens import Scope

from .conftest import Api

EXAMPLES = 30


@pytest.fixture(scope="module")
def live_schema(api: Api) -> Any:
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("live_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_route_answers_by_its_document(case: Case[Any], api: Api) -> None:
    if case.path.endswith("/events"):  # streams: tests/server/test_events_api.py
        return
    if case.query:  # a generated ?wait=terminal would wait out its timeout on a backorder
        case.query.pop("wait", None)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {api.tokens[Scope.ADMIN]}"},
        timeout=30,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        excluded_checks=[negative_data_rejection, ignored_auth],
    )
