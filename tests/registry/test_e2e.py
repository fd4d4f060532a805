"""The real server process and the CLI, against the real registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TokenFactory, write_trust
from tests.registry import cosign_format as cf
from tests.registry.tools import LocalRegistry
from tests.server import ServerProcess
from tests.sigstore_stack import SigstoreTestStack

pytestmark = pytest.mark.e2e
REPO = "team/app"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "registry", "pull", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pull_through_the_server_and_the_cli(
    registry: LocalRegistry,
    db_url: str,
    policy_dir: Path,
    tmp_path: Path,
    tokens: TokenFactory,
    stack: SigstoreTestStack,
) -> None:
    write_trust(policy_dir, stack)
    digest = registry.push_image(REPO, "v1")
    name = f"{registry.host}/{REPO}"
    good = cf.signature_layer(registry, stack, REPO, cf.simple_signing_payload(name, digest))
    cf.push_signatures(registry, REPO, digest, [good])
    layer = cf.attestation_layer(registry, stack, REPO, cf.provenance(name, digest))
    cf.push_attestations(registry, REPO, digest, [layer])
    env = {
        **os.environ,
        "PROVENANT_DATABASE_URL": db_url,
        "PROVENANT_POLICY_DIR": str(policy_dir),
        "PROVENANT_AUDIT_KEY_FILE": str(tmp_path / "audit-key.pem"),
    }

    local = _cli(env, f"{name}:v1")

    assert local.returncode == 0, local.stdout + local.stderr
    assert "2 found: 2 verified and stored" in local.stdout
    assert "cosign-sig" in local.stdout and "cosign-att" in local.stdout

    token = tokens("upload")["Authorization"].split()[1]
    (tmp_path / "server").mkdir()
    with ServerProcess(db_url, policy_dir, tmp_path / "server") as server:
        with server.client() as client:
            answer = client.post(
                "/v1/registry/pull",
                json={"image": f"{name}@{digest}"},
                headers={"Authorization": f"Bearer {token}"},
            )
        remote = _cli(
            {**env, "PROVENANT_SERVER": server.base_url, "PROVENANT_TOKEN": token},
            "--remote",
            "--json",
            f"{name}:v1",
        )

    assert answer.status_code == 200, answer.text
    assert answer.json()["existing"] == 2
    assert remote.returncode == 0, remote.stdout + remote.stderr
    assert json.loads(remote.stdout)["existing"] == 2

    # A signature copied from another image: listed as rejected, exit status 1.
    other = registry.push_image(REPO, "v2")
    stray = cf.signature_layer(registry, stack, REPO, cf.simple_signing_payload(name, digest))
    cf.push_signatures(registry, REPO, other, [stray])
    rejected = _cli(env, f"{name}:v2")
    assert rejected.returncode == 1
    assert "image_digest_mismatch" in rejected.stdout

    missing = _cli(env, f"{name}:nope")
    assert missing.returncode == 2 and "registry_not_found" in missing.stderr
