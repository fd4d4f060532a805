"""The webhook as kube-apiserver reaches it: the real server process over HTTPS, client
certificates, and several replicas sharing one PostgreSQL database."""

from __future__ import annotations

import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.admission.cache import attestations_changed
from app.attestations.models import Attestation
from app.db import Database
from tests.admission.certs import CertificateAuthority
from tests.admission.conftest import attestation
from tests.admission.helpers import APP, INIT, SIDECAR, digest_of, load, review, with_images
from tests.helpers import TokenFactory
from tests.server import ServerProcess
from tests.sigstore_stack import SigstoreTestStack

pytestmark = pytest.mark.e2e

UNATTESTED = f"ghcr.io/acme/unattested@sha256:{digest_of('unattested')}"


def answer_of(client: httpx.Client, body: dict[str, Any], headers: dict[str, str]) -> dict:
    response = client.post("/k8s/validate", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["response"]["uid"] == body["request"]["uid"]
    return dict(response.json()["response"])


def upload(client: httpx.Client, stack: SigstoreTestStack, headers: dict, image: str) -> str:
    response = client.post("/v1/attestations", content=attestation(stack, image), headers=headers)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def test_https_representative_decisions(
    db_url: str,
    policy_dir: Path,
    tmp_path: Path,
    tokens: TokenFactory,
    stack: SigstoreTestStack,
) -> None:
    webhook, uploader, reader = tokens("admission"), tokens("upload"), tokens("read")
    with ServerProcess(db_url, policy_dir, tmp_path, tls=True) as server, server.client() as c:
        for image in (APP, SIDECAR, INIT):
            upload(c, stack, uploader, image)
        # Allowed: a Deployment whose every container list is attested.
        allowed = answer_of(c, review(load("deployment")), webhook)
        assert allowed["allowed"] is True
        # Denied, with the image, the rule and the decision to look up.
        denied = answer_of(c, review(with_images("cronjob", [UNATTESTED], [INIT])), webhook)
        assert denied["allowed"] is False and denied["status"]["code"] == 403
        decision_id = denied["auditAnnotations"]["decision-id"]
        assert UNATTESTED in denied["status"]["message"]
        assert (
            "no attestation of type https://slsa.dev/provenance/v1" in denied["status"]["message"]
        )
        detail = c.get(f"/v1/decisions/{decision_id}", headers=reader).json()
        assert detail["outcome"] == "denied" and detail["kind"] == "batch/v1/CronJob"
        # A time with its zone, on SQLite too (it stores none).
        assert datetime.fromisoformat(detail["time"]).utcoffset() == timedelta(0)
        # Warn, dry run, excluded namespace, break-glass, unknown kind, DELETE.
        canary = f"ghcr.io/canary/app@sha256:{digest_of('canary')}"
        assert answer_of(c, review(with_images("pod", [canary])), webhook)["warnings"]
        dry = answer_of(c, review(with_images("pod", [UNATTESTED]), dry_run=True), webhook)
        assert dry["allowed"] is False
        dry_id = dry["auditAnnotations"]["decision-id"]
        assert c.get(f"/v1/decisions/{dry_id}", headers=reader).json()["dry_run"] is True
        excluded = review(with_images("pod", ["nginx"]), namespace="kube-system")
        assert answer_of(c, excluded, webhook)["auditAnnotations"]["outcome"] == "excluded"
        glass = with_images(
            "statefulset", [UNATTESTED], annotations={"provenant.dev/break-glass": "INC-7"}
        )
        assert answer_of(c, review(glass), webhook)["auditAnnotations"]["outcome"] == "break-glass"
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
        unknown = answer_of(c, review(service, gvk=("", "v1", "Service", "services")), webhook)
        assert unknown["allowed"] is True and unknown["warnings"]
        delete = review(None, "pod", operation="DELETE", old=load("pod"))
        assert answer_of(c, delete, webhook)["allowed"] is True
        # Malformed review and credentials.
        bad = c.post("/k8s/validate", content=b"{", headers=webhook)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed_review"
        assert c.post("/k8s/validate", json=review(load("pod"))).status_code == 401
        wrong = c.post("/k8s/validate", json=review(load("pod")), headers=tokens("read"))
        assert wrong.status_code == 403


def _client_with_cert(server: ServerProcess, cert: tuple[Path, Path] | None) -> httpx.Client:
    assert server.tls_files is not None
    context = ssl.create_default_context(cafile=str(server.tls_files[0]))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return httpx.Client(base_url=server.base_url, verify=context, timeout=30)


def test_kube_apiserver_client_certificate_authenticates(
    db_url: str, policy_dir: Path, tmp_path: Path, tokens: TokenFactory, db: Database
) -> None:
    ca = CertificateAuthority("provenant-webhook-clients")
    ca_file = ca.write(tmp_path / "client-ca.crt")
    apiserver = ca.issue_client("kube-apiserver", tmp_path)
    stranger = CertificateAuthority("someone-else").issue_client("intruder", tmp_path)
    env = {"PROVENANT_CLIENT_CA_FILE": str(ca_file)}
    body = review(with_images("pod", [UNATTESTED]))
    with ServerProcess(db_url, policy_dir, tmp_path, tls=True, env=env) as server:
        with _client_with_cert(server, apiserver) as c:
            answer = answer_of(c, body, {})
            assert answer["allowed"] is False
            reader = tokens("read")
            decision_id = answer["auditAnnotations"]["decision-id"]
            detail = c.get(f"/v1/decisions/{decision_id}", headers=reader).json()
            assert detail["caller"] == "x509:CN=kube-apiserver,O=Provenant"
            # A certificate grants the admission scope only.
            assert c.get(f"/v1/decisions/{decision_id}").status_code == 401
        with _client_with_cert(server, None) as c:
            missing = c.post("/k8s/validate", json=body)
            assert missing.status_code == 401
            assert "PROVENANT_CLIENT_CA_FILE" in missing.json()["error"]["message"]
            assert answer_of(c, body, tokens("admission"))["allowed"] is False  # tokens still work
        with _client_with_cert(server, stranger) as c, pytest.raises(httpx.TransportError):
            c.post("/k8s/validate", json=body)  # the handshake refuses it


def test_without_a_client_ca_certificates_are_not_asked_for(
    db_url: str, policy_dir: Path, tmp_path: Path
) -> None:
    cert = CertificateAuthority("ca").issue_client("kube-apiserver", tmp_path)
    with ServerProcess(db_url, policy_dir, tmp_path, tls=True) as server:
        with _client_with_cert(server, cert) as c:
            assert c.post("/k8s/validate", json=review(load("pod"))).status_code == 401


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_replicas_see_uploads_and_revocations_within_a_second(
    db_url: str,
    policy_dir: Path,
    tmp_path: Path,
    tokens: TokenFactory,
    db: Database,
    stack: SigstoreTestStack,
) -> None:
    webhook, uploader = tokens("admission"), tokens("upload")
    image = f"ghcr.io/acme/replicated@sha256:{digest_of('replicated')}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        ServerProcess(db_url, policy_dir, tmp_path / "a") as a,
        ServerProcess(db_url, policy_dir, tmp_path / "b") as b,
        a.client() as client_a,
        b.client() as client_b,
    ):
        body = review(with_images("pod", [image]))
        for _ in range(2):  # the second answer comes from B's cache
            assert answer_of(client_b, body, webhook)["allowed"] is False
        attestation_id = upload(client_a, stack, uploader, image)
        acknowledged = time.monotonic()
        assert _until(client_b, body, webhook, allowed=True) - acknowledged < 1.0

        # Revocation (its endpoint belongs to the audit issue): flag and signal in one
        # transaction, as that endpoint will.
        for _ in range(2):
            assert answer_of(client_b, body, webhook)["allowed"] is True
        with db.session() as session:
            session.execute(
                update(Attestation)
                .where(Attestation.id == attestation_id)
                .values(revoked_at=datetime.now(UTC), revoked_reason="compromised builder")
            )
            attestations_changed(session)
        acknowledged = time.monotonic()
        assert _until(client_b, body, webhook, allowed=False) - acknowledged < 1.0
        assert _until(client_a, body, webhook, allowed=False) - acknowledged < 1.0


def _until(client: httpx.Client, body: dict, headers: dict, *, allowed: bool) -> float:
    """When the answer first became ``allowed`` (gives up after 5 s)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body = {**body, "request": {**body["request"], "uid": f"{time.monotonic_ns()}"}}
        if answer_of(client, body, headers)["allowed"] is allowed:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"still not allowed={allowed} after 5 s")
