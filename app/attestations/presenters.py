"""ORM rows to API schemas."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from app.attestations.models import Attestation
from app.attestations.schemas import (
    AttestationDetail,
    AttestationSummary,
    MaterialOut,
    SignerOut,
    SubjectOut,
)


def _subjects(row: Attestation | SimpleNamespace) -> list[SubjectOut]:
    grouped: dict[str, dict[str, str]] = defaultdict(dict)
    for s in row.subjects:
        grouped[s.name][s.algorithm] = s.digest
    return [SubjectOut(name=name, digest=digests) for name, digests in grouped.items()]


def summary(row: Attestation) -> AttestationSummary:
    return AttestationSummary(**_summary_fields(row))


def new_summary(
    values: Mapping[str, Any], subjects: Sequence[Mapping[str, Any]]
) -> AttestationSummary:
    """``summary`` of a row just inserted, from the values inserted: no ORM instance is built
    for an upload only to be read here (``ingest``), and the fields come from the same code."""
    row = SimpleNamespace(**values, subjects=[SimpleNamespace(**s) for s in subjects])
    return AttestationSummary(**_summary_fields(row))


def _summary_fields(row: Attestation | SimpleNamespace) -> dict[str, object]:
    return {
        "id": row.id,
        "format": row.format,
        "media_type": row.media_type,
        "content_kind": row.content_kind,
        "predicate_type": row.predicate_type,
        "subjects": _subjects(row),
        "signer": SignerOut(
            kind=row.signer_kind,
            issuer=row.signer_issuer,
            san=row.signer_san,
            key_id=row.signer_key_id,
        ),
        "trust_root": row.trust_root,
        "trust_roots": row.trust_roots or ([row.trust_root] if row.trust_root else []),
        "builder_id": row.builder_id,
        "source_repo": row.source_repo,
        "source_ref": row.source_ref,
        "source_commit": row.source_commit,
        "uploaded_at": row.uploaded_at,
        "uploaded_by": row.uploaded_by,
        "revoked": row.revoked_at is not None,
    }


def detail(row: Attestation) -> AttestationDetail:
    materials: dict[str | None, dict[str, str]] = defaultdict(dict)
    for m in row.materials:
        entry = materials[m.uri]
        if m.algorithm and m.digest:
            entry[m.algorithm] = m.digest
    return AttestationDetail(
        **_summary_fields(row),
        size=row.size,
        signers=row.signers,
        tlog_entries=row.tlog_entries,
        timestamps=row.timestamps,
        build_type=row.build_type,
        build_parameters=row.build_parameters,
        materials=[MaterialOut(uri=uri, digest=d) for uri, d in materials.items()],
        statement=row.statement,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
    )
