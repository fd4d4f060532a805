"""The query commands (`provenant attestations|decisions|artifacts|evaluate|simulate`) against
the real server, from a directory with no database in it, as CI or an auditor runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.attestations.conftest import statement
from tests.helpers import TokenFactory, write_trust
from tests.server import ServerProcess
from tests.sigstore_stack import SigstoreTestStack

pytestmark = pytest.mark.e2e

POLICY = """\
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {name: signed}
spec:
  images: ["registry.example/**"]
  mode: enforce
  authorities:
    - name: release-key
      key: {file: keys/release.pub}
  require:
    - name: signature
      authorities: [release-key]
"""


def test_query_commands_against_the_server(
    db_url: str, tmp_path: Path, tokens: TokenFactory, stack: SigstoreTestStack
) -> None:
    policy_dir = write_trust(tmp_path / "policies", stack)
    st = statement("query.tar.gz", repo="https://github.com/acme/app")
    digest = st["subject"][0]["digest"]["sha256"]
    # A long path: without a terminal, output is one line per item, never wrapped at 80.
    bundle = tmp_path / ("a-rather-long-directory-name-" * 4) / "query.sigstore.json"
    bundle.parent.mkdir()
    bundle.write_text(stack.sign_dsse(st))
    token = tokens("upload", "read", "admin")["Authorization"].split()[1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proposed = tmp_path / "proposed"
    proposed.mkdir()
    (proposed / "policies.yaml").write_text(POLICY)
    with ServerProcess(db_url, policy_dir, tmp_path) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANT_")}
        env |= {"PROVENANT_SERVER": server.base_url, "PROVENANT_TOKEN": token}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "app.cli", *args],
                env=env,
                cwd=elsewhere,
                capture_output=True,
                text=True,
                timeout=120,
            )

        plain = cli("upload", str(bundle))
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.splitlines() == [plain.stdout.strip()]
        assert plain.stdout.startswith(f"{bundle}: created ")
        uploaded = cli("upload", "--output", "json", str(bundle))
        assert uploaded.returncode == 0, uploaded.stderr
        [report] = json.loads(uploaded.stdout)
        attestation_id = report["response"]["id"]

        listed = cli("attestations")
        assert listed.returncode == 0, listed.stderr
        header, *rows = listed.stdout.splitlines()
        assert header.split("\t")[0] == "id"
        assert len(rows) == 1 and rows[0].startswith(attestation_id + "\t")
        assert "https://github.com/acme/app" in rows[0]

        as_json = cli("attestations", "--source-repo", "github.com/acme/app", "-o", "json")
        assert [a["id"] for a in json.loads(as_json.stdout)] == [attestation_id]

        one = cli("artifacts", f"sha256:{digest}")
        assert one.returncode == 0, one.stderr
        assert attestation_id in one.stdout
        blast = cli("artifacts", "--source-repo", "github.com/acme/app")
        assert f"sha256:{digest}" in blast.stdout, blast.stdout + blast.stderr

        image = f"registry.example/app@sha256:{digest}"
        evaluated = cli("evaluate", image, "--output", "json")
        assert evaluated.returncode in (0, 1), evaluated.stderr
        assert json.loads(evaluated.stdout)["images"][0]["image"] == image

        decisions = cli("decisions")
        assert decisions.returncode == 0, decisions.stderr
        assert "no decisions" in decisions.stderr

        simulated = cli("simulate", str(proposed))
        assert simulated.returncode == 0, simulated.stderr
        assert "replayed\t0" in simulated.stdout

        bad = cli("attestations", "--subject-digest", "sha256:nothex")
        assert bad.returncode == 1
        assert "invalid_digest" in bad.stderr and "Traceback" not in bad.stderr
    assert list(elsewhere.iterdir()) == []  # no database made where the commands ran
