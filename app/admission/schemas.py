"""AdmissionReview as kube-apiserver sends it (``admission.k8s.io/v1``, and ``v1beta1``, whose
shape is the same), and the answer it expects back in the same apiVersion and kind."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ReviewVersion = Literal["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]
Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


class _Lenient(BaseModel):
    # Newer apiservers add fields; an unknown field must never turn into a denied Pod.
    model_config = ConfigDict(extra="allow")


class GroupVersionKind(_Lenient):
    group: str = ""
    version: str = ""
    kind: str = Field(min_length=1)


class GroupVersionResource(_Lenient):
    group: str = ""
    version: str = ""
    resource: str = Field(min_length=1)


class UserInfo(_Lenient):
    username: str = ""
    uid: str | None = None
    groups: list[str] | None = None


class AdmissionRequest(_Lenient):
    uid: str = Field(min_length=1, max_length=256)
    kind: GroupVersionKind
    resource: GroupVersionResource
    subResource: str | None = None
    requestKind: GroupVersionKind | None = None
    requestResource: GroupVersionResource | None = None
    requestSubResource: str | None = None
    name: str | None = None
    namespace: str | None = None
    operation: Operation
    userInfo: UserInfo = Field(default_factory=UserInfo)
    object: dict[str, Any] | None = None
    oldObject: dict[str, Any] | None = None
    dryRun: bool | None = None
    options: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _object_when_it_matters(self) -> AdmissionRequest:
        if self.operation in ("CREATE", "UPDATE") and self.object is None:
            raise ValueError(f"a {self.operation} request must carry the object")
        return self


class AdmissionReview(_Lenient):
    apiVersion: ReviewVersion
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class Status(BaseModel):
    status: Literal["Failure"] = "Failure"
    code: int
    reason: str
    message: str


class AdmissionResponse(BaseModel):
    uid: str
    allowed: bool
    status: Status | None = None
    warnings: list[str] | None = None
    auditAnnotations: dict[str, str] | None = None


class AdmissionReviewResponse(BaseModel):
    apiVersion: ReviewVersion
    kind: Literal["AdmissionReview"] = "AdmissionReview"
    response: AdmissionResponse

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
