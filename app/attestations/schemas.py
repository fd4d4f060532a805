from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class SubjectOut(BaseModel):
    name: str
    digest: dict[str, str] = Field(description="algorithm -> lowercase hex")


class SignerOut(BaseModel):
    kind: str
    issuer: str | None = None
    san: str | None = None
    key_id: str | None = None


class MaterialOut(BaseModel):
    uri: str | None
    digest: dict[str, str]


class AttestationSummary(BaseModel):
    id: str = Field(description="sha256 of the uploaded bytes")
    format: str
    media_type: str | None
    content_kind: str
    predicate_type: str | None
    subjects: list[SubjectOut]
    signer: SignerOut
    trust_root: str | None
    trust_roots: list[str] = Field(
        default_factory=list, description="every configured trust root that verifies it"
    )
    builder_id: str | None
    source_repo: str | None
    source_ref: str | None
    source_commit: str | None
    uploaded_at: datetime
    uploaded_by: str
    revoked: bool


class AttestationDetail(AttestationSummary):
    size: int
    signers: list[dict[str, Any]]
    tlog_entries: list[dict[str, Any]]
    timestamps: list[str]
    build_type: str | None
    build_parameters: dict[str, Any] | None
    materials: list[MaterialOut]
    statement: dict[str, Any] | None
    revoked_at: datetime | None
    revoked_reason: str | None


class RevocationResult(AttestationDetail):
    # What the revocation touches in running clusters, from the listeners registered for it
    # (continuous validation, when enabled): filled by packages above this one.
    affected_workloads: list[dict[str, Any]] = []


class UploadResult(BaseModel):
    status: Literal["created", "existing", "rejected"]
    id: str | None = Field(None, description="attestation id, when stored or already present")
    sha256: str = Field(description="sha256 of the uploaded (line's) bytes")
    error: dict[str, Any] | None = Field(None, description="{code, message} when rejected")
    attestation: AttestationSummary | None = None


class LineResult(UploadResult):
    line: int = Field(description="1-based line number in the .intoto.jsonl upload")


class JsonlUploadResponse(BaseModel):
    results: list[LineResult]
    created: int
    existing: int
    rejected: int


class RevokeRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=4000, description="why, for the audit log")


class AttestationPage(BaseModel):
    items: list[AttestationSummary]
    next_cursor: str | None
