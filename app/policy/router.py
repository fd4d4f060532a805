"""GET /v1/policies, POST /v1/policies:reload, POST /v1/evaluate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.auth.dependencies import require
from app.auth.schemas import Principal, Scope
from app.errors import ApiError
from app.policy.engine import evaluate_images
from app.policy.loader import CompiledPolicy
from app.policy.lookup import db_lookup
from app.policy.store import PolicySet, PolicyStore
from app.request_body import json_body, request_body

router = APIRouter(tags=["policies"])

MAX_IMAGES = 100  # a Pod with more containers than this is not a Pod


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(default=None, description="ghcr.io/acme/app@sha256:...")
    images: list[str] | None = Field(default=None, max_length=MAX_IMAGES)
    namespace: str | None = Field(
        default=None, description="Omitted: every policy applies, whatever its namespaces"
    )

    @model_validator(mode="after")
    def _some_image(self) -> EvaluateRequest:
        if (self.image is None) == (self.images is None):
            raise ValueError("give exactly one of image or images")
        if self.images is not None and not self.images:
            raise ValueError("images must not be empty")
        return self

    @property
    def refs(self) -> list[str]:
        return [self.image] if self.image is not None else list(self.images or [])


def _store(request: Request) -> PolicyStore:
    store: PolicyStore = request.app.state.policies
    return store


def _active(store: PolicyStore) -> PolicySet:
    active = store.active
    if active is None:
        raise ApiError(
            503,
            "policies_unavailable",
            f"no policy set is loaded from {store.directory}: {store.last_error}",
            {"errors": [e.as_dict() for e in store.last_errors]},
        )
    return active


@router.get("/v1/policies")
def list_policies(
    request: Request, _principal: Annotated[Principal, Depends(require(Scope.READ))]
) -> dict[str, Any]:
    store = _store(request)
    return describe(_active(store), store)


@router.post("/v1/policies:reload")
def reload_policies(
    request: Request, principal: Annotated[Principal, Depends(require(Scope.ADMIN))]
) -> dict[str, Any]:
    store = _store(request)
    try:
        store.reload(trigger="api", actor=principal.name)  # the store records it in the audit log
    except Exception as exc:
        raise ApiError(
            503,
            "audit_unavailable",
            "the reload could not be recorded in the audit log, so it was not applied; "
            "the active policy set is unchanged",
        ) from exc
    if store.last_error is not None:
        kept = store.active.content_hash if store.active else None
        raise ApiError(
            422,
            "policy_invalid",
            f"policy directory {store.directory} is invalid; still serving "
            f"{kept or 'no policy set'}: {store.last_error}",
            {"active_hash": kept, "errors": [e.as_dict() for e in store.last_errors]},
        )
    return describe(_active(store), store)


@router.post("/v1/evaluate", openapi_extra=request_body(EvaluateRequest))
def evaluate(
    request: Request,
    _principal: Annotated[Principal, Depends(require(Scope.READ))],
    body: Annotated[EvaluateRequest, Depends(json_body(EvaluateRequest, require(Scope.READ)))],
) -> dict[str, Any]:
    """What admission would decide now, with the explanation; nothing is recorded."""
    active = _active(_store(request))
    with request.app.state.db.session() as session:
        result = evaluate_images(
            body.refs, body.namespace, active, db_lookup(session), datetime.now(UTC)
        )
    return result.as_dict()


def describe(active: PolicySet, store: PolicyStore) -> dict[str, Any]:
    config = active.config
    return {
        "directory": str(active.directory),
        "content_hash": active.content_hash,
        "loaded_at": active.loaded_at.isoformat(),
        "last_error": store.last_error,
        "warnings": list(active.warnings),
        "trust_roots": list(active.trust.roots),
        "config": {
            "file": config.file,
            **config.source.model_dump(mode="json"),
        },
        "policies": [_policy(p) for p in active.policies],
    }


def _policy(policy: CompiledPolicy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "file": policy.file,
        "mode": policy.mode,
        "onError": policy.on_error,
        "images": [g.pattern for g in policy.images],
        "namespaces": [g.pattern for g in policy.namespaces] if policy.namespaces else None,
        "spec": policy.source.spec.model_dump(mode="json", exclude_none=True),
    }
