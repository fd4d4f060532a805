"""Admission fixtures: a policy directory trusting the private Sigstore stack and the release key,
with policies in each mode, and real uploads (key-signed DSSE envelopes) to decide from."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.attestations.conftest import statement
from tests.helpers import RELEASE_KEY, TokenFactory, write_trust
from tests.sigstore_stack import SigstoreTestStack

EXEMPTION_EXPIRES = (datetime.now(UTC) + timedelta(days=5)).date()


def _policy(name: str, images: str, extra: str = "") -> str:
    """An ImagePolicy asking for release-key-signed SLSA v1 provenance; ``extra`` is spec-level
    YAML (two-space indented)."""
    return (
        "apiVersion: provenant.dev/v1alpha1\n"
        "kind: ImagePolicy\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f'  images: ["{images}"]\n'
        f"{extra}"
        "  authorities:\n"
        "    - name: release-key\n"
        "      key: {file: keys/release.pub}\n"
        "  require:\n"
        "    - name: release-provenance\n"
        "      predicateType: https://slsa.dev/provenance/v1\n"
    )


POLICIES = "---\n".join(
    [
        _policy("acme-release", "ghcr.io/acme/**"),
        _policy("canary", "ghcr.io/canary/**", "  mode: warn\n"),
        _policy("shadow", "ghcr.io/shadow/**", "  mode: audit\n"),
        _policy("lenient", "ghcr.io/lenient/**", "  onError: allow\n"),
        textwrap.dedent(
            f"""\
            apiVersion: provenant.dev/v1alpha1
            kind: PolicyConfig
            spec:
              noMatch: deny
              tagOnly: deny
              excludedNamespaces: [kube-system]
              exemptions:
                - images: ["registry.k8s.io/pause*"]
                  reason: pause containers come with the cluster
                  expires: {EXEMPTION_EXPIRES.isoformat()}
              breakGlass: {{enabled: true, namespaces: ["default", "prod-*"]}}
            """
        ),
    ]
)


def write_policy_dir(path: Path, stack: SigstoreTestStack, policies: str = POLICIES) -> Path:
    write_trust(path, stack)
    (path / "policies.yaml").write_text(policies)
    return path


@pytest.fixture
def policy_dir(tmp_path: Path, stack: SigstoreTestStack) -> Path:
    return write_policy_dir(tmp_path / "policies", stack)


@pytest.fixture
def uploader(tokens: TokenFactory) -> dict[str, str]:
    return tokens("upload", name="ci")


@pytest.fixture
def webhook(tokens: TokenFactory) -> dict[str, str]:
    return tokens("admission", name="kube-apiserver")


@pytest.fixture
def reader(tokens: TokenFactory) -> dict[str, str]:
    return tokens("read", name="auditor")


def attestation(stack: SigstoreTestStack, image: str) -> bytes:
    """A release-key-signed SLSA v1 provenance envelope whose subject is ``image``'s digest."""
    name, _, digest = image.partition("@sha256:")
    return stack.sign_bare_dsse(statement(name, digest), RELEASE_KEY).encode()


def upload(client: Any, stack: SigstoreTestStack, headers: dict[str, str], image: str) -> str:
    response = client.post("/v1/attestations", content=attestation(stack, image), headers=headers)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


@pytest.fixture
def attest(client: TestClient, stack: SigstoreTestStack, uploader: dict[str, str]):
    """``attest(image)`` uploads a passing attestation for ``image`` (name@sha256:digest)."""

    def attest(image: str) -> str:
        return upload(client, stack, uploader, image)

    return attest
