"""Fetch on miss and tag resolution at admission, and POST /v1/registry/pull, against the real
registry: the first admission of a digest reads the registry, the second is a plain lookup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.admission.helpers import review, with_images
from tests.conftest import make_app
from tests.helpers import TokenFactory, write_trust
from tests.registry import cosign_format as cf
from tests.registry.tools import LocalRegistry
from tests.sigstore_stack import DEFAULT_IDENTITY, DEFAULT_ISSUER, SigstoreTestStack

REPO = "team/app"


def _policies(host: str, *, fetch: bool = True, on_error: str = "deny", tag_only: str = "deny"):
    source = "  source: {registry: {fetchOnMiss: true, timeout: 3s}}\n" if fetch else ""
    return (
        "apiVersion: provenant.dev/v1alpha1\n"
        "kind: ImagePolicy\n"
        "metadata: {name: from-registry}\n"
        "spec:\n"
        f'  images: ["{host}/**"]\n'
        f"  onError: {on_error}\n"
        f"{source}"
        "  authorities:\n"
        "    - name: ci\n"
        "      keyless:\n"
        "        trustRoot: test-stack\n"
        f'        identities: [{{issuer: "{DEFAULT_ISSUER}", subject: "{DEFAULT_IDENTITY}"}}]\n'
        "  require:\n"
        "    - predicateType: https://slsa.dev/provenance/v1\n"
        "---\n"
        "apiVersion: provenant.dev/v1alpha1\n"
        "kind: PolicyConfig\n"
        f"spec: {{noMatch: deny, tagOnly: {tag_only}}}\n"
    )


@pytest.fixture
def signed(registry: LocalRegistry, stack: SigstoreTestStack) -> str:
    digest = registry.push_image(REPO, "v1")
    layer = cf.attestation_layer(
        registry, stack, REPO, cf.provenance(f"{registry.host}/{REPO}", digest)
    )
    cf.push_attestations(registry, REPO, digest, [layer])
    return digest


def _client(db_url: str, policy_dir: Path, stack: SigstoreTestStack, policies: str) -> Any:
    write_trust(policy_dir, stack)
    (policy_dir / "policies.yaml").write_text(policies)
    return TestClient(make_app(db_url, policy_dir), raise_server_exceptions=False)


@pytest.fixture
def webhook(tokens: TokenFactory) -> dict[str, str]:
    return tokens("admission", name="kube-apiserver")


def _decide(client: Any, headers: dict[str, str], images: list[str]) -> dict[str, Any]:
    response = client.post(
        "/k8s/validate", json=review(with_images("pod", images)), headers=headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["response"])


def test_a_cold_miss_is_fetched_verified_and_then_a_plain_lookup(
    registry: LocalRegistry,
    signed: str,
    db_url: str,
    policy_dir: Path,
    stack: SigstoreTestStack,
    webhook: dict[str, str],
) -> None:
    image = f"{registry.host}/{REPO}@{signed}"
    with _client(db_url, policy_dir, stack, _policies(registry.host)) as client:
        counter = client.app.state.registry.client

        first = _decide(client, webhook, [image])
        after_first = counter.requests
        second = _decide(client, webhook, [image])

        assert first["allowed"] is True, first
        assert second["allowed"] is True
        assert after_first > 0 and counter.requests == after_first  # no registry round


def test_without_opting_in_admission_stays_off_the_network(
    registry: LocalRegistry,
    signed: str,
    db_url: str,
    policy_dir: Path,
    stack: SigstoreTestStack,
    webhook: dict[str, str],
) -> None:
    image = f"{registry.host}/{REPO}@{signed}"
    with _client(db_url, policy_dir, stack, _policies(registry.host, fetch=False)) as client:
        answer = _decide(client, webhook, [image])

        assert answer["allowed"] is False
        assert client.app.state.registry.client.requests == 0


@pytest.mark.parametrize("on_error", ["deny", "allow"])
def test_a_registry_failure_is_an_error_told_apart_from_a_policy_failure(
    on_error: str,
    registry: LocalRegistry,
    signed: str,
    db_url: str,
    policy_dir: Path,
    stack: SigstoreTestStack,
    webhook: dict[str, str],
) -> None:
    image = f"{registry.host}/{REPO}@{signed}"
    registry.stop()
    policies = _policies(registry.host, on_error=on_error)
    with _client(db_url, policy_dir, stack, policies) as client:
        answer = _decide(client, webhook, [image])

    assert answer["allowed"] is (on_error == "allow")
    message = answer.get("status", {}).get("message", "") + str(answer.get("warnings", ""))
    assert "registry error, not a policy failure" in message, answer


def test_a_tag_only_image_is_resolved_and_its_digest_judged(
    registry: LocalRegistry,
    signed: str,
    db_url: str,
    policy_dir: Path,
    stack: SigstoreTestStack,
    webhook: dict[str, str],
) -> None:
    policies = _policies(registry.host, tag_only="resolve")
    with _client(db_url, policy_dir, stack, policies) as client:
        answer = _decide(client, webhook, [f"{registry.host}/{REPO}:v1"])
        decision = client.get(
            f"/v1/decisions/{answer['auditAnnotations']['decision-id']}",
            headers=TokenFactory(client.app.state.db)("read"),
        ).json()

    assert answer["allowed"] is True, answer
    assert "resolved through the registry" in str(decision)
    assert signed in str(decision)


def test_pull_over_the_api_needs_the_upload_scope(
    registry: LocalRegistry,
    signed: str,
    db_url: str,
    policy_dir: Path,
    stack: SigstoreTestStack,
    tokens: TokenFactory,
) -> None:
    with _client(db_url, policy_dir, stack, _policies(registry.host)) as client:
        image = f"{registry.host}/{REPO}:v1"
        forbidden = client.post("/v1/registry/pull", json={"image": image}, headers=tokens("read"))
        bad = client.post(
            "/v1/registry/pull", json={"image": "Not An Image"}, headers=tokens("upload")
        )
        ok = client.post("/v1/registry/pull", json={"image": image}, headers=tokens("upload"))
        missing = client.post(
            "/v1/registry/pull", json={"image": f"{registry.host}/x:nope"}, headers=tokens("upload")
        )

    assert forbidden.status_code == 403
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_reference")
    assert ok.status_code == 200 and ok.json()["created"] == 1
    assert ok.json()["items"][0]["scheme"] == "cosign-att"
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "registry_not_found")


def test_mutation_is_off_by_default_and_pins_tags_when_on(
    registry: LocalRegistry,
    signed: str,
    db_url: str,
    policy_dir: Path,
    stack: SigstoreTestStack,
    webhook: dict[str, str],
) -> None:
    import base64
    import json

    from app.settings import Settings

    body = review(
        with_images(
            "deployment", [f"{registry.host}/{REPO}:v1", f"{registry.host}/{REPO}@{signed}"]
        )
    )
    with _client(db_url, policy_dir, stack, _policies(registry.host)) as client:
        off = client.post("/k8s/mutate", json=body, headers=webhook)
    assert (off.status_code, off.json()["error"]["code"]) == (404, "not_found")

    from app.main import create_app

    settings = Settings(
        database_url=db_url,
        policy_dir=policy_dir,
        registry_mutate=True,
        audit_key_file=policy_dir.parent / "audit-key.pem",
        admission_recorder="thread",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answer = client.post("/k8s/mutate", json=body, headers=webhook).json()["response"]

    assert answer["allowed"] is True and answer["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(answer["patch"]))
    assert patch == [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/image",
            "value": f"{registry.host}/{REPO}:v1@{signed}",
        }
    ]


def test_a_tag_the_registry_cannot_resolve_is_denied_as_tag_only_with_the_reason(
    registry: LocalRegistry,
    signed: str,
    db_url: str,
    policy_dir: Path,
    stack: SigstoreTestStack,
    webhook: dict[str, str],
) -> None:
    policies = _policies(registry.host, tag_only="resolve")
    with _client(db_url, policy_dir, stack, policies) as client:
        answer = _decide(client, webhook, [f"{registry.host}/{REPO}:no-such-tag"])

    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert "tagOnly: resolve" in message and "registry_not_found" in message, message
