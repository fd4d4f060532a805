"""POST /v1/attestations/{id}/revoke (admin, reason required)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.db import Database
from tests.attestations.conftest import statement
from tests.helpers import TokenFactory
from tests.sigstore_stack import SigstoreTestStack


def _upload(client: TestClient, stack: SigstoreTestStack, tokens: TokenFactory) -> str:
    response = client.post(
        "/v1/attestations", content=stack.sign_dsse(statement()), headers=tokens("upload")
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_revoke_records_reason_and_event(
    client: TestClient, stack: SigstoreTestStack, tokens: TokenFactory, db: Database
) -> None:
    attestation_id = _upload(client, stack, tokens)
    admin = tokens("admin", name="security")
    response = client.post(
        f"/v1/attestations/{attestation_id}/revoke",
        json={"reason": "signing key leaked in incident 42"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revoked"] is True
    assert body["revoked_reason"] == "signing key leaked in incident 42"
    first_time = body["revoked_at"]

    again = client.post(
        f"/v1/attestations/{attestation_id}/revoke", json={"reason": "again"}, headers=admin
    )
    assert again.json()["revoked_at"] == first_time  # the first revocation stands
    with db.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.type == "attestation.revoked")).all()
    assert len(events) == 1
    assert events[0].actor == "security"
    assert events[0].payload["reason"] == "signing key leaked in incident 42"
    listed = client.get(f"/v1/attestations/{attestation_id}", headers=tokens("read")).json()
    assert listed["revoked"] is True


def test_revoke_needs_admin_a_reason_and_an_attestation(
    client: TestClient, stack: SigstoreTestStack, tokens: TokenFactory
) -> None:
    attestation_id = _upload(client, stack, tokens)
    url = f"/v1/attestations/{attestation_id}/revoke"
    assert client.post(url, json={"reason": "x"}, headers=tokens("read")).status_code == 403
    admin = tokens("admin")
    missing = client.post(url, json={}, headers=admin)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "invalid_request"
    assert client.post(url, json={"reason": "   "}, headers=admin).status_code == 400
    assert client.post(url, content=b"not json", headers=admin).status_code == 400
    unknown = client.post(
        "/v1/attestations/" + "0" * 64 + "/revoke", json={"reason": "x"}, headers=admin
    )
    assert unknown.status_code == 404
