"""What a registry pull found, verified and rejected: the API's and the CLI's answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PullRequest(BaseModel):
    image: str = Field(
        min_length=1,
        max_length=1024,
        description="Image reference: repo:tag (resolved through the registry) or repo@sha256:...",
    )
    platforms: bool = Field(
        default=True,
        description="For a multi-platform index, also look beside each platform manifest",
    )
    namespace: str | None = Field(
        default=None, max_length=63, description="Namespace whose pull secrets may be used"
    )
    pull_secrets: list[str] = Field(
        default_factory=list, max_length=16, description="kubernetes.io/dockerconfigjson Secrets"
    )
    timeout: float | None = Field(
        default=None, gt=0, le=300, description="Seconds for the whole pull (default: setting)"
    )


class PullItem(BaseModel):
    subject_digest: str  # the image (or platform manifest) digest it was found beside
    scheme: Literal["referrers-api", "referrers-tag", "cosign-sig", "cosign-att"]
    manifest_digest: str
    layer_digest: str | None
    status: Literal["created", "existing", "rejected"]
    attestation_id: str | None = None
    predicate_type: str | None = None
    code: str | None = None  # why it was rejected
    message: str | None = None


class PullResult(BaseModel):
    image: str  # normalized reference as asked
    registry: str
    repository: str
    digest: str  # what the reference resolved to
    resolved_from_tag: str | None = None
    subjects: list[str]  # digests looked beside: the image, and an index's platform manifests
    referrers_api: bool | None = None  # False: the registry lacks it (tag schema used)
    items: list[PullItem]
    created: int = 0
    existing: int = 0
    rejected: int = 0
    seconds: float = 0.0
    verify_seconds: float = 0.0  # of which spent verifying and storing


class ResolveResult(BaseModel):
    image: str
    digest: str
