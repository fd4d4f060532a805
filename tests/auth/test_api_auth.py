"""Every endpoint but health, readiness, metrics and docs needs a bearer token with a scope."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import TokenFactory


def _assert_error(response, status: int, code: str) -> None:
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


def _every_route(app) -> list:
    """FastAPI 0.16x keeps included routers unflattened in ``app.routes``; walking only the top
    level would check none of the API's routes."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI flattened them
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def test_every_api_route_requires_auth(client: TestClient) -> None:
    """Guards future routers: any new route outside the open list must refuse anonymous calls."""
    open_paths = {
        "/healthz",
        "/readyz",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        "/docs/assets",
    }
    routes = _every_route(client.app)
    assert len(routes) > 20, "the walk must see inside included routers"
    for route in routes:
        path = getattr(route, "path", "")
        if path in open_paths:
            continue
        for method in sorted(getattr(route, "methods", None) or []):
            if method in ("HEAD", "OPTIONS"):
                continue
            concrete = path.replace("{", "").replace("}", "")
            response = client.request(method, concrete)
            assert response.status_code == 401, f"{method} {path} answered {response.status_code}"


def _app_with_cache(db_url: str, policy_dir, ttl: float):
    from app.main import create_app
    from app.settings import Settings

    return create_app(Settings(database_url=db_url, policy_dir=policy_dir, token_cache_seconds=ttl))


def test_revocation_applies_at_once_without_cache(db_url: str, policy_dir, db) -> None:
    from app.auth.service import create_token, revoke_token

    with db.session() as s:
        token = create_token(s, "short", ["read"])
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(_app_with_cache(db_url, policy_dir, 0)) as c:
        assert c.get("/v1/whoami", headers=headers).status_code == 200
        with db.session() as s:
            revoke_token(s, "short")
        assert c.get("/v1/whoami", headers=headers).status_code == 401


def test_cached_token_lives_until_ttl(db_url: str, policy_dir, db) -> None:
    from app.auth.service import create_token, revoke_token

    with db.session() as s:
        token = create_token(s, "cached", ["read"])
    headers = {"Authorization": f"Bearer {token}"}
    app = _app_with_cache(db_url, policy_dir, 60)
    with TestClient(app) as c:
        assert c.get("/v1/whoami", headers=headers).status_code == 200
        with db.session() as s:
            revoke_token(s, "cached")
        # Documented trade-off: up to PROVENANT_TOKEN_CACHE_SECONDS in a process that saw it.
        assert c.get("/v1/whoami", headers=headers).status_code == 200
        app.state.token_cache.clear()
        assert c.get("/v1/whoami", headers=headers).status_code == 401
