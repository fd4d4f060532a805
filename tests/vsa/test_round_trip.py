"""Round trip between two real servers: the hub issues a VSA (``provenant vsa get``), it is
verified offline (``provenant vsa verify``), uploaded to a second Provenant with its own
database, and admits a Pod there through a ``vsa:`` requirement. Tampered, foreign-key, wrong
resource, low-level and expired VSAs are refused, each with its reason."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from app.db import Database
from app.migrate import upgrade
from app.vsa.envelope import sign_statement
from app.vsa.keys import VsaKeyring
from tests.admission.helpers import review, with_images
from tests.attestations.conftest import statement
from tests.conftest import PG_ADMIN_URL
from tests.helpers import TokenFactory
from tests.server import REPO, ServerProcess
from tests.sigstore_stack import SigstoreTestStack
from tests.vsa.conftest import (
    ISOLATED_BUILDER,
    PLATFORM_BUILDER,
    REPOSITORY,
    issuer_policies,
    signed_by_workflow,
)

pytestmark = pytest.mark.e2e

VERIFIER = "https://hub.example/vsa"
L3 = hashlib.sha256(b"round-trip-l3").hexdigest()
L2 = hashlib.sha256(b"round-trip-l2").hexdigest()
NONE = hashlib.sha256(b"round-trip-none").hexdigest()


def consumer_policy(name: str, image: str, max_age: str, policy_digest: str) -> str:
    return f"""\
apiVersion: provenant.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: {name}}}
spec:
  images: ["{image}"]
  require:
    - vsa:
        verifierId: {VERIFIER}
        publicKey: {{file: keys/hub.pub}}
        minLevel: SLSA_BUILD_LEVEL_3
        resourceUri: "oci://{{name}}@{{digest}}"
        maxAge: {max_age}
        policyDigest: "sha256:{policy_digest}"
