"""A database outage is a 503 with Retry-After in the error shape, never a 500, and admission
refuses what it cannot record (issue 11). The outage here is the driver's error injected at
the cursor, on both databases; tests/e2e/test_database_outage.py cuts a real PostgreSQL off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from app.db import Database
from tests.admission.conftest import attestation
from tests.admission.helpers import APP, digest_of, review, with_images
from tests.admission.test_validate import decisions
from tests.helpers import TokenFactory
from tests.sigstore_stack import SigstoreTestStack


@contextmanager
def outage(app: FastAPI) -> Iterator[None]:
    """Every statement of the app's engine fails as psycopg reports a dropped server."""
    engine = app.state.db.engine

    def fail(*_args: object) -> None:
        raise OperationalError(
            "SELECT 1", {}, Exception("server closed the connection unexpectedly")
        )

    event.listen(engine, "before_cursor_execute", fail)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", fail)


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "2"
    error = response.json()["error"]
    assert error["code"] == "database_unavailable"
    assert "retry" in error["message"]


def test_queries_uploads_and_token_checks_are_503_during_an_outage_and_work_after(
    client: TestClient,
    app: FastAPI,
    tokens: TokenFactory,
    stack: SigstoreTestStack,
) -> None:
    reader, uploader, webhook = tokens("read"), tokens("upload"), tokens("admission")
    query = {"subject_digest": f"sha256:{digest_of('app')}"}
    upload = attestation(stack, APP)
    with outage(app):
        # Tokens never seen before: checking them needs the database.
        assert_unavailable(client.get("/v1/attestations", params=query, headers=reader))
        assert_unavailable(client.post("/v1/attestations", content=upload, headers=uploader))
        body = review(with_images("pod", [APP]))
        assert_unavailable(client.post("/k8s/validate", json=body, headers=webhook))
        assert client.get("/readyz").status_code == 503
    # Recovered by itself.
    assert client.get("/v1/attestations", params=query, headers=reader).status_code == 200
    assert client.post("/v1/attestations", content=upload, headers=uploader).status_code == 201
    assert client.get("/readyz").status_code == 200


def test_admission_refuses_what_it_cannot_record_without_a_500(
    client: TestClient, app: FastAPI, db: Database, attest, webhook: dict
) -> None:
    attest(APP)
    allowed = client.post("/k8s/validate", json=review(with_images("pod", [APP])), headers=webhook)
    assert allowed.json()["response"]["allowed"] is True  # the token is now cached
    recorded = len(decisions(db))
    app.state.admission_cache.clear()
    with outage(app):
        for images in ([APP], [f"ghcr.io/acme/other@sha256:{digest_of('other')}"]):
            app.state.admission_index.expire()  # its read fails too
            response = client.post(
                "/k8s/validate", json=review(with_images("pod", images)), headers=webhook
            )
            assert response.status_code == 200, response.text
            answer = response.json()["response"]
            assert answer["allowed"] is False
            assert "decision not recorded" in answer["status"]["message"]
    assert len(decisions(db)) == recorded
    after = client.post("/k8s/validate", json=review(with_images("pod", [APP])), headers=webhook)
    assert after.json()["response"]["allowed"] is True
