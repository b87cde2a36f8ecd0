"""Tokens and scopes, revocation in a running server, --no-auth and TLS."""

from __future__ import annotations

import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import trustme

from realorders.tokens import Scope

from .conftest import BACKENDS, Api, console_script, order_body, uid

ROUTES_BY_SCOPE = {
    Scope.READ: [("GET", "/v1/orders"), ("GET", "/v1/stats"), ("GET", "/v1/inventory")],
    Scope.WRITE: [("POST", "/v1/orders")],
    Scope.ADMIN: [("POST", "/v1/inventory/KB-01/restock")],
}


def test_every_route_but_healthz_needs_a_token(api: Api) -> None:
    with api.client(None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        for path in ("/v1/orders", "/v1/stats", "/readyz", "/metrics", "/v1/events"):
            response = anonymous.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.headers["content-type"] == "application/problem+json"
        bad = anonymous.get("/v1/orders", headers={"Authorization": "Bearer ro_nope"})
        assert bad.status_code == 401
        assert "invalid_token" in bad.headers["www-authenticate"]


@pytest.mark.parametrize("scope", list(Scope))
def test_scopes_allow_what_they_name_and_no_more(api: Api, scope: Scope) -> None:
    bodies = {
        "/v1/orders": order_body(uid()),
        "/v1/inventory/KB-01/restock": {"quantity": 1},
    }
    rank = list(Scope).index(scope)
    with api.client(scope) as http:
        for needed, routes in ROUTES_BY_SCOPE.items():
            for method, path in routes:
                response = http.request(method, path, json=bodies.get(path))
                if list(Scope).index(needed) <= rank:
                    assert response.status_code < 400, (scope, path, response.text)
                else:
                    assert response.status_code == 403, (scope, path, response.text)
                    assert needed.value in response.json()["detail"]


def test_revoked_token_stops_working_within_a_second(api: Api) -> None:
    name = uid("revoke")
    with api.library() as shop:
        _, token = shop.create_token(name, Scope.READ)
    with api.client(token=token) as http:
        assert http.get("/v1/stats").status_code == 200
        revoked = subprocess.run(
            [console_script(), "tokens", "revoke", name],
            env=api.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert revoked.returncode == 0, revoked.stderr
        time.sleep(1.0)  # the promise: one second after revoking, not one request later
        assert http.get("/v1/stats").status_code == 401


def test_no_auth_is_refused_off_loopback(api: Api) -> None:
    result = subprocess.run(
        [console_script(), "serve", "--no-auth", "--host", "0.0.0.0", "--port", "0"],
        env=api.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "--no-auth" in lines[0]
    assert "loopback" in lines[0]


@pytest.mark.parametrize("fresh_api", BACKENDS, indirect=True)
def test_no_auth_on_loopback_serves_everyone(fresh_api: Api) -> None:
    fresh_api.start_server("--no-auth")
    with fresh_api.client(None) as http:
        created = http.post("/v1/orders", json=order_body(uid()))
        assert created.status_code == 201, created.text
        assert http.get("/v1/products").status_code == 200


@pytest.mark.parametrize("fresh_api", BACKENDS, indirect=True)
def test_tls_with_a_generated_certificate(fresh_api: Api, tmp_path: Path) -> None:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    authority.cert_pem.write_to_path(str(cafile))
    url = fresh_api.start_server("--certfile", str(certfile), "--keyfile", str(keyfile))
    assert url.startswith("https://")
    trusted = ssl.create_default_context(cafile=str(cafile))
    with fresh_api.client(verify=trusted) as http:
        assert http.post("/v1/orders", json=order_body(uid())).status_code == 201
    with (
        fresh_api.client(verify=True) as untrusted,  # the system's CAs do not know ours
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        untrusted.get("/healthz")
