"""Every endpoint but health, readiness, metrics and docs needs a bearer token with a scope."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import TokenFactory


def _assert_error(response, status: int, code: str) -> None:  # noqa: ANN001
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_missing_token_is_401(client: TestClient) -> None:
    response = client.get("/v1/whoami")
    _assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_bad_token_is_401(client: TestClient) -> None:
    _assert_error(
        client.get("/v1/whoami", headers={"Authorization": "Bearer prv_nope"}),
        401,
        "unauthenticated",
    )
    _assert_error(
        client.get("/v1/whoami", headers={"Authorization": "Basic dXNlcjpwYXNz"}),
        401,
        "unauthenticated",
    )


def test_wrong_scope_is_403(client: TestClient, tokens: TokenFactory) -> None:
    response = client.get("/v1/tokens", headers=tokens("read"))
    _assert_error(response, 403, "forbidden")
    assert response.json()["error"]["details"]["required_scope"] == "admin"


def test_right_scope_passes(client: TestClient, tokens: TokenFactory) -> None:
    headers = tokens("read", name="reader")
    assert client.get("/v1/whoami", headers=headers).json() == {
        "name": "reader",
        "scopes": ["read"],
    }
    listing = client.get("/v1/tokens", headers=tokens("admin"))
    assert listing.status_code == 200
    assert {t["name"] for t in listing.json()} >= {"reader"}


def test_every_api_route_requires_auth(client: TestClient) -> None:
    """Guards future routers: any new route outside the open list must refuse anonymous calls."""
    open_paths = {"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect",
                  "/redoc", "/openapi.json"}
    for route in client.app.routes:
        path = getattr(route, "path", "")
        if path in open_paths:
            continue
        for method in sorted(getattr(route, "methods", None) or []):
            if method in ("HEAD", "OPTIONS"):
                continue
            concrete = path.replace("{", "").replace("}", "")
            response = client.request(method, concrete)
            assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
