"""``provenant vsa push`` end to end: a running Provenant issues the VSA of an image in a real
registry (distribution 2.8, no referrers API), the CLI attaches it as an OCI referrer, a second
Provenant pulls it with ``provenant registry pull`` into its own database and admits the image
by a ``vsa:`` requirement."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.db import Database
from tests.attestations.conftest import statement
from tests.helpers import TokenFactory
from tests.registry.tools import BUNDLE_V03, OCI_INDEX, OCI_MANIFEST, local_registry
from tests.server import ServerProcess
from tests.sigstore_stack import SigstoreTestStack
from tests.vsa.conftest import REPOSITORY, issuer_policies, signer_is_builder
from tests.vsa.test_round_trip import (  # noqa: F401 - second_db_url is a fixture
    VERIFIER,
    consumer_policy,
    decision,
    provenant,
    second_db_url,
)

pytestmark = pytest.mark.e2e
REPO = "team/app"


def pushed_bundles(base: str, digest: str) -> list[dict[str, Any]]:
    """What a registry client finds at the referrers tag: the bundles attached to ``digest``."""
    accept = {"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"}
    with httpx.Client(base_url=base, headers=accept, timeout=10) as http:
        index = http.get(f"/v2/{REPO}/manifests/{digest.replace(':', '-')}").json()
        bundles = []
        for descriptor in index["manifests"]:
            assert descriptor["artifactType"] == BUNDLE_V03
            manifest = http.get(f"/v2/{REPO}/manifests/{descriptor['digest']}").json()
            assert manifest["subject"]["digest"] == digest
            layer = manifest["layers"][0]
            assert layer["mediaType"] == BUNDLE_V03
            bundles.append(http.get(f"/v2/{REPO}/blobs/{layer['digest']}").json())
    return bundles


def test_a_pushed_vsa_is_pulled_by_another_provenant_and_admits_there(
    db_url: str,
    second_db_url: str,  # noqa: F811
    tmp_path: Path,
    tokens: TokenFactory,
    stack: SigstoreTestStack,
) -> None:
    hub_dir, consumer_dir = tmp_path / "hub", tmp_path / "consumer"
    hub_dir.mkdir()
    consumer_dir.mkdir()
    with local_registry(tmp_path / "registry") as registry:
        name = f"{registry.host}/{REPO}"
        digest = registry.push_image(REPO, "v1")
        bare = registry.push_image(REPO, "v2", seed="no evidence")
        policies = issuer_policies(hub_dir / "policies", stack)
        policy_file = policies / "policy.yaml"
        policy_file.write_text(policy_file.read_text().replace(REPOSITORY, name))
        hub = ServerProcess(
            db_url,
            policies,
            hub_dir,
            env={
                "PROVENANT_VSA_KEY_DIR": str(hub_dir / "vsa-keys"),
                "PROVENANT_VSA_VERIFIER_ID": VERIFIER,
            },
        )
        with hub:
            with hub.client(headers=tokens("upload")) as client:
                bundle = stack.sign_dsse(
                    statement(name, digest.split(":")[1]), **signer_is_builder()
                )
                assert client.post("/v1/attestations", content=bundle).status_code == 201
                pem = client.get("/v1/vsa/public-key?format=pem", headers=tokens("read")).text
            cli_env = {
                "PROVENANT_SERVER": hub.base_url,
                "PROVENANT_TOKEN": tokens("read")["Authorization"].split()[1],
            }
            pushed = provenant("vsa", "push", f"{name}:v1", "--policy", "acme", env=cli_env)
            assert pushed.returncode == 0, pushed.stderr
            assert f"referrers tag {digest.replace(':', '-')}" in pushed.stderr
            assert "attached VSA PASSED" in pushed.stderr

            # A VSA about one image is not attached to another.
            got = provenant(
                "vsa", "get", f"{name}@{digest}", "-o", str(tmp_path / "v1.json"), env=cli_env
            )
            assert got.returncode == 0, got.stderr
            wrong = provenant(
                "vsa", "push", f"{name}@{bare}", "--file", str(tmp_path / "v1.json"), env=cli_env
            )
            assert wrong.returncode == 2
            assert f"do not include the image {bare}" in wrong.stderr

        [attached] = pushed_bundles(registry.url, digest)
        assert attached["verificationMaterial"]["publicKey"]["hint"]
        payload = json.loads(base64.b64decode(attached["dsseEnvelope"]["payload"]))
        assert payload["predicate"]["resourceUri"] == f"oci://{name}@{digest}"
        policy_sha = payload["predicate"]["policy"]["digest"]["sha256"]

        consumer_policies = consumer_dir / "policies"
        (consumer_policies / "keys").mkdir(parents=True)
        (consumer_policies / "keys" / "hub.pub").write_text(pem)
        (consumer_policies / "policy.yaml").write_text(
            consumer_policy("from-hub", name, "1h", policy_sha)
        )
        pull_env = {
            "PROVENANT_DATABASE_URL": second_db_url,
            "PROVENANT_POLICY_DIR": str(consumer_policies),
            "PROVENANT_AUDIT_KEY_FILE": str(consumer_dir / "audit-key.pem"),
        }
        pulled = provenant("registry", "pull", "--json", f"{name}:v1", env=pull_env)
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        result = json.loads(pulled.stdout)
        assert result["referrers_api"] is False
        [item] = result["items"]
        assert (item["scheme"], item["status"]) == ("referrers-tag", "created")
        assert item["predicate_type"] == "https://slsa.dev/verification_summary/v1"

    consumer_db = Database(second_db_url, pool_size=1)
    consumer = ServerProcess(
        second_db_url,
        consumer_policies,
        consumer_dir,
        env={"PROVENANT_VSA_KEY_DIR": str(consumer_dir / "vsa-keys")},
    )
    with consumer, consumer.client() as client:
        admission = TokenFactory(consumer_db)("admission")
        admitted = decision(client, admission, f"{name}@{digest}")
        assert admitted["allowed"], admitted
        refused = decision(client, admission, f"{name}@{bare}")
        assert not refused["allowed"]
        assert "verification_summary/v1" in refused["status"]["message"]
    consumer_db.dispose()
