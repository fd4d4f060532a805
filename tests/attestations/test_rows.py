"""The rows ingest stores for a verified document, and the ORM form seeding tools build."""

from __future__ import annotations

from datetime import UTC, datetime

from app.attestations.models import Attestation
from app.attestations.service import attestation_rows, build_attestation
from app.verification.facts import SignerFacts, Subject, TlogFacts, VerifiedDocument
from app.verification.statement import parse_statement
from tests.attestations.conftest import statement

INTEGRATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _document() -> VerifiedDocument:
    parsed = parse_statement(statement("app.tar.gz"))
    return VerifiedDocument(
        format="sigstore-bundle",
        media_type="application/vnd.dev.sigstore.bundle.v0.3+json",
        signers=[SignerFacts(kind="keyless", issuer="https://issuer", san="me@example.com")],
        trust_root="test-stack",
        tlog=[TlogFacts("ab", 7, INTEGRATED, "dsse", "0.0.1", "proof")],
        timestamps=[INTEGRATED],
        statement=parsed.statement,
        predicate_type=parsed.predicate_type,
        subjects=parsed.subjects,
    )


def test_rows_hold_every_column_and_the_index_rows() -> None:
    document = _document()
    subjects = [*document.subjects, Subject("other", {"sha512": "cd" * 64, "sha256": "ef" * 32})]
    rows = attestation_rows(document, "f" * 64, 123, "ci", subjects)
    assert set(rows.attestation) == {c.key for c in Attestation.__table__.columns}
    assert rows.attestation["signers"][0]["kind"] == "keyless"
    assert rows.attestation["tlog_entries"][0]["integrated_time"] == INTEGRATED.isoformat()
    assert rows.attestation["timestamps"] == [INTEGRATED.isoformat()]
    assert rows.attestation["source_repo"] == "https://github.com/acme/app"
    assert rows.attestation["revoked_at"] is None
    # One row per (subject, algorithm), algorithms sorted within a subject.
    assert [(s["name"], s["algorithm"]) for s in rows.subjects] == [
        ("app.tar.gz", "sha256"),
        ("other", "sha256"),
        ("other", "sha512"),
    ]
    assert {s["attestation_id"] for s in rows.subjects} == {"f" * 64}
    assert rows.materials == [
        {
            "attestation_id": "f" * 64,
            "uri": "git+https://github.com/acme/app@refs/tags/v1.0.0",
            "algorithm": "gitCommit",
            "digest": "0123456789abcdef0123456789abcdef01234567",
        }
    ]


def test_build_attestation_is_the_same_rows_as_orm_instances() -> None:
    document = _document()
    rows = attestation_rows(document, "f" * 64, 123, "ci", list(document.subjects))
    row = build_attestation(document, "f" * 64, 123, "ci", list(document.subjects))
    values = {c.key: getattr(row, c.key) for c in Attestation.__table__.columns}
    assert values.pop("uploaded_at") >= rows.attestation.pop("uploaded_at")
    assert values == rows.attestation
    assert [(s.name, s.algorithm, s.digest) for s in row.subjects] == [
        (s["name"], s["algorithm"], s["digest"]) for s in rows.subjects
    ]
    assert [(m.uri, m.algorithm, m.digest) for m in row.materials] == [
        (m["uri"], m["algorithm"], m["digest"]) for m in rows.materials
    ]
