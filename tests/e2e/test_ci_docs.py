"""docs/ci.md as a CI job follows it: the curl upload block, run exactly as written, against the
real server; and no document tells anyone to install a package by a name we do not own."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.attestations.conftest import statement
from tests.helpers import TokenFactory, write_trust
from tests.server import ServerProcess
from tests.sigstore_stack import SigstoreTestStack

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def marked_block(path: Path, marker: str) -> str:
    """The fenced block right after ``<!-- e2e: marker -->``, as a reader copies it."""
    text = path.read_text()
    match = re.search(rf"<!-- e2e: {re.escape(marker)} -->\n```\w*\n(.*?)```", text, re.S)
    assert match, f"{path.name} has no block marked {marker}"
    return match.group(1)


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_upload_block_as_written(
    db_url: str, tmp_path: Path, tokens: TokenFactory, stack: SigstoreTestStack
) -> None:
    block = marked_block(REPO / "docs/ci.md", "curl-upload")
    policy_dir = write_trust(tmp_path / "policies", stack)
    good = tmp_path / "app.sigstore.json"
    good.write_text(stack.sign_dsse(statement("curl")))
    bad = tmp_path / "bad.sigstore.json"
    bad.write_text(stack.sign_dsse(statement("curl-bad"), tamper="bad_signature"))
    token = tokens("upload")["Authorization"].split()[1]
    with ServerProcess(db_url, policy_dir, tmp_path) as server:

        def run(file: Path) -> subprocess.CompletedProcess[str]:
            env = {
                **os.environ,
                "PROVENANT_SERVER": server.base_url,
                "PROVENANT_TOKEN": token,
                "FILE": str(file),
            }
            return subprocess.run(
                ["bash", "-e", "-c", block],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp_path,
            )

        ok = run(good)
        assert ok.returncode == 0, ok.stderr
        assert '"status":"created"' in ok.stdout.replace(" ", "")
        rejected = run(bad)
        # The job fails, and the log shows the server's reason.
        assert rejected.returncode != 0
        assert "signature_invalid" in rejected.stdout


def test_docs_install_nothing_by_a_name_we_do_not_own() -> None:
    """Every `pip install` in the docs installs by hash or a local file, never `provenant` (an
    unrelated project holds that name on PyPI) nor any other bare name from an index."""
    for path in DOCS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "pip install" not in line:
                continue
            where = f"{path.name}:{number}: {line.strip()}"
            installs = line.split("pip install", 1)[1]
            assert not re.search(r"\bprovenant\b(?![-_.\w])", installs), where
            assert "--require-hashes" in line or re.search(r"\./\S+\.whl", line), where
