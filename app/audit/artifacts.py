"""Provenance queries: what an artifact is (its attestations), where it ran (its decisions), and
the blast radius of a commit, builder or material (the artifacts built from it, and where each
of them ran).

An artifact is a subject digest of the attestation index. "Where it ran" reads the admission
decision index by the same digest; dry runs are left out of the workload summaries, because
they admitted nothing, but stay in an artifact's admission history (flagged).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, tuple_
from sqlalchemy.orm import Session

from app.admission.models import Decision, DecisionImage
from app.attestations.models import Attestation, AttestationMaterial, AttestationSubject
from app.audit.queries import QueryError, parse_digest, utc
from app.verification.source_uri import stored_spellings

# Materials carry any digest algorithm in-toto allows: sha256, sha1, gitCommit, ...
_MATERIAL_DIGEST = re.compile(r"^([A-Za-z0-9_.-]{1,32}):([0-9a-fA-F]{7,128})$")

# An artifact attested more often than this is re-attested in a loop; the newest ones matter.
MAX_ATTESTATIONS = 500
# Workloads shown per artifact; ``workload_count`` gives the full number.
MAX_WORKLOADS = 200


@dataclass(frozen=True)
class BlastFilter:
    source_repo: str | None = None
    source_commit: str | None = None
    builder_id: str | None = None
    material_digest: str | None = None  # "<algorithm>:<hex>", e.g. gitCommit:0123...

    def validated(self) -> BlastFilter:
        if not any((self.source_repo, self.source_commit, self.builder_id, self.material_digest)):
            raise QueryError(
                "source_repo",
                "give at least one of source_repo, source_commit, builder_id, material_digest",
            )
        material = self.material_digest
        if material is not None:
            match = _MATERIAL_DIGEST.match(material.strip())
            if not match:
                raise QueryError("material_digest", f"expected <algorithm>:<hex>, got {material!r}")
            material = f"{match.group(1)}:{match.group(2).lower()}"
        return BlastFilter(self.source_repo, self.source_commit, self.builder_id, material)


def encode_artifact_cursor(digest: str) -> str:
    return base64.urlsafe_b64encode(digest.encode()).decode()


def decode_artifact_cursor(cursor: str) -> str:
    try:
        return parse_digest(base64.urlsafe_b64decode(cursor.encode()).decode(), "cursor")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise QueryError("cursor", "not a cursor this server issued") from exc


def artifact_attestations(session: Session, digest: str) -> list[Attestation]:
    """Attestations whose subject is ``digest``, newest first."""
    algorithm, hex_ = digest.split(":", 1)
    ids = select(AttestationSubject.attestation_id).where(
        AttestationSubject.algorithm == algorithm, AttestationSubject.digest == hex_
    )
    query = (
        select(Attestation)
        .where(Attestation.id.in_(ids))
        .order_by(Attestation.uploaded_at.desc(), Attestation.id.desc())
        .limit(MAX_ATTESTATIONS)
    )
    return list(session.scalars(query))


def attestation_view(row: Attestation, digest: str) -> dict[str, Any]:
    algorithm, hex_ = digest.split(":", 1)
    names = sorted({s.name for s in row.subjects if (s.algorithm, s.digest) == (algorithm, hex_)})
    return {
        "id": row.id,
        "subject_names": names,
        "predicate_type": row.predicate_type,
        "format": row.format,
        "signer": {
            "kind": row.signer_kind,
            "issuer": row.signer_issuer,
            "san": row.signer_san,
            "key_id": row.signer_key_id,
        },
        "signers": row.signers,
        "trust_root": row.trust_root,
        "builder_id": row.builder_id,
        "build_type": row.build_type,
        "source": {"repo": row.source_repo, "ref": row.source_ref, "commit": row.source_commit},
        "materials": [
            {"uri": m.uri, "digest": f"{m.algorithm}:{m.digest}" if m.digest else None}
            for m in row.materials
        ],
        "uploaded_at": utc(row.uploaded_at).isoformat(),
        "uploaded_by": row.uploaded_by,
        "revoked": row.revoked_at is not None,
        "revoked_at": utc(row.revoked_at).isoformat() if row.revoked_at else None,
        "revoked_reason": row.revoked_reason,
    }


def provenance_summary(rows: list[Attestation]) -> dict[str, Any]:
    """The distinct builders and sources the artifact's unrevoked attestations claim."""
    valid = [r for r in rows if r.revoked_at is None]
    sources = {
        (r.source_repo, r.source_ref, r.source_commit)
        for r in valid
        if r.source_repo or r.source_commit
    }
    return {
        "builders": sorted({r.builder_id for r in valid if r.builder_id}),
        "sources": [
            {"repo": repo, "ref": ref, "commit": commit}
            for repo, ref, commit in sorted(sources, key=lambda s: tuple(p or "" for p in s))
        ],
    }


def was_admission_seen(session: Session, digest: str) -> bool:
    query = select(DecisionImage.id).where(DecisionImage.digest == digest).limit(1)
    return session.execute(query).first() is not None


