"""Rows to StoredAttestation, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from app.attestations.models import Attestation, AttestationSubject
from app.db import Database
from app.policy.lookup import db_lookup, signer_from_json
from tests.policy.helpers import DIGEST, OTHER_DIGEST, Key, keyless


def row(
    number: int, signers: list[dict[str, object]], digests: list[str], **kwargs: object
) -> Attestation:
    attestation = Attestation(
        id=f"{number:064x}",
        format=kwargs.pop("format", "sigstore-bundle"),
        content_kind=kwargs.pop("content_kind", "statement"),
        predicate_type=kwargs.pop("predicate_type", "https://slsa.dev/provenance/v1"),
        size=10,
        uploaded_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=number),
        uploaded_by="ci",
        signers=signers,
        signer_kind=str(signers[0]["kind"]),
        trust_root=kwargs.pop("trust_root", "public-good"),
        tlog_entries=[],
        timestamps=[],
        statement={"predicate": {"n": number}},
        **kwargs,
    )
    attestation.subjects = [
        AttestationSubject(name=f"artifact-{i}", algorithm="sha256", digest=d)
        for i, d in enumerate(digests)
    ]
    return attestation


def test_lookup_by_subject_digest_newest_first(db: Database) -> None:
    key = Key()
    with db.session() as session:
        session.add(row(1, [dataclasses.asdict(keyless())], [DIGEST]))
        session.add(
            row(
                2,
                [dataclasses.asdict(key.signer()), dataclasses.asdict(keyless())],
                [DIGEST, OTHER_DIGEST],
                format="dsse",
                trust_root=None,
                revoked_at=datetime.now(UTC),
                revoked_reason="bad",
            )
        )
        session.add(row(3, [dataclasses.asdict(keyless())], [OTHER_DIGEST]))
    with db.session() as session:
        found = db_lookup(session)("sha256", DIGEST.upper())
    assert [a.id for a in found] == [f"{2:064x}", f"{1:064x}"]
    newest = found[0]
    assert newest.revoked and newest.revoked_reason == "bad"
    assert newest.trust_root is None and newest.format == "dsse"
    assert newest.signers[0] == key.signer()
    assert newest.signers[1].extensions["sourceRepositoryURI"] == "https://github.com/acme/app"
    assert {s.name: s.digests for s in newest.subjects} == {
        "artifact-0": {"sha256": DIGEST},
        "artifact-1": {"sha256": OTHER_DIGEST},
    }
    assert newest.uploaded_at.tzinfo is not None
    assert found[1].statement == {"predicate": {"n": 1}}


def test_lookup_limit(db: Database) -> None:
    with db.session() as session:
        for number in range(5):
            session.add(row(number, [dataclasses.asdict(keyless())], [DIGEST]))
    with db.session() as session:
        assert len(db_lookup(session, limit=3)("sha256", DIGEST)) == 3


def test_signer_json_tolerates_schema_drift() -> None:
    data = {**dataclasses.asdict(keyless()), "added_later": 1}
    del data["certificate_pem"]
    assert signer_from_json(data) == keyless()
