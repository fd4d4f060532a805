"""The admission path's batched lookup answers exactly what the engine's per-digest one does."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from app.admission.lookup import image_digests, prefetching_lookup
from app.attestations.models import Attestation, AttestationSubject
from app.db import Database
from app.policy.lookup import db_lookup
from tests.policy.helpers import keyless

A, B, C = (hashlib.sha256(n.encode()).hexdigest() for n in "abc")


def _insert(db: Database, number: int, *digests: str) -> str:
    signer = keyless()
    attestation_id = hashlib.sha256(f"att-{number}".encode()).hexdigest()
    row = Attestation(
        id=attestation_id,
        format="dsse",
        content_kind="statement",
        predicate_type="https://slsa.dev/provenance/v1",
        size=1,
        uploaded_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=number % 3),
        uploaded_by="ci",
        signers=[dataclasses.asdict(signer)],
        signer_kind="keyless",
        tlog_entries=[],
        timestamps=[],
        statement={"subject": [{"name": "x", "digest": {"sha256": d}} for d in digests]},
    )
    row.subjects = [AttestationSubject(name="x", algorithm="sha256", digest=d) for d in digests]
    with db.session() as session:
        session.add(row)
    return attestation_id


def test_same_answers_as_the_engine_lookup_in_three_queries(db: Database) -> None:
    for n in range(6):
        _insert(db, n, A)
    _insert(db, 10, A, B)  # one attestation for two images
    _insert(db, 11, B)
    statements: list[str] = []
    with db.session() as session:
        event.listen(
            session.get_bind(), "before_cursor_execute", lambda *a: statements.append(a[2])
        )
        batched = prefetching_lookup(session, [("sha256", A), ("sha256", B), ("sha256", C)])
        answers = {d: [s.id for s in batched("sha256", d)] for d in (A, B, C)}
        assert len(statements) <= 3
        single = db_lookup(session)
        assert answers == {d: [s.id for s in single("sha256", d)] for d in (A, B, C)}
        assert len(answers[A]) == 7 and len(answers[B]) == 2 and answers[C] == []


def test_the_per_digest_limit_keeps_the_newest(db: Database) -> None:
    for n in range(5):
        _insert(db, n, A)
    with db.session() as session:
        batched = [s.id for s in prefetching_lookup(session, [("sha256", A)], limit=2)("sha256", A)]
        single = [s.id for s in db_lookup(session, limit=2)("sha256", A)]
    assert batched == single and len(batched) == 2


def test_digests_not_prefetched_fall_through(db: Database) -> None:
    wanted = _insert(db, 1, C)
    with db.session() as session:
        lookup = prefetching_lookup(session, [("sha256", A)])
        assert [s.id for s in lookup("sha256", C.upper())] == [wanted]


def test_image_digests_skip_tags_and_garbage() -> None:
    images = [f"ghcr.io/a@sha256:{A}", "nginx:1.25", "", f"ghcr.io/b@sha256:{A}"]
    assert image_digests(images) == [("sha256", A)]
