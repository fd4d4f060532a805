"""The OpenAPI document describes what the routes merged after the contract answer: found by
the bounded schemathesis run (tests/fuzz/test_contract.py), pinned here by name so a regression
says which route and status without a fuzzing run."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def _operation(client: TestClient, method: str, path: str) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json()["paths"][path][method])


def test_mutate_documents_its_404_when_off(client: TestClient) -> None:
    responses = _operation(client, "post", "/k8s/mutate")["responses"]

    assert "PROVENANT_REGISTRY_MUTATE" in responses["404"]["description"]
    assert "application/json" in responses["404"]["content"]


def test_the_vsa_public_key_documents_its_pem(client: TestClient) -> None:
    responses = _operation(client, "get", "/v1/vsa/public-key")["responses"]

    assert set(responses["200"]["content"]) == {"application/json", "application/x-pem-file"}
    assert "503" in responses


def test_a_vsa_documents_its_422_without_a_body(client: TestClient) -> None:
    assert "422" in _operation(client, "get", "/v1/artifacts/{digest}/vsa")["responses"]


def test_registry_pull_documents_its_body_and_gateway_statuses(client: TestClient) -> None:
    operation = _operation(client, "post", "/v1/registry/pull")
    schema = operation["requestBody"]["content"]["application/json"]["schema"]

    assert schema == {"$ref": "#/components/schemas/PullRequest"}
    assert {"400", "401", "403", "404", "413", "422", "502", "503", "504"} <= set(
        operation["responses"]
    )
    assert "registry_not_allowed" in operation["responses"]["403"]["description"]
