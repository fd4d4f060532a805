"""POST /k8s/validate (kube-apiserver's ValidatingWebhook) and GET /v1/decisions/{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError

from app import jsoncodec
from app.admission.auth import webhook_caller
from app.admission.extract import ExtractError
from app.admission.models import Decision
from app.admission.schemas import AdmissionReview
from app.admission.service import Admission, decide_async, extract_images
from app.auth.dependencies import require
from app.auth.schemas import Principal, Scope
from app.errors import ApiError
from app.request_body import BodyTooLarge, read_limited

router = APIRouter(tags=["admission"])


@router.post("/k8s/validate")
async def validate(
    request: Request, caller: Annotated[Principal, Depends(webhook_caller)]
) -> Response:
    """An AdmissionReview v1 (or v1beta1) in, the same apiVersion and kind out.

    Served by ``app.admission.fast_path`` ahead of the router (same code, below); this route
    documents the endpoint and answers if the fast path is not installed."""
    return Response(await answer_review(request, caller), media_type="application/json")


async def answer_review(request: Request, caller: Principal) -> bytes:
    """The JSON answer to the AdmissionReview in ``request``'s body; ApiError when malformed."""
    state = request.app.state
    body = await _read_body(request, state.settings.max_upload_bytes)
    review = parse_review(body)
    try:
        extraction = extract_images(review.request)
    except ExtractError as exc:
        raise ApiError(400, "malformed_review", f"request.object: {exc}") from exc
    answer = await decide_async(
        admission(request),
        state.decision_recorder,
        state.admission_slots,
        review,
        body,
        extraction,
        caller.name,
    )
    return jsoncodec.dumps(answer)


@router.get("/v1/decisions/{decision_id}")
def get_decision(
    decision_id: str,
    request: Request,
    _principal: Annotated[Principal, Depends(require(Scope.READ))],
    include_request: Annotated[
        bool, Query(description="Add the AdmissionReview request as received")
    ] = False,
) -> dict[str, Any]:
    with request.app.state.db.session() as session:
        row = session.get(Decision, decision_id.lower()) if len(decision_id) <= 36 else None
        if row is None:
            raise ApiError(404, "not_found", f"no decision {decision_id}")
        return decision_view(row, include_request=include_request)


def decision_view(row: Decision, *, include_request: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "time": row.created_at.isoformat(),
        "uid": row.uid,
        "namespace": row.namespace,
        "kind": row.kind,
        "name": row.name,
        "sub_resource": row.sub_resource,
        "operation": row.operation,
        "user": row.user,
        "caller": row.caller,
        "dry_run": row.dry_run,
        "allowed": row.allowed,
        "outcome": row.outcome,
        "reasons": row.reasons,
        "images": row.images,
        "policy_hash": row.policy_hash,
        "request_sha256": row.request_sha256,
        "explanation": row.explanation,
    }
    if include_request:
        view["request"] = row.request
    return view


def admission(request: Request) -> Admission:
    state = request.app.state
    return Admission(
        db=state.db,
        policies=state.policies,
        cache=state.admission_cache,
        index=state.admission_index,
        max_containers=state.settings.max_containers_per_object,
    )


def parse_review(body: bytes) -> AdmissionReview:
    """The review in ``body`` (which is recorded as received); ApiError when malformed."""
    try:
        data = jsoncodec.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_review", f"the body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_review", "the body is not an AdmissionReview object")
    try:
        review = AdmissionReview.model_validate(data)
    except ValidationError as exc:
        details = [
            {"location": list(e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        first = details[0]
        where = ".".join(str(p) for p in first["location"]) or "body"
        raise ApiError(
            400,
            "malformed_review",
            f"not an AdmissionReview: {where}: {first['message']}",
            details,
        ) from exc
    return review


async def _read_body(request: Request, limit: int) -> bytes:
    try:
        return await read_limited(request, limit)
    except BodyTooLarge:
        raise ApiError(413, "payload_too_large", f"AdmissionReview exceeds {limit} bytes") from None
