"""The policy API through the app, on SQLite and PostgreSQL; attestations are inserted through
the ORM (verification of uploads is tested with ingest)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.attestations.models import Attestation, AttestationSubject
from app.policy.router import router as policy_router
from app.verification.facts import SignerFacts
from tests.helpers import TokenFactory
from tests.policy.helpers import (
    DIGEST,
    EVIL_SAN,
    IMAGE,
    OTHER_DIGEST,
    SLSA_V1,
    config,
    keyless,
    policy,
    provenance_v1,
    write,
)


@pytest.fixture
def api(app: FastAPI, policy_dir: Path, request: pytest.FixtureRequest) -> TestClient:
    # The lead wires the router into create_app; until then, tests add it themselves.
    if not any(getattr(r, "path", None) == "/v1/evaluate" for r in app.routes):
        app.include_router(policy_router)
    write(policy_dir, "acme.yaml", policy() + "---\n" + config())
    client: TestClient = request.getfixturevalue("client")
    return client


def insert(
    app: FastAPI,
    signer: SignerFacts,
    *,
    digest: str = DIGEST,
    revoked: bool = False,
    number: int = 0,
) -> str:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "ghcr.io/acme/app", "digest": {"sha256": digest}}],
        "predicateType": SLSA_V1,
        "predicate": provenance_v1(),
    }
    # Ids name content, as ingest's do (the engine caches prepared CEL values by id).
    attestation_id = hashlib.sha256(
        json.dumps([number, statement, signer.san, revoked], sort_keys=True).encode()
    ).hexdigest()
    row = Attestation(
        id=attestation_id,
        format="sigstore-bundle",
        media_type="application/vnd.dev.sigstore.bundle.v0.3+json",
        content_kind="statement",
        predicate_type=SLSA_V1,
        size=1000,
        uploaded_at=datetime.now(UTC) - timedelta(minutes=number),
        uploaded_by="ci",
        signers=[dataclasses.asdict(signer)],
        signer_kind=signer.kind,
        signer_issuer=signer.issuer,
        signer_san=signer.san,
        trust_root="public-good",
        tlog_entries=[],
        timestamps=[],
        statement=statement,
        revoked_at=datetime.now(UTC) if revoked else None,
        revoked_reason="leaked" if revoked else None,
    )
    row.subjects = [AttestationSubject(name="ghcr.io/acme/app", algorithm="sha256", digest=digest)]
    with app.state.db.session() as session:
        session.add(row)
    return attestation_id


def test_evaluate_allows_an_image_with_a_verified_attestation(
    api: TestClient, app: FastAPI, tokens: TokenFactory
) -> None:
    good = insert(app, keyless(), number=1)
    insert(app, keyless(), digest=OTHER_DIGEST, number=2)
    response = api.post(
        "/v1/evaluate", json={"image": IMAGE, "namespace": "prod"}, headers=tokens("read")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["allowed"] is True
    assert body["mode"] == "enforce"
    assert body["policy_hash"] == app.state.policies.active.content_hash
    (image,) = body["images"]
    assert image["digest"] == f"sha256:{DIGEST}"
    (policy_result,) = image["policies"]
    assert policy_result["name"] == "acme" and policy_result["passed"] is True
    (req,) = policy_result["requirements"]
    assert req["passed"] is True and req["attestations"] == [good]


def test_evaluate_explains_a_denial(api: TestClient, app: FastAPI, tokens: TokenFactory) -> None:
    insert(app, keyless(san=EVIL_SAN), number=1)
    insert(app, keyless(), revoked=True, number=2)
    response = api.post("/v1/evaluate", json={"image": IMAGE}, headers=tokens("read"))
    body = response.json()
    assert body["allowed"] is False
    req = body["images"][0]["policies"][0]["requirements"][0]
    assert req["status"] == "failing"
    reasons = {r["reason"] for r in req["rejected"]}
    assert "revoked: leaked" in reasons
    assert any(EVIL_SAN in r for r in reasons)


def test_evaluate_missing_and_several_images(api: TestClient, tokens: TokenFactory) -> None:
    images = [IMAGE, "ghcr.io/acme/app:latest"]
    body = api.post("/v1/evaluate", json={"images": images}, headers=tokens("read")).json()
    assert body["allowed"] is False
    first, second = body["images"]
    assert first["policies"][0]["requirements"][0]["status"] == "missing"
    assert "has no digest" in second["reason"]


def test_evaluate_validates_its_request(api: TestClient, tokens: TokenFactory) -> None:
    both = {"image": IMAGE, "images": [IMAGE]}
    response = api.post("/v1/evaluate", json=both, headers=tokens("read"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_scopes(api: TestClient, tokens: TokenFactory) -> None:
    assert api.post("/v1/evaluate", json={"image": IMAGE}).status_code == 401
    upload = tokens("upload")
    assert api.post("/v1/evaluate", json={"image": IMAGE}, headers=upload).status_code == 403
    assert api.get("/v1/policies", headers=upload).status_code == 403
    assert api.post("/v1/policies:reload", headers=tokens("read")).status_code == 403


def test_list_policies(api: TestClient, tokens: TokenFactory) -> None:
    response = api.get("/v1/policies", headers=tokens("read"))
    assert response.status_code == 200
    body = response.json()
    assert [p["name"] for p in body["policies"]] == ["acme"]
    assert body["policies"][0]["images"] == ["ghcr.io/acme/**"]
    assert body["config"]["noMatch"] == "deny"
    assert "public-good" in body["trust_roots"]
    assert body["last_error"] is None


def test_reload_picks_up_changes(api: TestClient, policy_dir: Path, tokens: TokenFactory) -> None:
    admin = tokens("admin")
    before = api.get("/v1/policies", headers=admin).json()["content_hash"]
    write(policy_dir, "second.yaml", policy("second", images='["quay.io/**"]'))
    response = api.post("/v1/policies:reload", headers=admin)
    assert response.status_code == 200
    assert response.json()["content_hash"] != before
    assert {p["name"] for p in response.json()["policies"]} == {"acme", "second"}


def test_reload_with_a_bad_file_keeps_the_last_good_set(
    api: TestClient, policy_dir: Path, tokens: TokenFactory
) -> None:
    admin = tokens("admin")
    good = api.get("/v1/policies", headers=admin).json()["content_hash"]
    write(policy_dir, "broken.yaml", policy("broken", extra="  mode: sometimes\n"))
    response = api.post("/v1/policies:reload", headers=admin)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "policy_invalid"
    assert error["details"]["active_hash"] == good
    (problem,) = error["details"]["errors"]
    assert problem["file"] == "broken.yaml" and problem["path"] == "spec.mode"
    assert problem["line"] == 6
    # Still serving the last good set, and saying so.
    listed = api.get("/v1/policies", headers=admin).json()
    assert listed["content_hash"] == good
    assert "broken.yaml:6" in listed["last_error"]
    ready = api.get("/readyz").json()["checks"]["policies"]
    assert ready["ok"] is True and ready["content_hash"] == good
    assert "spec.mode" in ready["last_error"]
    # The evaluation still works, on the last good set.
    body = api.post("/v1/evaluate", json={"image": IMAGE}, headers=admin).json()
    assert body["policy_hash"] == good


def test_no_policy_set_is_a_503(api: TestClient, app: FastAPI, tokens: TokenFactory) -> None:
    app.state.policies.active = None
    response = api.post("/v1/evaluate", json={"image": IMAGE}, headers=tokens("read"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "policies_unavailable"
