"""Results: of one check (shared by the engine, SLSA and layout checks), and of an evaluation.

The evaluation results are the explanation a developer reads when a Pod is denied, and what
the audit log records, so each level says what was expected and what was found, and a
requirement's ``status`` tells "no attestation" (missing) from "attestation present but
failing" (failing) from "could not decide" (error).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

import orjson

RequirementStatus = Literal["passed", "missing", "failing", "error"]
PolicyStatus = Literal["passed", "failed", "error"]
ModeName = Literal["enforce", "warn", "audit"]


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    attestation: str  # id
    reason: str


@dataclass(frozen=True)
class RequirementResult:
    index: int
    name: str
    status: RequirementStatus
    reason: str
    attestations: tuple[str, ...] = ()  # the ids that satisfied it
    rejected: tuple[Rejection, ...] = ()  # present, but not good enough, and why
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "passed": self.passed,
            "status": self.status,
            "reason": self.reason,
            "attestations": list(self.attestations),
            "rejected": [{"attestation": r.attestation, "reason": r.reason} for r in self.rejected],
            **({"details": self.details} if self.details else {}),
        }


@dataclass(frozen=True)
class PolicyResult:
    name: str
    file: str
    mode: ModeName
    on_error: Literal["deny", "allow"]
    status: PolicyStatus
    passed: bool  # after onError: an error under onError=allow passes
    reason: str
    requirements: tuple[RequirementResult, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "mode": self.mode,
            "onError": self.on_error,
            "passed": self.passed,
            "status": self.status,
            "reason": self.reason,
            "requirements": [r.as_dict() for r in self.requirements],
        }


@dataclass(frozen=True)
class ImageResult:
    image: str  # as given
    reference: str | None  # normalized; None when it does not parse
    digest: str | None  # "sha256:<hex>"
    allowed: bool
    mode: ModeName
    reason: str
    policies: tuple[PolicyResult, ...] = ()
    warnings: tuple[str, ...] = ()
    audit: tuple[str, ...] = ()  # failures of audit-mode policies: recorded, never shown
    exemption: str | None = None  # the reason of the exemption that admitted it

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "reference": self.reference,
            "digest": self.digest,
            "allowed": self.allowed,
            "mode": self.mode,
            "reason": self.reason,
            "exemption": self.exemption,
            "warnings": list(self.warnings),
            "audit": list(self.audit),
            "policies": [p.as_dict() for p in self.policies],
        }

    @cached_property
    def canonical_json(self) -> bytes:
        """``as_dict`` as compact JSON with keys sorted by code point, written once per result:
        a cached result explains every admission of its image, and each is recorded. Raises
        orjson.JSONEncodeError for details orjson cannot write (callers fall back to ``as_dict``).
        """
        return orjson.dumps(self.as_dict(), option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class Evaluation:
    allowed: bool
    mode: ModeName
    images: tuple[ImageResult, ...]
    policy_hash: str | None  # content hash of the policy set that decided
    evaluated_at: datetime
    namespace: str | None = None

    @property
    def warnings(self) -> list[str]:
        return [w for image in self.images for w in image.warnings]

    @property
    def reason(self) -> str:
        denied = [i for i in self.images if not i.allowed]
        return "; ".join(f"{i.image}: {i.reason}" for i in denied or self.images)

    def as_dict(self, image: Callable[[ImageResult], Any] = ImageResult.as_dict) -> dict[str, Any]:
        """``image`` writes each image's result (the recorder passes pre-serialized JSON)."""
        return {
            "allowed": self.allowed,
            "mode": self.mode,
            "reason": self.reason,
            "namespace": self.namespace,
            "policy_hash": self.policy_hash,
            "evaluated_at": self.evaluated_at.isoformat(),
            "warnings": self.warnings,
            "images": [image(i) for i in self.images],
        }
