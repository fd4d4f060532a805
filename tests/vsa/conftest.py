"""An issuing Provenant: trusts the test Sigstore stack; one ImagePolicy asks for provenance by
a GitHub reusable-workflow builder, which (as for every ``slsa:`` requirement) must be the
workflow that signed it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import write_trust
from tests.registry.tools import LOCAL_REGISTRIES
from tests.sigstore_stack import DEFAULT_IDENTITY, DEFAULT_ISSUER, SigstoreTestStack

REPOSITORY = "ghcr.io/acme/app"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_generic_slsa3.yml"
)
# An isolated builder (slsa-verifier trusts it): provenance it signs itself is Build L3.
ISOLATED_BUILDER = f"{GENERATOR}@refs/tags/v2.0.0"
# acme's own reusable build workflow: hosted and bound to its signer, but not one slsa-verifier
# trusts as isolated, so Build L2.
PLATFORM_BUILDER = (
    "https://github.com/acme/build-platform/.github/workflows/build.yml@refs/tags/v1.0.0"
)
# The prefix admits both; the binding does the pinning: a GitHub workflow builder counts only
# when it is the workflow that signed (Build Signer URI), at the ref the provenance claims.
ISSUER_POLICY = f"""\
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: acme}}
spec:
  images: ["{REPOSITORY}"]
  authorities:
    - name: github
      keyless:
        trustRoot: test-stack
        identities:
          - issuer: {DEFAULT_ISSUER}
            subjectRegExp: '^https://github\\.com/.+$'
  require:
    - predicateType: https://slsa.dev/provenance/v1
      slsa: {{builderId: {{prefix: "https://github.com/"}}}}
"""


def issuer_policies(path: Path, stack: SigstoreTestStack) -> Path:
    write_trust(path, stack)
    (path / "policy.yaml").write_text(ISSUER_POLICY)
    return path


@pytest.fixture
def policy_dir(tmp_path: Path, stack: SigstoreTestStack) -> Path:
    return issuer_policies(tmp_path / "policies", stack)


@pytest.fixture
def app(db_url: str, policy_dir: Path, tmp_path: Path):
    from app.main import create_app
    from app.settings import Settings

    return create_app(
        Settings(
            database_url=db_url,
            policy_dir=policy_dir,
            audit_key_file=tmp_path / "audit-key.pem",
            admission_recorder="thread",
            vsa_key_dir=tmp_path / "vsa-keys",
            vsa_verifier_id="https://hub.example/vsa",
        )
    )


def signed_by_workflow(builder: str) -> dict[str, Any]:
    """``sign_dsse`` arguments for the keyless identity GitHub gives reusable workflow
    ``builder`` called by acme/app's release workflow: SAN and Build Signer URI name the
    reusable workflow, Build Config URI the caller."""
    return {
        "identity": builder,
        "extensions": {"buildSignerURI": builder, "buildConfigURI": DEFAULT_IDENTITY},
    }


def signer_is_builder() -> dict[str, Any]:
    """Signed by slsa-github-generator's own workflow, the builder it claims (Build L3)."""
    return signed_by_workflow(ISOLATED_BUILDER)


@pytest.fixture(autouse=True)
def _local_registries_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers and CLIs started here (vsa push, fetch on miss) reach loopback test registries."""
    monkeypatch.setenv("PROVENANT_REGISTRY_ALLOWED", LOCAL_REGISTRIES)
