"""GET /v1/artifacts/{digest} and the blast radius GET /v1/artifacts?..., from real uploads and
decisions made through /k8s/validate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.admission.conftest import write_policy_dir
from tests.admission.helpers import APP, INIT, SIDECAR, digest_of, review, with_images
from tests.attestations.conftest import RELEASE_KEY, statement
from tests.helpers import TokenFactory
from tests.sigstore_stack import SigstoreTestStack

REPO = "https://github.com/acme/app"
OTHER_REPO = "https://github.com/acme/other"
C1 = "1" * 40
C2 = "2" * 40
B1 = "https://github.com/acme/.github/workflows/release.yml@refs/heads/main"
B2 = "https://ci.example.com/builders/legacy"
UNATTESTED = f"ghcr.io/acme/unattested@sha256:{digest_of('unattested')}"


@pytest.fixture(scope="module")
def stack() -> SigstoreTestStack:
    return SigstoreTestStack.get()


@pytest.fixture
def policy_dir(tmp_path: Path, stack: SigstoreTestStack) -> Path:
    return write_policy_dir(tmp_path / "policies", stack)


def sha(image: str) -> str:
    return "sha256:" + image.rsplit("@sha256:", 1)[1]


def attest(
    client: TestClient, stack: SigstoreTestStack, headers: dict[str, str], image: str, **kw: str
) -> str:
    name, _, digest = image.partition("@sha256:")
    envelope = stack.sign_bare_dsse(statement(name, digest, **kw), RELEASE_KEY)
    response = client.post("/v1/attestations", content=envelope.encode(), headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def admit(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/k8s/validate", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json()["response"])


@pytest.fixture
def world(client: TestClient, stack: SigstoreTestStack, tokens: TokenFactory) -> dict[str, str]:
    """APP and SIDECAR built from REPO at C1 by B1; INIT from OTHER_REPO at C2 by B2. APP ran
    in two workloads (and one dry run), SIDECAR in one; INIT was denied once."""
    up = tokens("upload")
    made = {
        "app": attest(client, stack, up, APP, repo=REPO, commit=C1, builder=B1),
        "sidecar": attest(client, stack, up, SIDECAR, repo=REPO, commit=C1, builder=B1),
        "init": attest(client, stack, up, INIT, repo=OTHER_REPO, commit=C2, builder=B2),
    }
    hook = tokens("admission")
    assert admit(client, hook, review(with_images("deployment", [APP, SIDECAR])))["allowed"]
    assert admit(client, hook, review(with_images("pod", [APP]), namespace="prod-a"))["allowed"]
    dry = review(with_images("deployment", [APP]), namespace="staging", dry_run=True)
    assert admit(client, hook, dry)["allowed"]
    denied = review(with_images("pod", [INIT, UNATTESTED]), namespace="prod-b")
    assert not admit(client, hook, denied)["allowed"]
    return made


def test_artifact_provenance_and_admission_history(
    client: TestClient, world: dict[str, str], tokens: TokenFactory
) -> None:
    reader = tokens("read")
    response = client.get(f"/v1/artifacts/{sha(APP)}", headers=reader)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["digest"] == sha(APP)
    [attestation] = body["attestations"]
    assert attestation["id"] == world["app"]
    assert attestation["subject_names"] == ["ghcr.io/acme/app"]
    assert attestation["builder_id"] == B1
    assert attestation["source"]["commit"] == C1
    assert attestation["signer"]["kind"] == "key" and attestation["signers"]
    assert {"uri": f"git+{REPO}@refs/tags/v1.0.0", "digest": f"gitCommit:{C1}"} in attestation[
        "materials"
    ]
    assert body["builders"] == [B1]
    assert [s["commit"] for s in body["sources"]] == [C1]
    # Where it ran: the dry run admitted nothing, so it is history but not a workload.
    workloads = [(w["namespace"], w["kind"], w["name"]) for w in body["workloads"]]
    assert workloads == [("prod-a", "v1/Pod", "app"), ("default", "apps/v1/Deployment", "web")]
    assert all(w["last_allowed"] and w["admitted"] == 1 for w in body["workloads"])
    history = body["admissions"]["items"]
    assert [(h["namespace"], h["dry_run"]) for h in history] == [
        ("staging", True), ("prod-a", False), ("default", False),
    ]  # fmt: skip
    page = client.get(f"/v1/artifacts/{sha(APP)}", params={"limit": 2}, headers=reader).json()
    rest = client.get(
        f"/v1/artifacts/{sha(APP)}",
        params={"limit": 2, "cursor": page["admissions"]["next_cursor"]},
        headers=reader,
    ).json()
    assert [h["id"] for h in page["admissions"]["items"] + rest["admissions"]["items"]] == [
        h["id"] for h in history
    ]


def test_denied_and_unattested_artifacts(
    client: TestClient, world: dict[str, str], tokens: TokenFactory
) -> None:
    reader = tokens("read")
    init = client.get(f"/v1/artifacts/{sha(INIT)}", headers=reader).json()
    [workload] = init["workloads"]
    assert (workload["namespace"], workload["last_allowed"], workload["denied"]) == (
        "prod-b", False, 1,
    )  # fmt: skip
    # Never attested, but asked for: the admission history still answers.
    unattested = client.get(f"/v1/artifacts/{sha(UNATTESTED)}", headers=reader).json()
    assert unattested["attestations"] == [] and len(unattested["admissions"]["items"]) == 1
    missing = client.get("/v1/artifacts/sha256:" + "0" * 64, headers=reader)
    assert missing.status_code == 404
    bad = client.get("/v1/artifacts/sha256:nothex", headers=reader)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"


def blast(client: TestClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = client.get("/v1/artifacts", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_blast_radius(client: TestClient, world: dict[str, str], tokens: TokenFactory) -> None:
    reader = tokens("read")
    built_from_c1 = sorted([sha(APP), sha(SIDECAR)])
    by_commit = blast(client, reader, source_commit=C1)
    assert [a["digest"] for a in by_commit] == built_from_c1
    workloads = {
        a["digest"]: {(w["namespace"], w["name"]) for w in a["workloads"]} for a in by_commit
    }
    assert workloads == {
        sha(APP): {("prod-a", "app"), ("default", "web")},
        sha(SIDECAR): {("default", "web")},
    }
    assert [a["digest"] for a in blast(client, reader, source_repo=REPO)] == built_from_c1
    assert [a["digest"] for a in blast(client, reader, builder_id=B1)] == built_from_c1
    assert [a["digest"] for a in blast(client, reader, material_digest=f"gitCommit:{C1}")] == (
        built_from_c1
    )
    [init] = blast(client, reader, builder_id=B2)
    assert init["digest"] == sha(INIT)
    assert init["attestations"][0]["id"] == world["init"]
    assert init["names"] == ["ghcr.io/acme/init"]
    assert blast(client, reader, source_repo=REPO, builder_id=B2) == []
    first = client.get(
        "/v1/artifacts", params={"source_commit": C1, "limit": 1}, headers=reader
    ).json()
    second = client.get(
        "/v1/artifacts",
        params={"source_commit": C1, "limit": 1, "cursor": first["next_cursor"]},
        headers=reader,
    ).json()
    assert [a["digest"] for a in first["items"] + second["items"]] == built_from_c1


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({}, "source_repo"),
        ({"material_digest": "gitCommit"}, "material_digest"),
        ({"builder_id": "x", "cursor": "garbage"}, "cursor"),
    ],
)
def test_blast_radius_bad_parameters(
    client: TestClient, tokens: TokenFactory, params: dict[str, str], parameter: str
) -> None:
    response = client.get("/v1/artifacts", params=params, headers=tokens("read"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["parameter"] == parameter
    assert client.get("/v1/artifacts", params={"builder_id": "x"}).status_code == 401
