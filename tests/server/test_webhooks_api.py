"""``/v1/webhooks``: the endpoint registry over HTTP, on both backends.

The same store as the CLI and the Client (an endpoint added here is theirs
too), admin only, and a secret in exactly two answers: the creation and a
rotation. Never in a listing, an error or the server's log.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx

from realorders.tokens import Scope
from realorders.webhooks import SECRET_PREFIX

from .conftest import Api, console_script, uid

PROBLEM = "application/problem+json"


def _add(http: httpx.Client, **body: Any) -> dict[str, Any]:
    created = http.post("/v1/webhooks", json={"url": f"https://{uid('h')}.example/hook", **body})
    assert created.status_code == 201, created.text
    document: dict[str, Any] = created.json()
    return document


def test_lifecycle(api: Api) -> None:
    customer = uid("cust")
    with api.client() as http, api.library() as shop:
        created = http.post(
            "/v1/webhooks",
            json={
                "url": "https://receiver.example/hooks?x=1",
                "events": ["delivered", "shipped"],
                "customer_id": customer,
                "description": "the warehouse",
            },
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        eid = endpoint["endpoint_id"]
        assert created.headers["location"] == f"/v1/webhooks/{eid}"
        assert endpoint["secret"].startswith(SECRET_PREFIX)
        assert endpoint["events"] == ["shipped", "delivered"]  # lifecycle order
        assert endpoint["customer_id"] == customer
        assert endpoint["enabled"] is True
        first_secret = endpoint.pop("secret")
        assert shop.webhook_secrets(eid) == [first_secret]

        assert http.get(f"/v1/webhooks/{eid}").json() == endpoint
        listed = http.get("/v1/webhooks").json()
        assert [e for e in listed if e["endpoint_id"] == eid] == [endpoint]

        changed = http.patch(f"/v1/webhooks/{eid}", json={"events": None, "description": "d2"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["events"] is None
        assert changed.json()["description"] == "d2"
        assert changed.json()["customer_id"] == customer  # not given: kept
        cleared = http.patch(f"/v1/webhooks/{eid}", json={"customer_id": None, "events": "all"})
        assert cleared.json()["customer_id"] is None
        moved = http.patch(f"/v1/webhooks/{eid}", json={"url": "http://127.0.0.1:9/x"})
        assert moved.json()["url"] == "http://127.0.0.1:9/x"
        assert moved.json()["description"] == "d2"

        plain = http.post(f"/v1/webhooks/{eid}/disable")
        assert plain.status_code == 200, plain.text
        assert plain.json()["disabled_reason"] == "disabled by an operator"
        disabled = http.post(f"/v1/webhooks/{eid}/disable", json={"reason": "receiver moves"})
        assert (disabled.json()["enabled"], disabled.json()["disabled_reason"]) == (
            False,
            "receiver moves",
        )
        assert shop.webhook(eid).enabled is False
        enabled = http.post(f"/v1/webhooks/{eid}/enable")
        assert (enabled.json()["enabled"], enabled.json()["disabled_reason"]) == (True, None)

        rotated = http.post(f"/v1/webhooks/{eid}/rotate-secret")
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["grace_seconds"] == 86_400
        second_secret = rotated.json()["secret"]
        assert second_secret.startswith(SECRET_PREFIX)
        assert shop.webhook_secrets(eid) == [second_secret, first_secret]  # both, for a day
        at_once = http.post(f"/v1/webhooks/{eid}/rotate-secret", json={"grace_seconds": 0})
        assert shop.webhook_secrets(eid) == [at_once.json()["secret"]]

        removed = http.delete(f"/v1/webhooks/{eid}")
        assert removed.status_code == 204
        assert removed.content == b""
        for method, path in [
            ("GET", f"/v1/webhooks/{eid}"),
            ("DELETE", f"/v1/webhooks/{eid}"),
            ("PATCH", f"/v1/webhooks/{eid}"),
            ("POST", f"/v1/webhooks/{eid}/enable"),
            ("POST", f"/v1/webhooks/{eid}/rotate-secret"),
        ]:
            gone = http.request(
                method, path, json={"description": "x"} if method == "PATCH" else None
            )
            assert gone.status_code == 404, (method, path, gone.text)
            assert gone.headers["content-type"] == PROBLEM
            assert gone.json()["detail"] == f"no webhook endpoint {eid!r}"
        assert all(e.endpoint_id != eid for e in shop.webhooks())


def test_an_endpoint_added_over_http_is_the_client_s_and_the_cli_s(api: Api) -> None:
    with api.client() as http, api.library() as shop:
        endpoint = _add(http, events=["shipped"], description="over HTTP")
        eid = endpoint.pop("endpoint_id")
        seen = shop.webhook(eid).to_dict()
        assert {**endpoint, "endpoint_id": eid, "secret": None} == {**seen, "secret": None}
        added_here, _ = shop.add_webhook("https://client.example/h", "delivered")
        over_http = http.get(f"/v1/webhooks/{added_here.endpoint_id}").json()
        assert over_http == added_here.to_dict()
    listed = subprocess.run(
        [console_script(), "webhooks", "list", "--format", "json"],
        env=api.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    by_id = {e["endpoint_id"]: e for e in json.loads(listed.stdout)}
    assert by_id[eid]["description"] == "over HTTP"


def test_only_creation_and_rotation_show_a_secret(api: Api) -> None:
    answers: list[tuple[str, httpx.Response]] = []
    with api.client() as http:
        created = http.post("/v1/webhooks", json={"url": "https://s.example/h"})
        eid = created.json()["endpoint_id"]
        rotated = http.post(f"/v1/webhooks/{eid}/rotate-secret", json={"grace_seconds": 60})
        assert SECRET_PREFIX in created.text
        assert SECRET_PREFIX in rotated.text
        for method, path, body in [
            ("GET", "/v1/webhooks", None),
            ("GET", f"/v1/webhooks/{eid}", None),
            ("PATCH", f"/v1/webhooks/{eid}", {"description": "no secrets here"}),
            ("PATCH", f"/v1/webhooks/{eid}", {"url": "ftp://nope"}),
            ("POST", f"/v1/webhooks/{eid}/disable", {"reason": "x"}),
            ("POST", f"/v1/webhooks/{eid}/enable", None),
            ("POST", f"/v1/webhooks/{eid}/rotate-secret", {"grace_seconds": -1}),
            ("POST", f"/v1/webhooks/{eid}/rotate-secret", {"grace": 1}),
            ("DELETE", f"/v1/webhooks/{eid}", None),
            ("GET", f"/v1/webhooks/{eid}", None),
        ]:
            answers.append((f"{method} {path}", http.request(method, path, json=body)))
    with api.client(Scope.WRITE) as writer:
        answers.append(("POST as writer", writer.post(f"/v1/webhooks/{eid}/rotate-secret")))
    for what, answer in answers:
        assert SECRET_PREFIX not in answer.text, what
    assert api.server is not None
    assert SECRET_PREFIX not in api.server.stderr  # the access log and any error lines


def test_every_webhook_route_needs_the_admin_scope(api: Api) -> None:
    with api.client() as admin:
        eid = _add(admin)["endpoint_id"]
    routes = [
        ("POST", "/v1/webhooks", {"url": "https://x.example/"}),
        ("GET", "/v1/webhooks", None),
        ("GET", f"/v1/webhooks/{eid}", None),
        ("PATCH", f"/v1/webhooks/{eid}", {"description": "x"}),
        ("POST", f"/v1/webhooks/{eid}/disable", None),
        ("POST", f"/v1/webhooks/{eid}/enable", None),
        ("POST", f"/v1/webhooks/{eid}/rotate-secret", None),
        ("DELETE", f"/v1/webhooks/{eid}", None),
    ]
    for scope in (Scope.READ, Scope.WRITE):
        with api.client(scope) as http:
            for method, path, body in routes:
                refused = http.request(method, path, json=body)
                assert refused.status_code == 403, (scope, method, path, refused.text)
                assert refused.headers["content-type"] == PROBLEM
                assert "this needs admin" in refused.json()["detail"]
    with api.client(None) as anonymous:
        for method, path, body in routes:
            refused = anonymous.request(method, path, json=body)
            assert refused.status_code == 401, (method, path, refused.text)
            assert refused.headers["www-authenticate"].startswith("Bearer")
    with api.library() as shop:
        endpoint = shop.webhook(eid)  # nothing above changed it
    assert (endpoint.enabled, endpoint.description) == (True, None)


BAD_CREATIONS: list[tuple[Any, int, str]] = [
    ({"url": "ftp://files.example/in"}, 422, "must start with http:// or https://"),
    ({"url": "hooks.example/in"}, 422, "must start with http:// or https://"),
    ({"url": "https://"}, 422, "has no host"),
    ({"url": "https://u:hunter2@x.example/"}, 422, "may not carry a user name or password"),
    ({"url": "https://x.example/" + "a" * 2000}, 422, "at most 2000"),
    ({"url": "https://x.example/", "events": ["shiped"]}, 422, "unknown event 'shiped'"),
    ({"url": "https://x.example/", "events": []}, 422, "no events given"),
    ({"url": "https://x.example/", "events": "sometimes"}, 422, "unknown event 'sometimes'"),
    ({"url": "https://x.example/", "events": [3]}, 422, "events: give a list of status"),
    ({"url": "https://x.example/", "events": {"shipped": 1}}, 422, "events: give a list"),
    ({"url": "https://x.example/", "description": "d" * 501}, 422, "longer than 500"),
    ({"url": "https://x.example/", "description": "two\nlines"}, 422, "description"),
    ({"url": "https://x.example/", "customer_id": ""}, 422, "customer id"),
    ({"url": "https://x.example/", "secret": "whsec_mine"}, 422, "secret: Extra inputs"),
    ({}, 422, "url: Field required"),
    ([], 422, "body"),
]


def test_bad_input_is_one_clear_problem(api: Api) -> None:
    with api.client() as http:
        before = len(http.get("/v1/webhooks").json())
        for body, status, words in BAD_CREATIONS:
            refused = http.post("/v1/webhooks", json=body)
            assert refused.status_code == status, (body, refused.text)
            assert refused.headers["content-type"] == PROBLEM
            assert words in refused.json()["detail"], (body, refused.json())
            assert "hunter2" not in refused.text
        not_json = http.post(
            "/v1/webhooks", content=b"{url", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
        assert not_json.json()["type"] == "urn:realorders:problem:bad-request"
        assert len(http.get("/v1/webhooks").json()) == before  # nothing half-made

        eid = _add(http)["endpoint_id"]
        for path, body, words in [
            (f"/v1/webhooks/{eid}", {}, "nothing to update"),
            (f"/v1/webhooks/{eid}", {"url": None}, "an endpoint needs a URL"),
            (f"/v1/webhooks/{eid}", {"url": "mailto:a@b"}, "http:// or https://"),
            (f"/v1/webhooks/{eid}/disable", {"reason": ""}, "reason must not be empty"),
            (f"/v1/webhooks/{eid}/disable", {"reason": "r" * 501}, "longer than 500"),
            (f"/v1/webhooks/{eid}/rotate-secret", {"grace_seconds": -5}, "0 or more seconds"),
            (f"/v1/webhooks/{eid}/rotate-secret", {"grace_seconds": "soon"}, "grace_seconds"),
        ]:
            method = "PATCH" if path.endswith(eid) else "POST"
            refused = http.request(method, path, json=body)
            assert refused.status_code == 422, (path, body, refused.text)
            assert words in refused.json()["detail"], (path, body, refused.json())
        unchanged = http.get(f"/v1/webhooks/{eid}").json()
        assert (unchanged["enabled"], unchanged["description"]) == (True, None)


def test_deliveries_and_replay_of_an_endpoint(api: Api) -> None:
    """Nothing is delivered here (no `notify` runs): the routes' shape, filters and checks.
    Deliveries themselves are tested with real receivers in tests/integration."""
    with api.client() as http:
        eid = _add(http)["endpoint_id"]
        assert http.get(f"/v1/webhooks/{eid}/deliveries").json() == []
        filtered = http.get(
            f"/v1/webhooks/{eid}/deliveries",
            params={"failed": "true", "order_id": uid(), "limit": 5},
        )
        assert filtered.status_code == 200, filtered.text
        assert filtered.json() == []
        bodies: list[dict[str, Any] | None] = [
            None,
            {},
            {"since": "2026-01-01T00:00:00Z", "failed_only": True},
        ]
        for body in bodies:
            replayed = http.post(f"/v1/webhooks/{eid}/replay", json=body)
            assert replayed.status_code == 200, (body, replayed.text)
            assert replayed.json() == {"requeued": 0}
        for path in (f"/v1/webhooks/{uid('we')}/deliveries", f"/v1/webhooks/{uid('we')}/replay"):
            method = "GET" if path.endswith("deliveries") else "POST"
            gone = http.request(method, path)
            assert gone.status_code == 404, (path, gone.text)
            assert "no webhook endpoint" in gone.json()["detail"]
        for params, words in [({"limit": 0}, "limit"), ({"limit": 10_001}, "limit")]:
            refused = http.get(f"/v1/webhooks/{eid}/deliveries", params=params)
            assert refused.status_code == 422, refused.text
            assert refused.json()["parameter"] == words
        bad: list[tuple[dict[str, Any], str]] = [
            ({"since": "2026-01-01T00:00:00"}, "since"),  # no offset: whose midnight?
            ({"since": "yesterday"}, "since"),
            ({"order_id": ""}, "order_id"),
            ({"failed": True}, "failed: Extra inputs"),
        ]
        for wrong, words in bad:
            refused = http.post(f"/v1/webhooks/{eid}/replay", json=wrong)
            assert refused.status_code == 422, (wrong, refused.text)
            assert refused.json()["detail"].startswith(words), refused.json()
    with api.client(Scope.WRITE) as writer:
        assert writer.get(f"/v1/webhooks/{eid}/deliveries").status_code == 403
        assert writer.post(f"/v1/webhooks/{eid}/replay").status_code == 403
