"""POST /v1/attestations and the queries over what was stored."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from app import jsoncodec
from app.attestations import service
from app.attestations.presenters import detail, summary
from app.attestations.schemas import (
    AttestationDetail,
    AttestationPage,
    JsonlUploadResponse,
    LineResult,
    RevocationResult,
    RevokeRequest,
    UploadResult,
)
from app.attestations.workers import IngestWorkers
from app.auth.dependencies import require, require_async
from app.auth.schemas import Principal, Scope
from app.cursors import decode_time_cursor, encode_time_cursor
from app.db import Database
from app.errors import ApiError
from app.request_body import BodyTooLarge, json_body, read_limited, request_body
from app.verification.errors import TOO_MANY_LINES, VerificationError
from app.verification.source_uri import normalize_source_uri
from app.verification.trust import TrustStore

# All lines of a .intoto.jsonl upload rejected (each line's own code is in details.results).
JSONL_REJECTED = "jsonl_rejected"

router = APIRouter(prefix="/v1/attestations", tags=["attestations"])

_DIGEST = re.compile(r"^(sha256|sha384|sha512):([0-9a-fA-F]+)$")
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


def parse_digest(value: str, field: str) -> tuple[str, str]:
    match = _DIGEST.match(value.strip())
    if not match or len(match.group(2)) != _HEX_LENGTHS[match.group(1)]:
        raise ApiError(
            400,
            "invalid_digest",
            f"{field} must look like sha256:<64 hex digits> (sha384 and sha512 work too), "
            f"got {value!r}",
        )
    return match.group(1), match.group(2).lower()


async def read_body(request: Request, limit: int, uploader: str) -> bytes:
    """The body, refusing (413) as soon as it is known to exceed the limit; a refused upload
    is recorded like any other rejection."""
    try:
        return await read_limited(request, limit)
    except BodyTooLarge as exc:
        message = f"upload exceeds PROVENANT_MAX_UPLOAD_BYTES ({limit} bytes)"
        await run_in_threadpool(
            service.record_rejection,
            request.app.state.db,
            uploader,
            None,
            VerificationError("payload_too_large", message),
            size=exc.size,
        )
        raise ApiError(413, "payload_too_large", message, {"limit": limit}) from None


def _trust(request: Request):  # noqa: ANN202
    active = request.app.state.policies.active
    if active is None:
        raise ApiError(
            503,
            "policies_unavailable",
            "no policy set is loaded, so nothing can be verified; see /readyz",
        )
    return active.trust


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_UPLOAD_BODY = {
    "required": True,
    "description": "The document's bytes as signed, unchanged (`curl --data-binary @FILE`). "
    "Its format is detected from the content: a Sigstore bundle, a DSSE envelope, an in-toto "
    "link, or .intoto.jsonl (one document per line; send it as application/jsonl or a file)",
    "content": {
        "application/json": {
            "schema": {"type": "object", "description": "a bundle, envelope or link"}
        },
        "application/jsonl": _BINARY,
        "application/x-ndjson": _BINARY,
        "application/octet-stream": _BINARY,
    },
}


@router.post(
    "",
    openapi_extra={"requestBody": _UPLOAD_BODY},
    response_model=UploadResult | JsonlUploadResponse,
    status_code=201,
    responses={
        200: {"description": "already stored (same bytes): the existing record"},
        207: {"description": ".intoto.jsonl with some lines rejected: a result per line"},
        413: {"description": "larger than PROVENANT_MAX_UPLOAD_BYTES, or too many lines"},
        422: {"description": "refused or verification failed: error.code says which check"},
    },
)
async def upload(
    request: Request,
    principal: Annotated[Principal, Depends(require_async(Scope.UPLOAD))],
    subject_digest: Annotated[
        str | None, Query(description="for message-signature bundles: sha256:<hex> signed")
    ] = None,
    subject_name: Annotated[
        str | None, Query(description="for message-signature bundles: the artifact's name")
    ] = None,
) -> Response:
    """Upload a Sigstore bundle, DSSE envelope, in-toto link or .intoto.jsonl file.

    The format is detected from the content. Each document is verified once, here, offline; the
    verified facts are stored and indexed by subject digest.
    """
    body = await read_body(request, request.app.state.settings.max_upload_bytes, principal.name)
    trust = _trust(request)
    subject = None
    if subject_digest is not None:
        algorithm, hex_ = parse_digest(subject_digest, "subject_digest")
        subject = service.MessageSubject(subject_name or subject_digest, algorithm, hex_)
    content_type = request.headers.get("content-type")
    # Parsing, verifying and storing run in an ingest worker process (app/attestations/workers):
    # never on the event loop that answers admission.
    workers: IngestWorkers = request.app.state.ingest_workers
    outcome = await workers.ingest_upload(
        trust, body, content_type=content_type, uploader=principal.name, subject=subject
    )

    if outcome is None:  # .intoto.jsonl: each line through the workers too
        return await _upload_jsonl(
            request.app.state.db, workers, trust, body, principal.name, subject
        )

    if outcome.error is not None:
        status = 400 if outcome.error.code == "malformed" else 422
        raise ApiError(status, outcome.error.code, outcome.error.message, outcome.error.details)
    result = _result(outcome)
    return _json(result.model_dump(mode="json"), 201 if outcome.status == "created" else 200)


async def _upload_jsonl(
    db: Database,
    workers: IngestWorkers,
    trust: TrustStore,
    body: bytes,
    uploader: str,
    subject: service.MessageSubject | None,
) -> Response:
    """Each line verified and stored on its own; the lines rejected are one audit event for
    the upload (an event per line would let one request write millions)."""
    from app.verification.formats import split_jsonl

    try:
        lines = split_jsonl(body)
    except VerificationError as exc:
        await run_in_threadpool(service.record_rejection, db, uploader, body, exc)
        status = 413 if exc.code == TOO_MANY_LINES else 400
        raise ApiError(status, exc.code, exc.message, exc.details) from exc
    results = []
    for number, line in enumerate(lines, start=1):
        outcome = await workers.ingest(
            trust, line, uploader=uploader, subject=subject, line=number, record_rejection=False
        )
        results.append(LineResult(line=number, **_result(outcome).model_dump()))
    counts = {s: sum(r.status == s for r in results) for s in ("created", "existing", "rejected")}
    response = JsonlUploadResponse(results=results, **counts).model_dump(mode="json")
    rejected = [r for r in results if r.error is not None]
    if rejected:
        error = VerificationError(
            JSONL_REJECTED,
            f"{len(rejected)} of {len(results)} documents of the .intoto.jsonl upload were "
            f"rejected; line {rejected[0].line}: {rejected[0].error['message']}",  # type: ignore[index]
        )
        lines_rejected = [{"line": r.line, "code": r.error["code"]} for r in rejected]  # type: ignore[index]
        await run_in_threadpool(
            service.record_rejection, db, uploader, body, error, lines=lines_rejected
        )
        if len(rejected) == len(results):
            raise ApiError(422, error.code, error.message, response)
        return _json(response, 207)
    return _json(response, 201 if counts["created"] else 200)


def _json(content: object, status: int) -> Response:
    return Response(jsoncodec.dumps(content), status, media_type="application/json")


def _result(outcome: service.Outcome) -> UploadResult:
    return UploadResult(
        status=outcome.status,  # type: ignore[arg-type]
        id=outcome.attestation.id if outcome.attestation else None,
        sha256=outcome.sha256,
        error=(
            {"code": outcome.error.code, "message": outcome.error.message}
            if outcome.error
            else None
        ),
        attestation=outcome.attestation,
    )


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        return decode_time_cursor(cursor)
    except ValueError as exc:
        raise ApiError(400, "invalid_cursor", "cursor is not one this server issued") from exc


@router.get("", response_model=AttestationPage)
def list_attestations(
    request: Request,
    _principal: Annotated[Principal, Depends(require(Scope.READ))],
    subject_digest: Annotated[
        str | None,
        Query(
            description="sha256:<hex> of an artifact: its attestations, oldest first. "
            "Without it: the latest uploads, newest first"
        ),
    ] = None,
    predicate_type: Annotated[str | None, Query(description="only this predicate type")] = None,
    source_repo: Annotated[
        str | None,
        Query(
            description="only provenance built from this repository, in any spelling "
            "(github.com/acme/app, https://github.com/acme/app.git, git+https://...)"
        ),
    ] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AttestationPage:
    """Attestations of one artifact (``subject_digest``), or the latest uploads."""
    position = _decode_cursor(cursor) if cursor else None
    with request.app.state.db.session() as session:
        if subject_digest is None:
            page = service.recent(
                session,
                predicate_type=predicate_type,
                source_repo=source_repo,
                before=position,
                limit=limit,
            )
        else:
            algorithm, hex_ = parse_digest(subject_digest, "subject_digest")
            page = service.find_by_subject(
                session,
                algorithm,
                hex_,
                predicate_type=predicate_type,
                after=position,
                limit=limit,
            )
        rows = page
        if source_repo is not None and subject_digest is not None:
            wanted = normalize_source_uri(source_repo)
            rows = [r for r in page if normalize_source_uri(r.source_repo or "") == wanted]
        items = [summary(r) for r in rows]
    # The cursor follows the rows read, so a filtered page never skips any.
    last = page[-1] if len(page) == limit else None
    next_cursor = encode_time_cursor(last.uploaded_at, last.id) if last else None
    return AttestationPage(items=items, next_cursor=next_cursor)


@router.get("/{attestation_id}", response_model=AttestationDetail)
def get_attestation(
    request: Request,
    attestation_id: str,
    _principal: Annotated[Principal, Depends(require(Scope.READ))],
) -> AttestationDetail:
    with request.app.state.db.session() as session:
        row = service.get_attestation(session, attestation_id)
        if row is None:
            raise ApiError(404, "not_found", f"no attestation {attestation_id}")
        return detail(row)


# Called after a revocation with the digests it covered; each returns the running workloads
# it affects. Registered from app.main by packages above this one (continuous validation).
RevocationListener = Callable[[list[str]], list[dict[str, Any]]]


@router.post(
    "/{attestation_id}/revoke",
    response_model=RevocationResult,
    openapi_extra=request_body(RevokeRequest),
)
def revoke(
    request: Request,
    attestation_id: str,
    principal: Annotated[Principal, Depends(require(Scope.ADMIN))],
    body: Annotated[RevokeRequest, Depends(json_body(RevokeRequest, require(Scope.ADMIN)))],
) -> RevocationResult:
    """Revoke an attestation: it no longer satisfies any requirement, from this answer on. The
    answer lists the running workloads it affects (when continuous validation watches them)."""
    reason = body.reason.strip()
    if not reason:
        raise ApiError(400, "invalid_request", "reason must not be blank")
    db = request.app.state.db
    row = service.revoke(db, attestation_id, reason, principal.name)
    if row is None:
        raise ApiError(404, "not_found", f"no attestation {attestation_id}")
    # Other processes trust the index version they read for up to this long (see
    # app/admission/cache.py): past it, none of them can admit on the revoked attestation.
    time.sleep(request.app.state.settings.admission_index_max_age)
    with db.session() as session:
        stored = service.get_attestation(session, row.id)
        assert stored is not None
        result = RevocationResult(**detail(stored).model_dump())
        digests = sorted({f"{s.algorithm}:{s.digest}" for s in stored.subjects})
    listeners: list[RevocationListener] = getattr(request.app.state, "revocation_listeners", [])
    for listener in listeners:
        result.affected_workloads += listener(digests)
    return result


@router.get("/{attestation_id}/raw", response_class=Response)
def get_raw(
    request: Request,
    attestation_id: str,
    _principal: Annotated[Principal, Depends(require(Scope.READ))],
) -> Response:
    """The uploaded bytes, byte for byte."""
    with request.app.state.db.session() as session:
        raw = service.get_raw(session, attestation_id)
    if raw is None:
        raise ApiError(404, "not_found", f"no attestation {attestation_id}")
    return Response(raw, media_type="application/octet-stream")
