"""GET /v1/audit/*: checkpoints, proofs, events, export, verification, the public key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from app.audit.queries import IsoTime
from app.audit.schemas import (
    CheckpointOut,
    ConsistencyProofOut,
    EventOut,
    EventPage,
    InclusionProofOut,
    PublicKeyOut,
    VerifyOut,
)
from app.audit.service import (
    AuditLog,
    AuditParamError,
    SignedCheckpoint,
    audit_log,
    decode_cursor,
    encode_cursor,
)
from app.audit.tree import TreeError
from app.auth.dependencies import require
from app.auth.schemas import Scope
from app.errors import ApiError

router = APIRouter(prefix="/v1/audit", tags=["audit"], dependencies=[Depends(require(Scope.READ))])

# Sequence numbers are JSON-safe integers (RFC 8785): larger values cannot name an event, and
# would otherwise overflow a BIGINT parameter into a 500.
MAX_SEQ = 2**53
T = TypeVar("T")


def _log(request: Request) -> AuditLog:
    return audit_log(request.app.state)


Log = Annotated[AuditLog, Depends(_log)]


def _answer(call: Callable[[], T]) -> T:
    try:
        return call()
    except AuditParamError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from exc
    except TreeError as exc:
        raise ApiError(
            500,
            "audit_log_damaged",
            f"the audit log cannot be read as a tree: {exc}; see GET /v1/audit/verify",
        ) from exc


def _utc(value: datetime) -> datetime:
    """Stored times are UTC; a time without an offset is taken as UTC too."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ApiError(
            400, "invalid_parameter", f"since {value.isoformat()} is out of range"
        ) from exc


def _checkpoint_out(log: AuditLog, checkpoint: SignedCheckpoint) -> CheckpointOut:
    return CheckpointOut(
        origin=log.origin,
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        note=checkpoint.note,
        created_at=checkpoint.created_at,
    )


@router.get(
    "/checkpoint",
    response_model=CheckpointOut,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def get_checkpoint(
    log: Log,
    fresh: Annotated[bool, Query(description="sign the current tree now")] = False,
    format: Annotated[Literal["json", "note"], Query(description="note: text/plain")] = "json",
) -> CheckpointOut | Response:
    """The latest signed checkpoint (periodic), or with fresh=true one over the current tree."""
    checkpoint = _answer(lambda: log.checkpoint(fresh=fresh))
    if format == "note":
        return PlainTextResponse(checkpoint.note)
    return _checkpoint_out(log, checkpoint)


@router.get("/proof/inclusion", response_model=InclusionProofOut)
def inclusion_proof(
    log: Log,
    seq: Annotated[int, Query(ge=0, le=MAX_SEQ, description="the event (leaf index)")],
    tree_size: Annotated[
        int | None, Query(ge=1, le=MAX_SEQ, description="default: the current size")
    ] = None,
) -> InclusionProofOut:
    """Audit path from event ``seq`` to the root of the tree of ``tree_size`` events."""
    return InclusionProofOut(**_answer(lambda: log.inclusion(seq, tree_size)))


@router.get("/proof/consistency", response_model=ConsistencyProofOut)
def consistency_proof(
    log: Log,
    from_: Annotated[int, Query(alias="from", ge=0, le=MAX_SEQ, description="older tree size")],
    to: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="newer tree size; default: current")
    ] = None,
) -> ConsistencyProofOut:
    """Proof that the tree of ``from`` events is a prefix of the tree of ``to`` events."""
    return ConsistencyProofOut(**_answer(lambda: log.consistency(from_, to)))


@router.get("/events", response_model=EventPage)
def list_events(
    log: Log,
    type: Annotated[str | None, Query(max_length=64, description="exact event type")] = None,
    since: Annotated[IsoTime | None, Query(description="events at or after this time")] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPage:
    """Events in log order, oldest first. Pages are stable while events are being appended."""
    after = _answer(lambda: decode_cursor(cursor)) if cursor else None
    if since is not None:
        since = _utc(since)
    records = _answer(lambda: log.events(type_=type, since=since, after_seq=after, limit=limit))
    return EventPage(
        items=[EventOut(**r.to_json()) for r in records],
        next_cursor=encode_cursor(records[-1].seq) if len(records) == limit else None,
    )


@router.get("/export", response_class=StreamingResponse)
def export(log: Log) -> StreamingResponse:
    """JSONL: every event, then a line {"checkpoint": <signed note>, ...} covering exactly them."""
    checkpoint = _answer(lambda: log.make_checkpoint())
    return StreamingResponse(
        log.export(checkpoint),
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="audit-{checkpoint.tree_size}.jsonl"'
        },
    )


@router.get("/verify", response_model=VerifyOut)
def verify(log: Log) -> VerifyOut:
    """Recompute every payload hash, leaf hash and the tree; check every signed checkpoint."""
    return VerifyOut(**log.verify().to_json())


@router.get(
    "/public-key",
    response_model=PublicKeyOut,
    responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}}}},
)
def public_key(
    log: Log,
    format: Annotated[Literal["json", "pem"], Query(description="pem: the PEM alone")] = "json",
) -> PublicKeyOut | Response:
    """The checkpoint verification key (Ed25519), as PEM and as a Go note verifier key."""
    info = log.public_key_info()
    if format == "pem":
        return PlainTextResponse(info["public_key_pem"], media_type="application/x-pem-file")
    return PublicKeyOut(**info)
