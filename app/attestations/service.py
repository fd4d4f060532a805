"""Ingest: verify once (outside any transaction), then store everything in one transaction.

A failure never leaves half an upload: the attestation, its raw bytes, its subject and material
index rows and its audit event commit together or not at all. Rejections are audit events that
keep the uploader, hash, size and reason, never the payload.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.admission.cache import attestations_changed
from app.attestations.models import (
    Attestation,
    AttestationBlob,
    AttestationMaterial,
    AttestationSubject,
)
from app.attestations.presenters import new_summary, summary
from app.attestations.schemas import AttestationSummary
from app.audit.service import append_event_rows, pending_event, record_event
from app.db import Database
from app.verification.errors import (
    MALFORMED,
    STATEMENT_INVALID,
    UNVERIFIABLE,
    VerificationError,
)
from app.verification.facts import Subject, VerifiedDocument
from app.verification.formats import DetectedUpload
from app.verification.source_uri import stored_spellings
from app.verification.trust import TrustStore

log = logging.getLogger("provenant.attestations")


@dataclass(frozen=True)
class MessageSubject:
    """What a message-signature bundle signed: the uploader names it (the bundle cannot)."""

    name: str
    algorithm: str
    digest: str
    # What the signature covers when it is not the subject itself: a cosign simple-signing
    # payload, which names the subject (a binding its caller checked) and is what was signed.
    signed: tuple[str, str] | None = None


@dataclass(frozen=True)
class Outcome:
    status: str  # created | existing | rejected
    sha256: str
    attestation: AttestationSummary | None = None  # the stored record (created or existing)
    error: VerificationError | None = None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Built once, with the id as a parameter: building the expression and its cache key cost
# more than the read itself (~70 us of ~140 on SQLite).
_KNOWN_KIND = select(Attestation.content_kind).where(Attestation.id == bindparam("id"))


def ingest(
    db: Database,
    trust: TrustStore,
    raw: bytes,
    *,
    uploader: str,
    subject: MessageSubject | None = None,
    line: int | None = None,
    detected: DetectedUpload | None = None,
    origin: Mapping[str, Any] | None = None,
    on_store: Callable[[Session], None] | None = None,
    record_rejection: bool = True,
) -> Outcome:
    """Verify and store one document; duplicates return the stored record unchanged.

    ``detected`` is the upload as the router already parsed it (format and JSON), so the body
    is not parsed twice; without it (.intoto.jsonl lines) the document is detected here.
    ``origin`` (where a document not uploaded came from) goes into its audit event, accepted
    or rejected; ``on_store`` adds rows of the caller's in the transaction that stores it.
    ``record_rejection=False`` leaves recording a rejection to the caller (one event for all
    the rejected lines of a .intoto.jsonl upload).
    """
    reject = _record_rejection if record_rejection else _not_recorded
    from app.verification.verify import verify_document, verify_parsed

    digest = sha256_hex(raw)
    # One read, outside a transaction (there is nothing to commit): most uploads are new.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        known = connection.scalar(_KNOWN_KIND, {"id": digest})
    if known is not None:
        with db.session() as session:
            if _same_subject(session, digest, known, subject):
                return _existing(session, digest)
    try:
        message_digest = (
            (subject.signed or (subject.algorithm, subject.digest)) if subject else None
        )
        if detected is not None and detected.document is not None:
            document = verify_parsed(detected.format, detected.document, trust, message_digest)
        else:
            document = verify_document(raw, trust, message_digest=message_digest)
    except VerificationError as exc:
        reject(db, uploader, raw, exc, line=line, origin=origin)
        return Outcome("rejected", digest, error=exc)
    except Exception as exc:
        # A library tripping over hostile input must not become a 500, and must never let the
        # document through: it is rejected (fail closed) and the traceback goes to the log.
        log.exception("verification raised unexpectedly for upload %s", digest)
        error = VerificationError(
            UNVERIFIABLE, f"the document could not be verified ({type(exc).__name__})"
        )
        reject(db, uploader, raw, error, line=line, origin=origin)
        return Outcome("rejected", digest, error=error)
    if known is not None:
        # Same bytes re-verified against a different claimed subject: keep the first record.
        with db.session() as session:
            return _existing(session, digest)
    return _store(
        db,
        document,
        raw,
        digest,
        uploader=uploader,
        subject=subject,
        origin=origin,
        on_store=on_store,
        reject=reject,
    )


def ingest_upload(
    db: Database,
    trust: TrustStore,
    raw: bytes,
    *,
    content_type: str | None,
    uploader: str,
    subject: MessageSubject | None = None,
) -> Outcome | None:
    """A whole upload: detect its format and ingest it; None for .intoto.jsonl, whose lines the
    caller ingests one by one. An upload that is not a document at all is a rejection."""
    from app.verification.formats import sniff

    try:
        detected = sniff(raw, content_type)
    except VerificationError as exc:
        record_rejection(db, uploader, raw, exc)
        return Outcome("rejected", sha256_hex(raw), error=exc)
    if detected.format == "jsonl":
        return None
    return ingest(db, trust, raw, uploader=uploader, subject=subject, detected=detected)


def _existing(session: Session, digest: str) -> Outcome:
    row = session.get(Attestation, digest)
    return Outcome("existing", digest, summary(row) if row is not None else None)


def _same_subject(session: Session, digest: str, kind: str, subject: MessageSubject | None) -> bool:
    """A stored message signature only answers for the subject it was verified against."""
    if kind != "message-signature" or subject is None:
        return True
    match = session.scalar(
        select(AttestationSubject.id).where(
            AttestationSubject.attestation_id == digest,
            AttestationSubject.algorithm == subject.algorithm,
            AttestationSubject.digest == subject.digest,
        )
    )
    return match is not None


def _store(
    db: Database,
    document: VerifiedDocument,
    raw: bytes,
    digest: str,
    *,
    uploader: str,
    subject: MessageSubject | None,
    origin: Mapping[str, Any] | None = None,
    on_store: Callable[[Session], None] | None = None,
    reject: Callable[..., None],
) -> Outcome:
    subjects = list(document.subjects)
    if document.content_kind == "message-signature" and subject is not None:
        subjects = [Subject(name=subject.name, digests={subject.algorithm: subject.digest})]
    rows = attestation_rows(document, digest, len(raw), uploader, subjects)
    oversized = _oversized_index_value(rows)
    if oversized is not None:
        error = VerificationError(
            STATEMENT_INVALID,
            f"{oversized} is longer than {MAX_INDEXED_LENGTH} characters; "
            "no real artifact has such a value",
        )
        reject(db, uploader, raw, error, origin=origin)
        return Outcome("rejected", digest, error=error)
    # Checked and hashed before the transaction: the audit log's lock is held from the append
    # to the commit, so nothing that can be done without it is done under it.
    accepted: dict[str, Any] = {
        "id": digest,
        "format": document.format,
        "predicate_type": document.predicate_type,
        "subjects": [{"name": s.name, "digest": s.digests} for s in subjects],
        "size": len(raw),
    }
    if origin is not None:
        accepted["origin"] = dict(origin)
    event = pending_event("attestation.accepted", uploader, accepted)
    try:
        with db.session() as session:
            _insert(session, rows, raw)
            if on_store is not None:
                on_store(session)
            attestations_changed(session)  # admission caches see the upload once it commits
            append_event_rows(session, [event])
    except IntegrityError:
        # A concurrent identical upload won the race: its record is ours too.
        with db.session() as session:
            winner = session.get(Attestation, digest)
            record = summary(winner) if winner is not None else None
        if record is None:
            raise
        return Outcome("existing", digest, record)
    return Outcome("created", digest, new_summary(rows.attestation, rows.subjects))


# Built once: a statement object caches its compiled form's key, so reuse skips that work.
_INSERT_ATTESTATION = insert(Attestation.__table__)
_INSERT_BLOB = insert(AttestationBlob.__table__)
_INSERT_SUBJECTS = insert(AttestationSubject.__table__)
_INSERT_MATERIALS = insert(AttestationMaterial.__table__)


def _insert(session: Session, rows: AttestationRows, raw: bytes) -> None:
    """Core inserts of plain rows: ORM instances and the unit of work cost more than the rows
    themselves on this path, and nothing reads the instances back."""
    connection = session.connection()
    connection.execute(_INSERT_ATTESTATION, [rows.attestation])
    connection.execute(_INSERT_BLOB, [{"attestation_id": rows.attestation["id"], "raw": raw}])
    if rows.subjects:
        connection.execute(_INSERT_SUBJECTS, rows.subjects)
    if rows.materials:
        connection.execute(_INSERT_MATERIALS, rows.materials)


# PostgreSQL refuses btree index entries above ~2.7 kB; values this long are never real.
MAX_INDEXED_LENGTH = 1024
_INDEXED_COLUMNS = (
    "predicate_type",
    "signer_san",
    "signer_key_id",
    "builder_id",
    "source_repo",
    "source_commit",
)


def _oversized_index_value(rows: AttestationRows) -> str | None:
    for column in _INDEXED_COLUMNS:
        value = rows.attestation[column]
        if value is not None and len(value) > MAX_INDEXED_LENGTH:
            return column
    for row in [*rows.subjects, *rows.materials]:
        for column in ("algorithm", "digest"):
            value = row[column]
            if value is not None and len(value) > MAX_INDEXED_LENGTH:
                return f"a subject or material {column}"
    return None


@dataclass(frozen=True)
class AttestationRows:
    """One attestation as the rows stored for it: every column of ``attestations`` by name,
    and its subject and material index rows."""

    attestation: dict[str, Any]
    subjects: list[dict[str, Any]]
    materials: list[dict[str, Any]]


def attestation_rows(
    document: VerifiedDocument,
    digest: str,
    size: int,
    uploader: str,
    subjects: list[Subject],
) -> AttestationRows:
    from app.verification.statement import slsa_facts

    first = document.signers[0]
    slsa = slsa_facts(document.statement) if document.statement else {}
    attestation = {
        "id": digest,
        "format": document.format,
        "media_type": document.media_type,
        "content_kind": document.content_kind,
        "predicate_type": document.predicate_type,
        "size": size,
        "uploaded_at": datetime.now(UTC),
        "uploaded_by": uploader,
        "signers": [_jsonable(_fields(s)) for s in document.signers],
        "signer_kind": first.kind,
        "signer_issuer": first.issuer,
        "signer_san": first.san,
        "signer_key_id": first.key_id,
        "trust_root": document.trust_root,
        "trust_roots": list(document.trust_roots) or None,
        "tlog_entries": [_jsonable(_fields(t)) for t in document.tlog],
        "timestamps": [t.isoformat() for t in document.timestamps],
        "statement": document.statement,
        "builder_id": slsa.get("builder_id"),
        "build_type": slsa.get("build_type"),
        "source_repo": slsa.get("source_repository"),
        "source_ref": slsa.get("source_ref"),
        "source_commit": slsa.get("source_commit"),
        "build_parameters": slsa.get("external_parameters"),
        "revoked_at": None,
        "revoked_reason": None,
    }
    subject_rows = [
        {"attestation_id": digest, "name": s.name, "algorithm": alg, "digest": hex_}
        for s in subjects
        for alg, hex_ in sorted(s.digests.items())
    ]
    # A material without a digest is still worth a row: blast-radius queries go by URI too.
    material_rows = [
        {"attestation_id": digest, "uri": m["uri"], "algorithm": alg, "digest": hex_}
        for m in slsa.get("resolved_dependencies", [])
        for alg, hex_ in (sorted(m["digests"].items()) or [(None, None)])
    ]
    return AttestationRows(attestation, subject_rows, material_rows)


def build_attestation(
    document: VerifiedDocument,
    digest: str,
    size: int,
    uploader: str,
    subjects: list[Subject],
) -> Attestation:
    """``attestation_rows`` as a transient ORM instance (what seeding tools insert)."""
    rows = attestation_rows(document, digest, size, uploader, subjects)
    attestation = Attestation(**rows.attestation)
    attestation.subjects = [
        AttestationSubject(name=s["name"], algorithm=s["algorithm"], digest=s["digest"])
        for s in rows.subjects
    ]
    attestation.materials = [
        AttestationMaterial(uri=m["uri"], algorithm=m["algorithm"], digest=m["digest"])
        for m in rows.materials
    ]
    return attestation


def _fields(facts: Any) -> dict[str, Any]:
    """A flat facts dataclass as a dict (``dataclasses.asdict`` deep-copies every value, which
    the upload path does not need: the document is discarded once stored)."""
    return {f.name: getattr(facts, f.name) for f in dataclasses.fields(facts)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def record_rejection(
    db: Database,
    uploader: str,
    raw: bytes | None,
    error: VerificationError,
    *,
    size: int | None = None,
    line: int | None = None,
    origin: Mapping[str, Any] | None = None,
    lines: list[dict[str, Any]] | None = None,
) -> None:
    payload: dict[str, Any] = {
        "sha256": sha256_hex(raw) if raw is not None else None,
        "size": len(raw) if raw is not None else size,
        "code": error.code,
        "message": error.message,
    }
    if line is not None:
        payload["line"] = line
    if origin is not None:
        payload["origin"] = dict(origin)
    if lines is not None:
        payload["lines"] = lines
    with db.session() as session:
        record_event(session, "attestation.rejected", uploader, payload)


_record_rejection = record_rejection


def _not_recorded(*_args: object, **_kwargs: object) -> None:
    return None


def malformed(message: str) -> VerificationError:
    return VerificationError(MALFORMED, message)


def revoke(db: Database, attestation_id: str, reason: str, actor: str) -> Attestation | None:
    """Revoke an attestation; None if there is none. Revoking twice keeps the first revocation.

    The index version is bumped in the same transaction, so once this returns no replica's
    admission cache can still allow an image on the strength of this attestation.
    """
    with db.session() as session:
        row = session.get(Attestation, attestation_id.lower(), with_for_update=True)
        if row is None or row.revoked_at is not None:
            return row
        row.revoked_at = datetime.now(UTC)
        row.revoked_reason = reason
        attestations_changed(session)
        record_event(
            session,
            "attestation.revoked",
            actor,
            {
                "id": row.id,
                "reason": reason,
                "subjects": sorted({f"{s.algorithm}:{s.digest}" for s in row.subjects}),
            },
        )
        return row


# Queries -----------------------------------------------------------------------------------


def get_attestation(session: Session, attestation_id: str) -> Attestation | None:
    return session.get(Attestation, attestation_id.lower())


def get_raw(session: Session, attestation_id: str) -> bytes | None:
    blob = session.get(AttestationBlob, attestation_id.lower())
    return blob.raw if blob else None


def find_by_subject(
    session: Session,
    algorithm: str,
    digest: str,
    *,
    predicate_type: str | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 100,
) -> list[Attestation]:
    query = (
        select(Attestation)
        .join(AttestationSubject)
        .where(AttestationSubject.algorithm == algorithm, AttestationSubject.digest == digest)
        .distinct()
    )
    if predicate_type is not None:
        query = query.where(Attestation.predicate_type == predicate_type)
    if after is not None:
        at, last_id = after
        query = query.where(
            (Attestation.uploaded_at > at)
            | ((Attestation.uploaded_at == at) & (Attestation.id > last_id))
        )
    query = query.order_by(Attestation.uploaded_at, Attestation.id).limit(limit)
    return list(session.scalars(query).all())


def recent(
    session: Session,
    *,
    predicate_type: str | None = None,
    source_repo: str | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 100,
) -> list[Attestation]:
    """The latest uploads, newest first; ``before`` is the last row of the previous page."""
    query = select(Attestation)
    if predicate_type is not None:
        query = query.where(Attestation.predicate_type == predicate_type)
    if source_repo is not None:
        query = query.where(Attestation.source_repo.in_(stored_spellings(source_repo)))
    if before is not None:
        at, last_id = before
        query = query.where(
            (Attestation.uploaded_at < at)
            | ((Attestation.uploaded_at == at) & (Attestation.id < last_id))
        )
    query = query.order_by(Attestation.uploaded_at.desc(), Attestation.id.desc()).limit(limit)
    return list(session.scalars(query).all())
