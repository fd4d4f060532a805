"""GET /v1/artifacts/{digest}/vsa and GET /v1/vsa/public-key, in process, on both databases."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.audit.models import AuditEvent
from app.cli import cli
from app.db import Database
from app.settings import get_settings
from app.vsa.offline import Expectations, verify_vsa
from tests.attestations.conftest import statement
from tests.helpers import TokenFactory
from tests.sigstore_stack import SigstoreTestStack
from tests.vsa.conftest import (
    ISOLATED_BUILDER,
    PLATFORM_BUILDER,
    REPOSITORY,
    signed_by_workflow,
    signer_is_builder,
)

DIGEST = hashlib.sha256(b"vsa-api").hexdigest()
IMAGE = f"{REPOSITORY}@sha256:{DIGEST}"
RESOURCE = f"oci://{REPOSITORY}@sha256:{DIGEST}"


def upload(client: TestClient, tokens: TokenFactory, bundle: str) -> str:
    response = client.post("/v1/attestations", content=bundle, headers=tokens("upload"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def payload(envelope: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(envelope["payload"]))


def test_issues_a_signed_passed_vsa_that_verifies_offline(
    client: TestClient, tokens: TokenFactory, stack: SigstoreTestStack, db: Database
) -> None:
    attestation = upload(
        client, tokens, stack.sign_dsse(statement(REPOSITORY, DIGEST), **signer_is_builder())
    )
    read = tokens("read", name="deploy-tool")
    response = client.get(f"/v1/artifacts/sha256:{DIGEST}/vsa?image={REPOSITORY}", headers=read)
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert response.headers["X-VSA-Result"] == "PASSED"
    keys = client.get("/v1/vsa/public-key", headers=read).json()
    assert response.headers["X-VSA-Key-Id"] == keys["keyId"] == envelope["signatures"][0]["keyid"]
    assert keys["algorithm"] == "ecdsa-p256" and keys["verifierId"] == "https://hub.example/vsa"

    vsa = payload(envelope)
    assert vsa["subject"] == [{"name": REPOSITORY, "digest": {"sha256": DIGEST}}]
    assert vsa["predicateType"] == "https://slsa.dev/verification_summary/v1"
    predicate = vsa["predicate"]
    assert predicate["verifier"]["id"] == "https://hub.example/vsa"
    assert predicate["resourceUri"] == RESOURCE
    assert predicate["policy"]["uri"] == "https://hub.example/vsa/policies/acme"
    assert len(predicate["policy"]["digest"]["sha256"]) == 64
    assert predicate["inputAttestations"] == [
        {
            "uri": f"http://testserver/v1/attestations/{attestation}/raw",
            "digest": {"sha256": attestation},
        }
    ]
    raw = client.get(f"/v1/attestations/{attestation}/raw", headers=read).content
    assert hashlib.sha256(raw).hexdigest() == attestation
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_3"]
    assert predicate["slsaVersion"] == "1.0"
    assert datetime.fromisoformat(predicate["timeVerified"]) <= datetime.now(UTC)

    report = verify_vsa(
        response.content,
        Expectations(
            public_key_pem=keys["publicKey"].encode(),
            public_key_id=keys["keyId"],
            subject_digests=[f"sha256:{DIGEST}"],
            verifier_id="https://hub.example/vsa",
            resource_uri=RESOURCE,
            verified_levels=["SLSA_BUILD_LEVEL_3"],
        ),
        datetime.now(UTC),
    )
    assert report.ok, report.reason

    with db.session() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.type == "vsa.issued"))
        assert event.actor == "deploy-tool"
        assert event.payload["digest"] == f"sha256:{DIGEST}"
        assert event.payload["verification_result"] == "PASSED"
        assert event.payload["key_id"] == keys["keyId"]
        assert event.payload["input_attestations"] == [attestation]


def test_levels_follow_the_signer_and_the_checks(
    client: TestClient, tokens: TokenFactory, stack: SigstoreTestStack
) -> None:
    # Built and signed by acme's own reusable workflow: pinned by the policy and bound to its
    # signer, but not a builder slsa-verifier trusts as isolated, so L2.
    provenance = statement(REPOSITORY, DIGEST, builder=PLATFORM_BUILDER)
    upload(client, tokens, stack.sign_dsse(provenance, **signed_by_workflow(PLATFORM_BUILDER)))
    response = client.get(f"/v1/artifacts/sha256:{DIGEST}/vsa?policy=acme", headers=tokens("read"))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "resource_uri_required"
    response = client.get(
        f"/v1/artifacts/sha256:{DIGEST}/vsa",
        params={"policy": "acme", "resource_uri": "https://example.com/app.tar"},
        headers=tokens("read"),
    )
    predicate = payload(response.json())["predicate"]
    assert predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_2"]
    assert predicate["resourceUri"] == "https://example.com/app.tar"
    assert payload(response.json())["subject"][0]["name"] == f"sha256:{DIGEST}"


@pytest.mark.parametrize(
    ("builder", "signer"),
    [
        # The caller's workflow wrote the isolated builder's id into its own provenance.
        (ISOLATED_BUILDER, {}),
        # The generator's workflow signed, but at another ref than the provenance claims.
        (
            ISOLATED_BUILDER,
            signed_by_workflow(ISOLATED_BUILDER.replace("v2.0.0", "v2.1.0")),
        ),
        # acme's platform builder named by a provenance the caller's workflow signed.
        (PLATFORM_BUILDER, {}),
    ],
)
def test_a_builder_not_bound_to_its_signer_gets_no_level(
    client: TestClient,
    tokens: TokenFactory,
    stack: SigstoreTestStack,
    builder: str,
    signer: dict[str, Any],
) -> None:
    upload(
        client, tokens, stack.sign_dsse(statement(REPOSITORY, DIGEST, builder=builder), **signer)
    )
    response = client.get(
        f"/v1/artifacts/sha256:{DIGEST}/vsa?image={REPOSITORY}", headers=tokens("read")
    )
    assert response.headers["X-VSA-Result"] == "FAILED"
    predicate = payload(response.json())["predicate"]
    assert predicate["verifiedLevels"] == ["FAILED"]
    assert predicate["inputAttestations"] == []


def test_an_artifact_that_fails_its_policy_gets_a_signed_failed_vsa(
    client: TestClient, tokens: TokenFactory
) -> None:
    response = client.get(
        f"/v1/artifacts/sha256:{DIGEST}/vsa?image={IMAGE}", headers=tokens("read")
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-VSA-Result"] == "FAILED"
    predicate = payload(response.json())["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert predicate["verifiedLevels"] == ["FAILED"]
    assert predicate["inputAttestations"] == []


def test_the_bundle_form_carries_the_key_hint(client: TestClient, tokens: TokenFactory) -> None:
    read = tokens("read")
    bundle = client.get(
        f"/v1/artifacts/sha256:{DIGEST}/vsa",
        params={"image": REPOSITORY, "format": "bundle"},
        headers=read,
    ).json()
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    key_id = client.get("/v1/vsa/public-key", headers=read).json()["keyId"]
    assert bundle["verificationMaterial"]["publicKey"] == {"hint": key_id}
    assert bundle["dsseEnvelope"]["signatures"][0]["keyid"] == key_id


def test_public_key_as_pem(client: TestClient, tokens: TokenFactory) -> None:
    response = client.get("/v1/vsa/public-key?format=pem", headers=tokens("read"))
    assert response.text.startswith("-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize(
    ("path", "params", "status", "code", "message"),
    [
        ("sha256:abc", {}, 400, "invalid_digest", "digest must look like sha256:"),
        (f"sha256:{DIGEST}", {"policy": "nope"}, 404, "policy_not_found", "no ImagePolicy nope"),
        (f"sha256:{DIGEST}", {}, 422, "policy_required", "name the ImagePolicy"),
        (
            f"sha256:{DIGEST}",
            {"image": "docker.io/other/app"},
            422,
            "policy_not_found",
            "0 ImagePolicies select docker.io/other/app",
        ),
        (
            f"sha256:{DIGEST}",
            {"image": f"{REPOSITORY}@sha256:{'0' * 64}"},
            422,
            "digest_mismatch",
            "names digest sha256:000",
        ),
        (f"sha256:{DIGEST}", {"image": "Not An Image"}, 422, "invalid_image", "invalid image"),
        (
            f"sha256:{DIGEST}",
            {"policy": "acme", "image": "ghcr.io/acme/other"},
            422,
            "policy_does_not_select",
            "ImagePolicy acme does not select ghcr.io/acme/other",
        ),
        (
            f"sha256:{DIGEST}",
            {"image": REPOSITORY, "format": "jwt"},
            400,
            "invalid_request",
            "format",
        ),
        (f"sha256:{DIGEST}", {"image": "x" * 600}, 400, "invalid_request", "image"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    client: TestClient,
    tokens: TokenFactory,
    path: str,
    params: dict[str, str],
    status: int,
    code: str,
    message: str,
) -> None:
    response = client.get(f"/v1/artifacts/{path}/vsa", params=params, headers=tokens("read"))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert message in error["message"]


def test_issuing_needs_the_read_scope(client: TestClient, tokens: TokenFactory) -> None:
    assert client.get(f"/v1/artifacts/sha256:{DIGEST}/vsa").status_code == 401
    headers = tokens("upload")
    assert client.get(f"/v1/artifacts/sha256:{DIGEST}/vsa", headers=headers).status_code == 403
    assert client.get("/v1/vsa/public-key", headers=headers).status_code == 403


def test_rotation_publishes_both_keys_and_signs_with_the_new_one(
    client: TestClient, tokens: TokenFactory, app: Any, stack: SigstoreTestStack
) -> None:
    upload(client, tokens, stack.sign_dsse(statement(REPOSITORY, DIGEST), **signer_is_builder()))
    read = tokens("read")
    before = client.get(f"/v1/artifacts/sha256:{DIGEST}/vsa?image={REPOSITORY}", headers=read)
    old_id = before.headers["X-VSA-Key-Id"]
    _, new_id = app.state.vsa_keys.rotate()
    after = client.get(f"/v1/artifacts/sha256:{DIGEST}/vsa?image={REPOSITORY}", headers=read)
    assert after.headers["X-VSA-Key-Id"] == new_id != old_id
    keys = client.get("/v1/vsa/public-key", headers=read).json()
    assert [(k["keyId"], k["active"]) for k in keys["keys"]] == [(new_id, True), (old_id, False)]
    old_pem = keys["keys"][1]["publicKey"].encode()
    old = verify_vsa(
        before.content, Expectations(old_pem, resource_uri=RESOURCE), datetime.now(UTC)
    )
    assert old.ok, old.reason
    assert not verify_vsa(
        after.content, Expectations(old_pem, resource_uri=RESOURCE), datetime.now(UTC)
    ).ok


def test_policy_digest_cli_matches_what_the_vsa_states(
    client: TestClient, tokens: TokenFactory, policy_dir: Path
) -> None:
    response = client.get(
        f"/v1/artifacts/sha256:{DIGEST}/vsa?image={REPOSITORY}", headers=tokens("read")
    )
    stated = payload(response.json())["predicate"]["policy"]["digest"]["sha256"]
    # Comments and layout do not count: the document as loaded does.
    policy_file = policy_dir / "policy.yaml"
    policy_file.write_text(
        "# reviewed\n" + policy_file.read_text().replace("  images:", "  images:  ")
    )
    printed = CliRunner().invoke(cli, ["vsa", "policy-digest", str(policy_file)])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout.strip() == f"sha256:{stated}"


def test_vsa_get_refuses_a_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANT_TOKEN", "t")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["vsa", "get", f"{REPOSITORY}:v1", "-o", "x.json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "has no digest" in result.output
