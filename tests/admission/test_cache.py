"""The decision cache: what it keeps, and that uploads, revocations and policy reloads reach it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from app.admission.cache import (
    DecisionCache,
    attestations_changed,
    cacheable,
    read_index_version,
)
from app.admission.models import AttestationIndexVersion
from app.attestations.models import Attestation
from app.db import Database
from app.policy.results import ImageResult, PolicyResult
from tests.admission.helpers import APP, digest_of, review, with_images
from tests.admission.test_validate import validate

KEY = (APP, "default", "hash")


def _result(status: str = "passed", digest: str | None = "sha256:aa") -> ImageResult:
    policy = PolicyResult("p", "p.yaml", "enforce", "deny", status, status == "passed", "", ())
    return ImageResult(APP, APP, digest, status == "passed", "enforce", "", policies=(policy,))


def test_only_definite_evaluations_that_read_attestations_are_cacheable() -> None:
    assert cacheable(_result())
    assert cacheable(_result("failed"))
    assert not cacheable(_result("error"))  # may be transient
    assert not cacheable(_result(digest=None))  # tag-only: no attestation was read
    exempted = ImageResult(APP, APP, "sha256:aa", True, "enforce", "exempted", exemption="x")
    assert not cacheable(exempted)  # its expiry must be seen at once


def test_entries_answer_only_for_their_version() -> None:
    cache = DecisionCache(ttl=60)
    cache.put(1, KEY, _result())
    assert cache.get(1, KEY) is not None
    assert cache.get(2, KEY) is None
    assert cache.get(None, KEY) is None
    cache.put(2, KEY, _result("failed"))
    assert cache.get(1, KEY) is None  # a new version drops the old one's entries
    assert cache.get(2, KEY).allowed is False  # type: ignore[union-attr]
    cache.put(None, KEY, _result())  # no version row: nothing is kept
    assert len(cache) == 1


def test_ttl_and_disabling(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("app.admission.cache.time.monotonic", lambda: clock[0])
    cache = DecisionCache(ttl=30)
    cache.put(1, KEY, _result())
    clock[0] += 29
    assert cache.get(1, KEY) is not None
    clock[0] += 2
    assert cache.get(1, KEY) is None
    off = DecisionCache(ttl=0)
    off.put(1, KEY, _result())
    assert off.get(1, KEY) is None and len(off) == 0


def test_a_full_cache_starts_over() -> None:
    cache = DecisionCache(ttl=60, max_entries=2)
    for n in range(3):
        cache.put(1, (f"image{n}", None, "h"), _result())
    assert len(cache) == 1


def test_attestations_changed_bumps_the_version_when_the_transaction_commits(db: Database) -> None:
    with db.session() as session:
        before = read_index_version(session)
    with db.session() as session:
        attestations_changed(session)
        attestations_changed(session)  # once per transaction is enough
        assert read_index_version(session) == before  # not yet: at commit
    with db.session() as session:
        after = read_index_version(session)
    assert after != before
    with db.session() as session:
        attestations_changed(session)
    with db.session() as session:
        assert read_index_version(session) == after + 1


def test_a_rolled_back_change_does_not_bump(db: Database) -> None:
    with db.session() as session:
        before = read_index_version(session)
    with pytest.raises(RuntimeError), db.session() as session:
        attestations_changed(session)
        raise RuntimeError("upload failed")
    with db.sessions() as session:  # one session, two transactions
        with session.begin():
            attestations_changed(session)
            session.rollback()
        with session.begin():
            pass  # the rolled-back change must not bump here
        assert read_index_version(session) == before


def test_a_missing_version_row_is_recreated_at_an_unguessable_value(db: Database) -> None:
    with db.session() as session:
        session.execute(delete(AttestationIndexVersion))
    with db.session() as session:
        assert read_index_version(session) == 0
        attestations_changed(session)
    with db.session() as session:
        assert read_index_version(session) > 1


# -- through the app -----------------------------------------------------------------------------

NEW = f"ghcr.io/acme/new@sha256:{digest_of('new')}"


def test_repeated_decisions_come_from_the_cache(
    client: TestClient, app: FastAPI, attest, webhook: dict
) -> None:
    attest(APP)
    cache: DecisionCache = app.state.admission_cache
    body = review(with_images("pod", [APP]))
    validate(client, body, webhook)
    hits = cache.hits
    assert validate(client, body, webhook)["allowed"] is True
    assert cache.hits == hits + 1


def test_an_upload_changes_a_cached_denial_at_once(
    client: TestClient, app: FastAPI, attest, webhook: dict
) -> None:
    body = review(with_images("pod", [NEW]))
    assert validate(client, body, webhook)["allowed"] is False
    assert len(app.state.admission_cache) == 1  # the denial is cached...
    attest(NEW)
    assert validate(client, body, webhook)["allowed"] is True  # ...and the upload reached it


def test_a_revocation_changes_a_cached_admission_once_acknowledged(
    client: TestClient, db: Database, attest, webhook: dict, reader: dict
) -> None:
    attestation_id = attest(NEW)
    body = review(with_images("pod", [NEW]))
    assert validate(client, body, webhook)["allowed"] is True
    assert validate(client, body, webhook)["allowed"] is True  # cached
    revoke(db, attestation_id)
    answer = validate(client, body, webhook)
    assert answer["allowed"] is False
    decision = f"/v1/decisions/{answer['auditAnnotations']['decision-id']}"
    assert "revoked: key leaked" in client.get(decision, headers=reader).text


def revoke(db: Database, attestation_id: str) -> None:
    """What the revocation endpoint (audit issue) will do: flag and signal in one transaction."""
    with db.session() as session:
        session.execute(
            update(Attestation)
            .where(Attestation.id == attestation_id)
            .values(revoked_at=datetime.now(UTC), revoked_reason="key leaked")
        )
        attestations_changed(session)


def test_a_policy_reload_clears_the_cache_and_applies_at_once(
    client: TestClient, app: FastAPI, policy_dir: Path, attest, tokens, webhook: dict
) -> None:
    attest(APP)
    body = review(with_images("pod", [APP]))
    first = validate(client, body, webhook)
    assert first["allowed"] is True
    policies = policy_dir / "policies.yaml"
    policies.write_text(
        policies.read_text().replace(
            "predicateType: https://slsa.dev/provenance/v1",
            "predicateType: https://slsa.dev/provenance/v0.2",
            1,
        )
    )
    reload = client.post("/v1/policies:reload", headers=tokens("admin"))
    assert reload.status_code == 200, reload.text
    assert len(app.state.admission_cache) == 0
    second = validate(client, body, webhook)
    assert second["allowed"] is False
    assert (
        second["auditAnnotations"]["policy-set-hash"]
        != first["auditAnnotations"]["policy-set-hash"]
    )


def test_decisions_share_cached_images_but_not_across_namespaces(
    client: TestClient, app: FastAPI, attest, webhook: dict
) -> None:
    attest(APP)
    cache: DecisionCache = app.state.admission_cache
    validate(client, review(with_images("pod", [APP]), namespace="a"), webhook)
    validate(client, review(with_images("deployment", [APP]), namespace="b"), webhook)
    assert len(cache) == 2
    hits = cache.hits
    validate(client, review(with_images("job", [APP]), namespace="a"), webhook)
    assert cache.hits == hits + 1


def test_cached_results_keep_the_reference_as_written(
    client: TestClient, app: FastAPI, attest, webhook: dict
) -> None:
    # Two spellings of one digest are two entries: policies and CEL see the name as written.
    attest(APP)
    docker_style = APP.replace("ghcr.io/acme/app", "ghcr.io/acme/app:v1")
    validate(client, review(with_images("pod", [APP])), webhook)
    answer = validate(client, review(with_images("pod", [docker_style])), webhook)
    assert answer["allowed"] is True
    assert len(app.state.admission_cache) == 2


def test_the_revocation_endpoint_reaches_the_cache(
    client: TestClient, app: FastAPI, attest, tokens, webhook: dict
) -> None:
    if "/v1/attestations/{attestation_id}/revoke" not in app.openapi()["paths"]:
        pytest.skip("POST /v1/attestations/{id}/revoke is not in this build")
    attestation_id = attest(NEW)
    body = review(with_images("pod", [NEW]))
    for _ in range(2):
        assert validate(client, body, webhook)["allowed"] is True
    revoked = client.post(
        f"/v1/attestations/{attestation_id}/revoke",
        json={"reason": "builder compromised"},
        headers=tokens("admin"),
    )
    assert revoked.status_code == 200, revoked.text
    assert validate(client, body, webhook)["allowed"] is False


def test_a_revocation_is_acknowledged_only_once_no_replica_can_trust_an_older_version(
    client: TestClient, app: FastAPI, attest, tokens
) -> None:
    attestation_id = attest(NEW)
    started = time.monotonic()
    revoked = client.post(
        f"/v1/attestations/{attestation_id}/revoke",
        json={"reason": "builder compromised"},
        headers=tokens("admin"),
    )
    assert revoked.status_code == 200, revoked.text
    assert time.monotonic() - started >= app.state.settings.admission_index_max_age
