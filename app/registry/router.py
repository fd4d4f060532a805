"""POST /v1/registry/pull: read what is stored beside an image, verify it, store it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from app.auth.dependencies import require
from app.auth.schemas import Principal, Scope
from app.errors import ApiError
from app.registry import errors as E
from app.registry.errors import RegistryError
from app.registry.schemas import PullRequest, PullResult
from app.registry.service import RegistryService, TrustUnavailable
from app.request_body import json_body, request_body

router = APIRouter(prefix="/v1/registry", tags=["registry"])

# A registry failing is the gateway's problem, not the caller's request.
_STATUS = {
    E.INVALID_REFERENCE: 400,
    E.NOT_FOUND: 404,
    E.NOT_ALLOWED: 403,  # PROVENANT_REGISTRY_ALLOWED: the caller may not make us go there
    E.TIMEOUT: 504,
}

# The only 5xx this API answers besides 503: the registry behind the gateway failed (502) or
# did not answer in time (504). tests/fuzz/contract.py accepts them for this operation alone.
UPSTREAM_STATUSES = frozenset({502, 504})


# One dependency for the caller and the body's guard: FastAPI then checks the token once.
_UPLOADER = require(Scope.UPLOAD)


def api_error(exc: RegistryError) -> ApiError:
    details = {"registry": exc.registry} if exc.registry else None
    return ApiError(_STATUS.get(exc.code, 502), exc.code, exc.message, details)


@router.post(
    "/pull",
    response_model=PullResult,
    openapi_extra=request_body(PullRequest),
    responses={
        400: {"description": "not an image reference"},
        403: {
            "description": "the token lacks the upload scope, or PROVENANT_REGISTRY_ALLOWED "
            "refuses the registry or a host it points to (error.code: registry_not_allowed)"
        },
        404: {"description": "the registry has no such image"},
        502: {"description": "the registry failed (error.code: registry_unauthorized, ...)"},
        503: {"description": "no policy set (trust roots) is loaded"},
        504: {"description": "the registry did not answer within the pull's deadline"},
    },
)
async def pull(
    request: Request,
    principal: Annotated[Principal, Depends(_UPLOADER)],
    # Read only once the token is accepted (app/request_body.py).
    body: Annotated[PullRequest, Depends(json_body(PullRequest, _UPLOADER))],
) -> PullResult:
    """Discover the signatures and attestations beside an image (OCI referrers API, the
    referrers tag schema, cosign's .sig/.att tags), verify each like an upload and store it
    with its origin. Rejected items are listed with their code, and audited."""
    registry: RegistryService = request.app.state.registry
    try:
        return await run_in_threadpool(
            lambda: registry.pull(
                body.image,
                timeout=body.timeout,
                namespace=body.namespace,
                pull_secrets=body.pull_secrets,
                platforms=body.platforms,
                trigger=f"api:{principal.name}",
            )
        )
    except RegistryError as exc:
        raise api_error(exc) from exc
    except TrustUnavailable as exc:
        raise ApiError(503, "policies_unavailable", str(exc)) from exc
