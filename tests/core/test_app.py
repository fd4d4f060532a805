"""Health, readiness, metrics, docs and the one error shape."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_database_and_policies(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["policies"]["ok"] is True
    assert len(body["checks"]["policies"]["content_hash"]) == 64


def test_readyz_fails_without_policy_dir(tmp_path: Path) -> None:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/x.db", policy_dir=tmp_path / "missing")
    )
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "does not exist" in response.json()["checks"]["policies"]["last_error"]


def test_readyz_fails_when_database_unreachable(policy_dir: Path) -> None:
    app = create_app(
        Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", policy_dir=policy_dir)
    )
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False


def test_metrics_count_requests_per_route_template(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/v1/whoami")
    text = client.get("/metrics").text
    assert 'provenant_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/v1/whoami",status="401"' in text
    assert "provenant_http_request_duration_seconds_bucket" in text


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Provenant"


def test_unknown_route_and_method_use_error_shape(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
