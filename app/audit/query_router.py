"""GET /v1/decisions, GET /v1/artifacts[/{digest}], POST /v1/policies/simulate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from app.audit import artifacts, simulate
from app.audit.queries import (
    DecisionFilter,
    IsoTime,
    QueryError,
    decision_summary,
    decode_cursor,
    encode_cursor,
    find_decisions,
    parse_digest,
    utc,
)
from app.audit.service import record_event
from app.auth.dependencies import require
from app.auth.schemas import Principal, Scope
from app.errors import ApiError
from app.policy.loader import PolicyLoadError
from app.request_body import json_body, request_body

router = APIRouter(tags=["audit"])

T = TypeVar("T")
Limit = Annotated[int, Query(ge=1, le=500)]
PAGE = 50
Cursor = Annotated[str | None, Query(max_length=200, description="next_cursor of the last page")]
Reader = Annotated[Principal, Depends(require(Scope.READ))]
MAX_DOCUMENTS = 1_000_000  # characters of proposed YAML: a policy directory, not a data set


def _checked(call: Callable[[], T]) -> T:
    try:
        return call()
    except QueryError as exc:
        raise ApiError(400, "invalid_parameter", str(exc), {"parameter": exc.parameter}) from exc
    except OverflowError as exc:  # e.g. the default window before 0001-01-01
        raise ApiError(400, "invalid_parameter", f"time out of range: {exc}") from exc


@router.get("/v1/decisions")
def list_decisions(
    request: Request,
    _principal: Reader,
    digest: Annotated[str | None, Query(description="sha256:<hex> of an image")] = None,
    image: Annotated[
        str | None,
        Query(description="a repository (any version), repository@digest, or image:tag"),
    ] = None,
    namespace: str | None = None,
    kind: Annotated[str | None, Query(description="Deployment, or apps/v1/Deployment")] = None,
    name: str | None = None,
    allowed: bool | None = None,
    policy: Annotated[str | None, Query(description="an ImagePolicy that evaluated it")] = None,
    since: Annotated[IsoTime | None, Query(description="at or after this time")] = None,
    until: Annotated[IsoTime | None, Query(description="before this time")] = None,
    cursor: Cursor = None,
    limit: Limit = PAGE,
) -> dict[str, Any]:
    """Admission decisions, newest first; GET /v1/decisions/{id} has the full explanation."""
    where = DecisionFilter(digest, image, namespace, kind, name, allowed, policy, since, until)
    where = _checked(where.validated)
    after = _checked(lambda: decode_cursor(cursor)) if cursor else None
    with request.app.state.db.session() as session:
        rows = find_decisions(session, where, after=after, limit=limit)
        items = [decision_summary(row) for row in rows]
    return {"items": items, "next_cursor": _next(rows, limit)}


@router.get("/v1/artifacts/{digest}")
def get_artifact(
    digest: str,
    request: Request,
    _principal: Reader,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500, description="admission history page size")] = PAGE,
) -> dict[str, Any]:
    """An artifact's attestations (signers, builder, source, materials) and where it ran."""
    key = _checked(lambda: parse_digest(digest))
    after = _checked(lambda: decode_cursor(cursor)) if cursor else None
    with request.app.state.db.session() as session:
        rows = artifacts.artifact_attestations(session, key)
        history = find_decisions(session, DecisionFilter(digest=key), after=after, limit=limit)
        if not rows and not history and not artifacts.was_admission_seen(session, key):
            raise ApiError(404, "not_found", f"nothing is known about {key}")
        return {
            "digest": key,
            "attestations": [artifacts.attestation_view(row, key) for row in rows],
            **artifacts.provenance_summary(rows),
            "workloads": artifacts.workloads(session, [key]).get(key, []),
            "admissions": {
                "items": [decision_summary(row) for row in history],
                "next_cursor": _next(history, limit),
            },
        }


@router.get("/v1/artifacts")
def blast_radius(
    request: Request,
    _principal: Reader,
    source_repo: str | None = None,
    source_commit: str | None = None,
    builder_id: str | None = None,
    material_digest: Annotated[
        str | None, Query(description="<algorithm>:<hex> of a material, e.g. gitCommit:0123...")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = PAGE,
) -> dict[str, Any]:
    """The artifacts built from a source (repo, commit), by a builder, or from a material, each
    with the workloads that ran it. Filters combine with AND; artifacts come in digest order."""
    where = artifacts.BlastFilter(source_repo, source_commit, builder_id, material_digest)
    where = _checked(where.validated)
    after = _checked(lambda: artifacts.decode_artifact_cursor(cursor)) if cursor else None
    with request.app.state.db.session() as session:
        items = artifacts.blast_radius(session, where, after=after, limit=limit)
    more = len(items) == limit
    return {
        "items": items,
        "next_cursor": artifacts.encode_artifact_cursor(items[-1]["digest"]) if more else None,
    }


class ProposedFiles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: dict[str, Annotated[str, Field(max_length=MAX_DOCUMENTS)]] = Field(max_length=100)


class SimulateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: Annotated[str, Field(max_length=MAX_DOCUMENTS)] | ProposedFiles = Field(
        description="the proposed directory's YAML documents (one multi-document text, read as "
        "policies.yaml) or {files: {name.yaml: text}}"
    )
    since: IsoTime | None = Field(None, description="default: 24 hours before until")
    until: IsoTime | None = Field(None, description="default: now")
    max_decisions: int = Field(10_000, ge=1, le=100_000)
    examples: int = Field(10, ge=0, le=100, description="examples per direction")


@router.post("/v1/policies/simulate", openapi_extra=request_body(SimulateRequest))
def simulate_policies(
    request: Request,
    principal: Annotated[Principal, Depends(require(Scope.ADMIN))],
    body: Annotated[SimulateRequest, Depends(json_body(SimulateRequest, require(Scope.ADMIN)))],
) -> dict[str, Any]:
    """Replay the window's recorded admission requests against the proposed policies; nothing
    is enforced or recorded as a decision."""
    until = _checked(lambda: utc(body.until or datetime.now(UTC)))
    since = _checked(lambda: utc(body.since or until - timedelta(hours=24)))
    if since >= until:
        raise ApiError(400, "invalid_parameter", "since must be before until")
    files = (
        body.documents.files
        if isinstance(body.documents, ProposedFiles)
        else {simulate.DEFAULT_FILE: body.documents}
    )
    state = request.app.state
    try:
        with simulate.proposed_policy_set(state.policies.directory, files) as proposed:
            result = simulate.simulate(
                state.db, state.policies, proposed, since=since, until=until,
                max_decisions=body.max_decisions, examples=body.examples,
            )  # fmt: skip
    except simulate.ProposalError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from exc
    except PolicyLoadError as exc:
        raise ApiError(
            422,
            "policy_invalid",
            f"the proposed policies do not load: {exc}",
            {"errors": [e.as_dict() for e in exc.errors]},
        ) from exc
    counts = ("replayed", "changed", "allowed_to_denied", "denied_to_allowed", "truncated")
    with state.db.session() as session:
        record_event(
            session,
            "policy.simulated",
            principal.name,
            {
                "policy_hash": result["policy_hash"],
                "active_policy_hash": result["active_policy_hash"],
                "since": result["since"],
                "until": result["until"],
                **{key: result[key] for key in counts},
            },
        )
    return result


def _next(rows: list[Any], limit: int) -> str | None:
    return encode_cursor(rows[-1].created_at, rows[-1].id) if len(rows) == limit else None
