"""Answers of the findings, workloads and deliveries endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class WorkloadRef(BaseModel):
    kind: str
    name: str


class FindingOut(BaseModel):
    id: int
    cluster: str
    namespace: str
    workload: WorkloadRef
    container: str
    image: str
    digest: str | None
    status: str
    expiring: bool
    policies: list[str]
    reasons: list[str]
    pods: int
    since: datetime
    evaluated_at: datetime
    policy_hash: str | None


class FindingPage(BaseModel):
    items: list[FindingOut]
    next_cursor: str | None


class WorkloadContainer(BaseModel):
    container: str
    image: str
    digest: str | None
    status: str
    pods: int


class WorkloadOut(BaseModel):
    cluster: str
    namespace: str
    kind: str
    name: str
    status: str  # the worst of its containers': error > violating > exempt > compliant
    containers: list[WorkloadContainer]


class WorkloadList(BaseModel):
    items: list[WorkloadOut]


class DeliveryOut(BaseModel):
    id: str
    endpoint: str
    event_type: str
    subject: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    event: dict[str, Any]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class AffectedWorkload(BaseModel):
    """A running workload that a revocation touches, as the findings knew it at that moment."""

    cluster: str
    namespace: str
    kind: str
    name: str
    container: str
    image: str
    status: str
