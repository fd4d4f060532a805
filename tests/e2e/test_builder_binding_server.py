"""A builder id is only as good as its signer, through the real server.

Anyone who can run a GitHub workflow can write a trusted builder's id into a statement and sign
it with their own identity. Each forgery here is a real bundle from the project's Sigstore test
stack, uploaded and evaluated under a policy whose authority accepts any GitHub workflow (so
only the builder binding stands between the forgery and admission), next to the genuine one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.attestations.conftest import statement
from tests.helpers import TokenFactory, write_trust
from tests.server import ServerProcess
from tests.sigstore_stack import SigstoreTestStack
from tests.sigstore_stack.stack import github_actions_extensions

pytestmark = pytest.mark.e2e

BCR = "https://github.com/bazel-contrib/publish-to-bcr/.github/workflows/publish.yaml"
GENERATOR = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
TRW = "https://github.com/slsa-framework/example-trw/.github/workflows/builder_slsa3.yml"
RUNNER = "https://github.com/actions/runner/github-hosted"
BYOB = "https://github.com/slsa-framework/slsa-github-generator/delegator-generic@v0"

POLICY = f"""\
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: bcr}}
spec:
  images: ["example.test/bcr/*"]
  authorities:
    - name: any-github-workflow
      keyless:
        trustRoot: test-stack
        identities: [{{issuer: https://token.actions.githubusercontent.com, subjectRegExp: '.+'}}]
  require:
    - predicateType: https://slsa.dev/provenance/v1
      slsa: {{builderId: "{BCR}@refs/tags/v0.0.1"}}
---
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: runner}}
spec:
  images: ["example.test/runner/*"]
  authorities:
    - name: any-github-workflow
      keyless:
        trustRoot: test-stack
        identities: [{{issuer: https://token.actions.githubusercontent.com, subjectRegExp: '.+'}}]
  require:
    - predicateType: https://slsa.dev/provenance/v1
      slsa: {{builderId: {RUNNER}, sourceUri: github.com/acme/app}}
---
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: byob}}
spec:
  images: ["example.test/byob/*"]
  authorities:
    - name: any-github-workflow
      keyless:
        trustRoot: test-stack
        identities: [{{issuer: https://token.actions.githubusercontent.com, subjectRegExp: '.+'}}]
  require:
    - predicateType: https://slsa.dev/provenance/v1
      slsa: {{builderId: "{TRW}@refs/tags/v1.0.0"}}
"""


def _workflow(repository: str, workflow: str, ref: str) -> tuple[str, dict[str, str]]:
    """The SAN and Fulcio extensions of a GitHub Actions certificate for that workflow."""
    extensions = github_actions_extensions(repository=repository, workflow=workflow, ref=ref)
    return f"https://github.com/{repository}/{workflow}@{ref}", extensions


def _signed(
    stack: SigstoreTestStack,
    name: str,
    builder: str,
    signer: tuple[str, dict[str, str]],
    *,
    build_type: str | None = None,
) -> tuple[bytes, str]:
    digest = hashlib.sha256(name.encode()).hexdigest()
    body: dict[str, Any] = statement(name, digest, builder=builder)
    if build_type:
        body["predicate"]["buildDefinition"]["buildType"] = build_type
    identity, extensions = signer
    bundle = stack.sign_dsse(body, identity=identity, extensions=extensions)
    return bundle.encode(), digest


def _decide(client: httpx.Client, headers: dict[str, str], bundle: bytes, image: str) -> Any:
    uploaded = client.post("/v1/attestations", content=bundle, headers=headers)
    assert uploaded.status_code == 201, uploaded.text
    answer = client.post("/v1/evaluate", json={"image": image}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_statement_claiming_a_trusted_builder_signed_by_another_workflow_is_denied(
    db_url: str, tmp_path: Path, tokens: TokenFactory, stack: SigstoreTestStack
) -> None:
    policy_dir = write_trust(tmp_path / "policies", stack)
    (policy_dir / "builders.yaml").write_text(POLICY)
    publish = _workflow(
        "bazel-contrib/publish-to-bcr", ".github/workflows/publish.yaml", "refs/tags/v0.0.1"
    )
    attacker = _workflow(
        "evil/aa-test", ".github/workflows/malicious_attestation.yaml", "refs/heads/main"
    )
    release = _workflow("acme/app", ".github/workflows/release.yml", "refs/tags/v1.0.0")
    delegator = _workflow(
        "slsa-framework/slsa-github-generator",
        ".github/workflows/delegator_generic_slsa3.yml",
        "refs/tags/v2.0.0",
    )
    headers = tokens("upload", "read")
    server = ServerProcess(db_url, policy_dir, tmp_path)
    # A shared 2-core machine can take longer than the default 30 s to start a server.
    with server.start(timeout=120), server.client() as client:
        # A reusable-workflow builder: the certificate must be that workflow, at that ref.
        genuine, digest = _signed(stack, "module.bazel", f"{BCR}@refs/tags/v0.0.1", publish)
        result = _decide(client, headers, genuine, f"example.test/bcr/a@sha256:{digest}")
        assert result["allowed"], result["images"][0]["reason"]
        forged, digest = _signed(stack, "forged.bazel", f"{BCR}@refs/tags/v0.0.1", attacker)
        result = _decide(client, headers, forged, f"example.test/bcr/a@sha256:{digest}")
        reason = result["images"][0]["reason"]
        assert not result["allowed"]
        assert f"builder {BCR}@refs/tags/v0.0.1 is not the signing workflow" in reason
        assert "evil/aa-test/.github/workflows/malicious_attestation.yaml" in reason

        # The hosted runner: the signer is the calling workflow the provenance names.
        genuine, digest = _signed(stack, "runner-ok", RUNNER, release)
        result = _decide(client, headers, genuine, f"example.test/runner/a@sha256:{digest}")
        assert result["allowed"], result["images"][0]["reason"]
        forged, digest = _signed(stack, "runner-forged", RUNNER, attacker)
        result = _decide(client, headers, forged, f"example.test/runner/a@sha256:{digest}")
        reason = result["images"][0]["reason"]
        assert not result["allowed"]
        assert "acme/app/.github/workflows/release.yml@refs/tags/v1.0.0 ran on" in reason
        assert "but the signer is the workflow https://github.com/evil/aa-test/" in reason

        # A BYOB builder: only slsa-github-generator's delegator, at a release, speaks for it.
        genuine, digest = _signed(
            stack, "byob-ok", f"{TRW}@refs/tags/v1.0.0", delegator, build_type=BYOB
        )
        result = _decide(client, headers, genuine, f"example.test/byob/a@sha256:{digest}")
        assert result["allowed"], result["images"][0]["reason"]
        forged, digest = _signed(
            stack, "byob-forged", f"{TRW}@refs/tags/v1.0.0", attacker, build_type=BYOB
        )
        result = _decide(client, headers, forged, f"example.test/byob/a@sha256:{digest}")
        reason = result["images"][0]["reason"]
        assert not result["allowed"]
        assert "claims to run under slsa-github-generator's delegator" in reason
        assert "malicious_attestation.yaml" in reason
