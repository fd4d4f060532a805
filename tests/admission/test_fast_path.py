"""POST /k8s/validate is served ahead of FastAPI's router: same contract as the documented
route, same error shape, counted in the metrics under its route template."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.admission.helpers import APP, review, with_images


def test_the_route_stays_documented(app: FastAPI) -> None:
    assert "post" in app.openapi()["paths"]["/k8s/validate"]


def test_errors_have_the_api_error_shape(client: TestClient, webhook: dict) -> None:
    missing = client.post("/k8s/validate", json=review(with_images("pod", [APP])))
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthenticated"
    malformed = client.post("/k8s/validate", content=b"{", headers=webhook)
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_review"
    assert malformed.headers["content-type"] == "application/json"


def test_other_methods_go_to_the_router(client: TestClient, webhook: dict) -> None:
    response = client.get("/k8s/validate", headers=webhook)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_requests_are_counted_under_the_route_template(client: TestClient, webhook: dict) -> None:
    assert (
        client.post(
            "/k8s/validate", json=review(with_images("pod", [APP])), headers=webhook
        ).status_code
        == 200
    )
    metrics = client.get("/metrics").text
    assert 'route="/k8s/validate",status="200"' in metrics.replace('method="POST",', "")
