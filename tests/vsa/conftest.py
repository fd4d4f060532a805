"""An issuing Provenant: trusts the test Sigstore stack; one ImagePolicy pins the builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import write_trust
from tests.registry.tools import LOCAL_REGISTRIES
from tests.sigstore_stack import DEFAULT_ISSUER, SigstoreTestStack

REPOSITORY = "ghcr.io/acme/app"
GENERATOR = (
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_generic_slsa3.yml"
)
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
      slsa: {{builderId: "{GENERATOR}"}}
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


def signer_is_builder() -> dict[str, Any]:
    """Keyless signing identity of the builder's own reusable workflow (a SLSA L3 builder)."""
    identity = f"{GENERATOR}@refs/tags/v2.0.0"
    return {"identity": identity, "extensions": {"buildSignerURI": identity}}


@pytest.fixture(autouse=True)
def _local_registries_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers and CLIs started here (vsa push, fetch on miss) reach loopback test registries."""
    monkeypatch.setenv("PROVENANT_REGISTRY_ALLOWED", LOCAL_REGISTRIES)