def workloads(session: Session, digests: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per digest: each workload (namespace, kind, name) that asked to run it, outside dry
    runs, with its latest decision and counts, most recently seen first."""
    if not digests:
        return {}
    # One row per (decision, digest): an object naming a digest twice is one admission.
    pairs = (
        select(DecisionImage.decision_id, DecisionImage.digest)
        .where(DecisionImage.digest.in_(digests))
        .distinct()
        .subquery()
    )
    workload = (pairs.c.digest, Decision.namespace, Decision.kind, Decision.name)
    newest = (Decision.created_at.desc(), Decision.id.desc())
    ranked = (
        select(
            *workload,
            Decision.id.label("decision_id"),
            Decision.created_at,
            Decision.allowed,
            Decision.outcome,
            func.row_number().over(partition_by=workload, order_by=newest).label("rank"),
            func.count().over(partition_by=workload).label("decisions"),
            func.sum(case((Decision.allowed, 1), else_=0))
            .over(partition_by=workload)
            .label("admitted"),
            func.min(Decision.created_at).over(partition_by=workload).label("first_seen"),
        )
        .join(Decision, Decision.id == pairs.c.decision_id)
        .where(Decision.dry_run.is_(False))
        .subquery()
    )
    query = (
        select(ranked)
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.digest, ranked.c.created_at.desc(), ranked.c.decision_id.desc())
    )
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in session.execute(query):
        found[row.digest].append(
            {
                "namespace": row.namespace,
                "kind": row.kind,
                "name": row.name,
                "last_seen": utc(row.created_at).isoformat(),
                "first_seen": utc(row.first_seen).isoformat(),
                "last_decision": row.decision_id,
                "last_allowed": bool(row.allowed),
                "last_outcome": row.outcome,
                "decisions": int(row.decisions),
                "admitted": int(row.admitted or 0),
                "denied": int(row.decisions) - int(row.admitted or 0),
            }
        )
    return found


def blast_radius(
    session: Session, where: BlastFilter, *, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """A page of artifacts (subject digests) built from what ``where`` names, in digest order,
    each with the attestations that say so and the workloads that ran it."""
    matching = select(Attestation.id)
    if where.source_repo is not None:
        # Rows hold the normal form (older ones perhaps another spelling of it).
        matching = matching.where(Attestation.source_repo.in_(stored_spellings(where.source_repo)))
    if where.source_commit is not None:
        matching = matching.where(Attestation.source_commit == where.source_commit)
    if where.builder_id is not None:
        matching = matching.where(Attestation.builder_id == where.builder_id)
    if where.material_digest is not None:
        algorithm, hex_ = where.material_digest.split(":", 1)
        consumed = select(AttestationMaterial.attestation_id).where(
            AttestationMaterial.algorithm == algorithm, AttestationMaterial.digest == hex_
        )
        matching = matching.where(Attestation.id.in_(consumed))
    subject = (AttestationSubject.algorithm, AttestationSubject.digest)
    query = (
        select(*subject)
        .where(AttestationSubject.attestation_id.in_(matching))
        .distinct()
        .order_by(*subject)
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(*subject) > tuple_(*after.split(":", 1)))
    digests = [f"{algorithm}:{hex_}" for algorithm, hex_ in session.execute(query)]
    if not digests:
        return []
    return _artifacts(session, digests, matching)


def _artifacts(session: Session, digests: list[str], matching: Any) -> list[dict[str, Any]]:
    pairs = [tuple(d.split(":", 1)) for d in digests]
    rows = session.execute(
        select(
            AttestationSubject.algorithm,
            AttestationSubject.digest,
            AttestationSubject.name,
            Attestation,
        )
        .join(Attestation, Attestation.id == AttestationSubject.attestation_id)
        .where(
            tuple_(AttestationSubject.algorithm, AttestationSubject.digest).in_(pairs),
            Attestation.id.in_(matching),
        )
        .order_by(Attestation.uploaded_at, Attestation.id)
    )
    names: dict[str, set[str]] = defaultdict(set)
    attestations: dict[str, dict[str, Attestation]] = defaultdict(dict)
    for algorithm, hex_, name, attestation in rows:
        digest = f"{algorithm}:{hex_}"
        names[digest].add(name)
        attestations[digest][attestation.id] = attestation
    ran = workloads(session, digests)
    return [
        {
            "digest": digest,
            "names": sorted(names[digest]),
            "attestations": [
                {
                    "id": a.id,
                    "builder_id": a.builder_id,
                    "source": {
                        "repo": a.source_repo,
                        "ref": a.source_ref,
                        "commit": a.source_commit,
                    },
                    "revoked": a.revoked_at is not None,
                }
                for a in attestations[digest].values()
            ],
            "workload_count": len(ran.get(digest, [])),
            "workloads": ran.get(digest, [])[:MAX_WORKLOADS],
        }
        for digest in digests
    ]
