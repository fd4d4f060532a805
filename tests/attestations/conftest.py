"""Ingest tests trust the project's private Sigstore stack and one release key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import RELEASE_KEY, write_trust
from tests.sigstore_stack import SigstoreTestStack

__all__ = ["RELEASE_KEY", "as_bytes", "statement"]


@pytest.fixture
def policy_dir(tmp_path: Path, stack: SigstoreTestStack) -> Path:
    return write_trust(tmp_path / "policies", stack)


def statement(
    name: str = "app.tar.gz",
    digest: str | None = None,
    *,
    builder: str = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
    "generator_generic_slsa3.yml@refs/tags/v2.0.0",
    repo: str = "https://github.com/acme/app",
    commit: str = "0123456789abcdef0123456789abcdef01234567",
) -> dict[str, Any]:
    digest = digest or hashlib.sha256(name.encode()).hexdigest()
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {
                        "ref": "refs/tags/v1.0.0",
                        "repository": repo,
                        "path": ".github/workflows/release.yml",
                    }
                },
                "resolvedDependencies": [
                    {"uri": f"git+{repo}@refs/tags/v1.0.0", "digest": {"gitCommit": commit}}
                ],
            },
            "runDetails": {"builder": {"id": builder}, "metadata": {"invocationId": "run-1"}},
        },
    }


def as_bytes(bundle: str | dict[str, Any]) -> bytes:
    return bundle.encode() if isinstance(bundle, str) else json.dumps(bundle).encode()