"""


@pytest.fixture
def second_db_url(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[str]:
    """The consumer's own database, on the same backend as the hub's."""
    if db_url.startswith("sqlite"):
        path = tmp_path / "consumer.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"provenant_test_vsa_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def provenant(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def predicate(path: Path) -> dict[str, Any]:
    return json.loads(base64.b64decode(json.loads(path.read_text())["payload"]))["predicate"]


def decision(client: Any, headers: dict[str, str], image: str) -> dict[str, Any]:
    body = review(with_images("pod", [image]), "pod", namespace="apps")
    response = client.post("/k8s/validate", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json()["response"])


def test_a_vsa_issued_by_one_provenant_admits_on_another(
    db_url: str,
    second_db_url: str,
    tmp_path: Path,
    tokens: TokenFactory,
    stack: SigstoreTestStack,
) -> None:
    hub_dir, consumer_dir = tmp_path / "hub", tmp_path / "consumer"
    hub_dir.mkdir()
    consumer_dir.mkdir()
    hub_env = {
        "PROVENANT_VSA_KEY_DIR": str(hub_dir / "vsa-keys"),
        "PROVENANT_VSA_VERIFIER_ID": VERIFIER,
    }
    hub = ServerProcess(db_url, issuer_policies(hub_dir / "policies", stack), hub_dir, env=hub_env)
    consumer_db = Database(second_db_url, pool_size=1)
    consumer_tokens = TokenFactory(consumer_db)
    with hub:
        with hub.client(headers=tokens("upload")) as client:
            # Each provenance signed by the workflow it names as builder: the generator (L3),
            # acme's own reusable workflow (L2).
            for digest, builder in ((L3, ISOLATED_BUILDER), (L2, PLATFORM_BUILDER)):
                bundle = stack.sign_dsse(
                    statement(REPOSITORY, digest, builder=builder), **signed_by_workflow(builder)
                )
                assert client.post("/v1/attestations", content=bundle).status_code == 201
        cli_env = {
            "PROVENANT_SERVER": hub.base_url,
            "PROVENANT_TOKEN": tokens("read")["Authorization"].split()[1],
        }
        got = provenant(
            "vsa",
            "get",
            f"{REPOSITORY}@sha256:{L3}",
            "--policy",
            "acme",
            "-o",
            str(tmp_path / "l3.json"),
            env=cli_env,
        )
        assert got.returncode == 0, got.stderr
        assert "VSA PASSED" in got.stderr
        got = provenant(
            "vsa", "get", f"{REPOSITORY}@sha256:{L2}", "-o", str(tmp_path / "l2.json"), env=cli_env
        )
        assert got.returncode == 0, got.stderr
        # The same evidence, stated for another resource (the consumer's "stale" image).
        got = provenant(
            "vsa",
            "get",
            f"sha256:{L3}",
            "--policy",
            "acme",
            "--resource-uri",
            f"oci://ghcr.io/acme/stale@sha256:{L3}",
            "-o",
            str(tmp_path / "stale.json"),
            env=cli_env,
        )
        assert got.returncode == 0, got.stderr
        with hub.client(headers=tokens("read")) as client:
            pem = client.get("/v1/vsa/public-key?format=pem").text
    (tmp_path / "hub.pub").write_text(pem)
    assert predicate(tmp_path / "l3.json")["verifiedLevels"] == ["SLSA_BUILD_LEVEL_3"]
    assert predicate(tmp_path / "l2.json")["verifiedLevels"] == ["SLSA_BUILD_LEVEL_2"]

    verify = [
        "vsa",
        "verify",
        str(tmp_path / "l3.json"),
        "--public-key",
        str(tmp_path / "hub.pub"),
        "--subject-digest",
        f"sha256:{L3}",
        "--verifier-id",
        VERIFIER,
        "--verified-level",
        "SLSA_BUILD_LEVEL_3",
        "--max-age",
        "1h",
    ]
    checked = provenant(*verify, "--resource-uri", f"oci://{REPOSITORY}@sha256:{L3}")
    assert checked.returncode == 0, checked.stderr
    wrong = provenant(*verify, "--resource-uri", f"oci://{REPOSITORY}@sha256:{L2}")
    assert wrong.returncode == 1
    assert "ErrorMismatchResourceURI" in wrong.stderr

    policy_sha = predicate(tmp_path / "l3.json")["policy"]["digest"]["sha256"]
    policies = consumer_dir / "policies"
    (policies / "keys").mkdir(parents=True)
    (policies / "keys" / "hub.pub").write_text(pem)
    (policies / "policy.yaml").write_text(
        consumer_policy("from-hub", REPOSITORY, "1h", policy_sha)
        + "---\n"
        + consumer_policy("stale", "ghcr.io/acme/stale", "1s", policy_sha)
    )
    consumer = ServerProcess(
        second_db_url,
        policies,
        consumer_dir,
        env={"PROVENANT_VSA_KEY_DIR": str(consumer_dir / "vsa-keys")},
    )
    with consumer:
        upload_env = {
            "PROVENANT_SERVER": consumer.base_url,
            "PROVENANT_TOKEN": consumer_tokens("upload")["Authorization"].split()[1],
        }
        uploaded = provenant(
            "upload", *(str(tmp_path / f"{n}.json") for n in ("l3", "l2", "stale")), env=upload_env
        )
        assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr

        with consumer.client(headers=consumer_tokens("upload")) as client:
            envelope = json.loads((tmp_path / "l3.json").read_text())
            statement_ = json.loads(base64.b64decode(envelope["payload"]))
            statement_["predicate"]["verifiedLevels"] = ["SLSA_BUILD_LEVEL_4"]
            tampered = {
                **envelope,
                "payload": base64.b64encode(json.dumps(statement_).encode()).decode(),
            }
            refused = client.post("/v1/attestations", json=tampered)
            assert refused.status_code == 422
            assert refused.json()["error"]["code"] == "signature_invalid"
            foreign = sign_statement(statement_, VsaKeyring(tmp_path / "stranger").signer())
            refused = client.post("/v1/attestations", json=foreign)
            assert refused.status_code == 422
            assert refused.json()["error"]["code"] == "untrusted_key"

        admission = consumer_tokens("admission")
        time.sleep(1.5)  # the "stale" policy's maxAge is 1s
        with consumer.client() as client:
            admitted = decision(client, admission, f"{REPOSITORY}@sha256:{L3}")
            assert admitted["allowed"], admitted
            low = decision(client, admission, f"{REPOSITORY}@sha256:{L2}")
            assert not low["allowed"]
            assert "lack SLSA BUILD level 3 or higher (found level 2)" in low["status"]["message"]
            missing = decision(client, admission, f"{REPOSITORY}@sha256:{NONE}")
            assert not missing["allowed"]
            assert (
                "no attestation of type https://slsa.dev/verification_summary/v1"
                in (missing["status"]["message"])
            )
            stale = decision(client, admission, f"ghcr.io/acme/stale@sha256:{L3}")
            assert not stale["allowed"]
            message = stale["status"]["message"]
            assert "VSA expired: verified at" in message and "older than maxAge 1s" in message
            # The VSA about the app image is for another resource than this one.
            assert (
                f"resource oci://{REPOSITORY}@sha256:{L3} is not oci://ghcr.io/acme/stale"
                in message
            )
    consumer_db.dispose()
