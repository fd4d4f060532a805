"""POST /k8s/validate (kube-apiserver's ValidatingWebhook) and GET /v1/decisions/{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from app import jsoncodec
from app.admission.auth import webhook_caller
from app.admission.extract import ExtractError
from app.admission.models import Decision
from app.admission.mutate import mutation
from app.admission.schemas import AdmissionReview
from app.admission.service import Admission, decide_async, extract_images, pull_secrets_of
from app.auth.dependencies import require
from app.auth.schemas import Principal, Scope
from app.errors import ApiError
from app.request_body import BodyTooLarge, read_limited
from app.verification import strict_json
from app.verification.errors import MALFORMED, VerificationError

router = APIRouter(tags=["admission"])


_REVIEW_BODY = {
    "required": True,
    "description": "An AdmissionReview (admission.k8s.io/v1 or v1beta1) as kube-apiserver "
    "sends it; the request's object is the workload whose images are judged",
    "content": {
        "application/json": {
            "schema": {"type": "object", "required": ["apiVersion", "kind", "request"]},
            "example": {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "00000000-0000-0000-0000-000000000000",
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "operation": "CREATE",
                    "namespace": "default",
                    "name": "app",
                    "userInfo": {"username": "alice"},
                    "object": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": "app"},
                        "spec": {
                            "containers": [
                                {"name": "app", "image": "registry.example/app@sha256:" + "0" * 64}
                            ]
                        },
                    },
                },
            },
        }
    },
}


@router.post("/k8s/validate", openapi_extra={"requestBody": _REVIEW_BODY})
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


@router.post(
    "/k8s/mutate",
    openapi_extra={"requestBody": _REVIEW_BODY},
    responses={404: {"description": "mutation is off (PROVENANT_REGISTRY_MUTATE=false)"}},
)
async def mutate(
    request: Request, caller: Annotated[Principal, Depends(webhook_caller)]
) -> Response:
    """A mutating webhook (off by default: PROVENANT_REGISTRY_MUTATE): pins ``image: repo:tag``
    to ``repo:tag@sha256:...`` with a JSON patch, resolving the tag through the registry.
    Always allows: judging is the validating webhook's job."""
    state = request.app.state
    registry = getattr(state, "admission_registry", None)
    if not state.settings.registry_mutate or registry is None:
        raise ApiError(
            404, "not_found", "POST /k8s/mutate is off; PROVENANT_REGISTRY_MUTATE=true turns it on"
        )
    body = await _read_body(request, state.settings.max_upload_bytes)
    review = parse_review(body)
    try:
        extraction = extract_images(review.request)
    except ExtractError as exc:
        raise ApiError(400, "malformed_review", f"request.object: {exc}") from exc
    secrets = pull_secrets_of(review.request.object)
    answer = await run_in_threadpool(mutation, review, extraction, registry, secrets)
    return Response(jsoncodec.dumps(answer), media_type="application/json")


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
        registry=getattr(state, "admission_registry", None),
        max_containers=state.settings.max_containers_per_object,
    )


def parse_review(body: bytes) -> AdmissionReview:
    """The review in ``body`` (which is recorded as received); ApiError when malformed."""
    try:
        # Bounded, and one reading only: the review is recorded as received, so a repeated
        # key or text PostgreSQL cannot store is refused here, alike on every database.
        data = strict_json.loads(body, "the body")
    except VerificationError as exc:
        if exc.code == MALFORMED:
            raise ApiError(400, "malformed_review", exc.message) from exc
        raise ApiError(422, exc.code, exc.message, exc.details) from exc
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
