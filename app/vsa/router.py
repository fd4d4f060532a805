"""GET /v1/artifacts/{digest}/vsa (issue a VSA), GET /v1/vsa/public-key (its keys)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from app.attestations.router import parse_digest
from app.auth.dependencies import require
from app.auth.schemas import Principal, Scope
from app.errors import ApiError
from app.policy.store import PolicySet, PolicyStore
from app.settings import Settings
from app.vsa.envelope import as_bundle
from app.vsa.keys import VsaKeyError, VsaKeyring
from app.vsa.schemas import (
    DsseEnvelope,
    PublicKeys,
    PublishedKeyView,
    SigstoreBundle,
)
from app.vsa.service import IssueRequest, issue_vsa

router = APIRouter(tags=["vsa"])
Reader = Annotated[Principal, Depends(require(Scope.READ))]


def keyring(request: Request) -> VsaKeyring:
    """One keyring per app, made on first use (apps that never issue a VSA make no key)."""
    state = request.app.state
    ring: VsaKeyring | None = getattr(state, "vsa_keys", None)
    if ring is None:
        settings: Settings = state.settings
        ring = state.vsa_keys = VsaKeyring(settings.vsa_key_dir, settings.vsa_key_algorithm)
    return ring


def _active_policies(request: Request) -> PolicySet:
    store: PolicyStore = request.app.state.policies
    if store.active is None:
        raise ApiError(503, "policies_unavailable", f"no policy set is loaded: {store.last_error}")
    return store.active


@router.get(
    "/v1/artifacts/{digest}/vsa",
    response_model=DsseEnvelope | SigstoreBundle,
    responses={
        200: {"description": "the signed VSA; X-VSA-Result says PASSED or FAILED"},
        422: {
            "description": "the query does not name one ImagePolicy for this artifact (error.code: "
            "invalid_image, digest_mismatch, policy_required, policy_ambiguous, "
            "policy_does_not_select, resource_uri_required)"
        },
        503: {"description": "no policy set is loaded, or the VSA signing key is unavailable"},
    },
)
def get_vsa(
    digest: str,
    request: Request,
    response: Response,
    principal: Reader,
    policy: Annotated[
        str | None, Query(max_length=253, description="ImagePolicy name (else: image=)")
    ] = None,
    image: Annotated[
        str | None, Query(max_length=512, description="image name, e.g. ghcr.io/acme/app")
    ] = None,
    resource_uri: Annotated[
        str | None, Query(max_length=2048, description="default: oci://<image name>@<digest>")
    ] = None,
    format: Annotated[Literal["dsse", "bundle"], Query(description="envelope kind")] = "dsse",
) -> DsseEnvelope | SigstoreBundle:
    """Evaluate the artifact under one ImagePolicy and return a signed VSA v1 (PASSED or
    FAILED: both are signed statements); every issued VSA is an audit event."""
    key = parse_digest(digest, "digest")
    settings: Settings = request.app.state.settings
    try:
        signer = keyring(request).signer()
    except VsaKeyError as exc:
        raise ApiError(503, "vsa_key_unavailable", str(exc)) from exc
    with request.app.state.db.session() as session:
        issued = issue_vsa(
            session,
            _active_policies(request),
            signer,
            IssueRequest(key, policy, image, resource_uri),
            verifier_id=settings.vsa_verifier_id,
            base_url=str(request.base_url),
            actor=principal.name,
            now=datetime.now(UTC),
        )
    response.headers["X-VSA-Result"] = issued.statement["predicate"]["verificationResult"]
    response.headers["X-VSA-Key-Id"] = issued.key_id
    if format == "bundle":
        return SigstoreBundle.model_validate(as_bundle(issued.envelope, issued.key_id))
    return DsseEnvelope.model_validate(issued.envelope)


@router.get(
    "/v1/vsa/public-key",
    response_model=PublicKeys,
    responses={
        200: {
            "description": "format=json: every valid key; format=pem: the active key's PEM",
            "content": {"application/x-pem-file": {"schema": {"type": "string"}}},
        },
        503: {"description": "the VSA signing key cannot be loaded (error.code says why)"},
    },
)
def get_public_keys(
    request: Request,
    _principal: Reader,
    format: Annotated[
        Literal["json", "pem"], Query(description="pem: the active key's PEM alone")
    ] = "json",
) -> PublicKeys | Response:
    """The key that signs new VSAs, and every rotated-out key still valid for older ones."""
    try:
        keys = keyring(request).published()
    except VsaKeyError as exc:
        raise ApiError(503, "vsa_key_unavailable", str(exc)) from exc
    if format == "pem":
        return Response(keys[0].public_key_pem, media_type="application/x-pem-file")
    settings: Settings = request.app.state.settings
    views = [
        PublishedKeyView(
            keyId=k.key_id,
            algorithm=k.algorithm,  # type: ignore[arg-type]
            publicKey=k.public_key_pem,
            active=k.active,
        )
        for k in keys
    ]
    return PublicKeys(
        keyId=views[0].keyId,
        algorithm=views[0].algorithm,
        publicKey=views[0].publicKey,
        verifierId=settings.vsa_verifier_id,
        keys=views,
    )
