"""Ingest against the real server process: concurrency, and the CI upload CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.attestations.models import Attestation
from app.db import Database
from tests.attestations.conftest import statement
from tests.helpers import TokenFactory, write_trust
from tests.server import ServerProcess
from tests.sigstore_stack import SigstoreTestStack

pytestmark = pytest.mark.e2e


@pytest.fixture
def policy_dir(tmp_path: Path, stack: SigstoreTestStack) -> Path:
    return write_trust(tmp_path / "policies", stack)


def test_concurrent_identical_uploads_store_one_record(
    db_url: str,
    policy_dir: Path,
    tmp_path: Path,
    tokens: TokenFactory,
    db: Database,
    stack: SigstoreTestStack,
) -> None:
    bundle = stack.sign_dsse(statement()).encode()
    headers = tokens("upload")
    with ServerProcess(db_url, policy_dir, tmp_path, tls=True) as server:

        def post(_: int) -> tuple[int, str]:
            with server.client() as c:
                r = c.post("/v1/attestations", content=bundle, headers=headers)
                return r.status_code, r.json()["id"]

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(post, range(8)))
    assert {status for status, _ in results} <= {200, 201}
    assert len({i for _, i in results}) == 1
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Attestation)) == 1


def test_upload_cli_against_the_server(
    db_url: str,
    policy_dir: Path,
    tmp_path: Path,
    tokens: TokenFactory,
    stack: SigstoreTestStack,
) -> None:
    good = tmp_path / "good.sigstore.json"
    good.write_text(stack.sign_dsse(statement("a")))
    other = tmp_path / "other.sigstore.json"
    other.write_text(stack.sign_dsse(statement("b")))
    bad = tmp_path / "bad.sigstore.json"
    bad.write_text(stack.sign_dsse(statement("c"), tamper="bad_signature"))
    token = tokens("upload")["Authorization"].split()[1]
    with ServerProcess(db_url, policy_dir, tmp_path) as server:
        env = {**os.environ, "PROVENANT_SERVER": server.base_url, "PROVENANT_TOKEN": token}

        def upload(*files: Path) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "app.cli", "upload", *map(str, files)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        ok = upload(good, other)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "created" in ok.stdout
        rejected = upload(good, bad)
        assert rejected.returncode == 1
        assert "signature_invalid" in rejected.stdout
        assert "existing" in rejected.stdout
    # The server is gone: the CLI retries, then gives up with a clear message.
    gone = subprocess.run(
        [sys.executable, "-m", "app.cli", "upload", "--retries", "2", str(good)],
        env={**env, "PROVENANT_SERVER": server.base_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gone.returncode == 1
    assert "gave up after 2 attempts" in gone.stdout


def test_verify_cli_offline(policy_dir: Path, tmp_path: Path, stack: SigstoreTestStack) -> None:
    good = tmp_path / "good.json"
    good.write_text(stack.sign_dsse(statement()))
    bad = tmp_path / "bad.json"
    bad.write_text(stack.sign_dsse(statement(), tamper="bad_sct"))
    env = {**os.environ, "PROVENANT_POLICY_DIR": str(policy_dir)}

    def verify(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", "verify", str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = verify(good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert '"verified": true' in ok.stdout
    failed = verify(bad)
    assert failed.returncode == 1
    assert "sct_invalid" in failed.stdout


def test_ingest_api_over_the_socket(
    db_url: str,
    policy_dir: Path,
    tmp_path: Path,
    tokens: TokenFactory,
    stack: SigstoreTestStack,
) -> None:
    """The main ingest flows through the real server process and a real socket."""
    up, read = tokens("upload", name="ci"), tokens("read", name="auditor")
    st = statement("served.tar.gz")
    bundle = stack.sign_dsse(st).encode()
    digest = st["subject"][0]["digest"]["sha256"]
    env = {"PROVENANT_MAX_UPLOAD_BYTES": str(64 * 1024)}
    with ServerProcess(db_url, policy_dir, tmp_path, env=env) as server, server.client() as c:
        created = c.post("/v1/attestations", content=bundle, headers=up)
        assert created.status_code == 201, created.text
        attestation_id = created.json()["id"]
        assert c.get(f"/v1/attestations/{attestation_id}/raw", headers=read).content == bundle
        listed = c.get(
            "/v1/attestations", params={"subject_digest": f"sha256:{digest}"}, headers=read
        ).json()
        assert [a["id"] for a in listed["items"]] == [attestation_id]
        assert c.post("/v1/attestations", content=bundle, headers=up).status_code == 200

        tampered = stack.sign_dsse(statement("x"), tamper="bad_checkpoint").encode()
        rejected = c.post("/v1/attestations", content=tampered, headers=up)
        assert rejected.status_code == 422
        assert rejected.json()["error"]["code"] == "tlog_proof_invalid"

        lines = "\n".join([stack.sign_dsse(statement("y")), "not json"]).encode()
        mixed = c.post(
            "/v1/attestations", content=lines, headers={**up, "Content-Type": "application/jsonl"}
        )
        assert mixed.status_code == 207
        assert [r["status"] for r in mixed.json()["results"]] == ["created", "rejected"]

        huge = c.post("/v1/attestations", content=b"x" * (65 * 1024), headers=up)
        assert huge.status_code == 413
        assert huge.json()["error"]["code"] == "payload_too_large"
        assert c.post("/v1/attestations", content=bundle).status_code == 401
        assert c.post("/v1/attestations", content=bundle, headers=read).status_code == 403
    assert "Traceback" not in server.log()
