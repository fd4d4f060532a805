"""Reading findings, workloads and the delivery log (the API, the CLI, metrics, revocations)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.continuous.models import Delivery, Finding
from app.continuous.schemas import (
    AffectedWorkload,
    DeliveryOut,
    FindingOut,
    WorkloadContainer,
    WorkloadOut,
    WorkloadRef,
)
from app.policy.matching import parse_image

_SEVERITY = {"error": 3, "violating": 2, "exempt": 1, "compliant": 0}


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def finding_out(row: Finding) -> FindingOut:
    return FindingOut(
        id=row.id,
        cluster=row.cluster,
        namespace=row.namespace,
        workload=WorkloadRef(kind=row.workload_kind, name=row.workload_name),
        container=row.container,
        image=row.image,
        digest=row.digest,
        status=row.status,
        expiring=row.expiring,
        policies=[p for p in row.policies.split(",") if p],
        reasons=list(row.reasons),
        pods=row.pods,
        since=row.since,
        evaluated_at=row.evaluated_at,
        policy_hash=row.policy_hash,
    )


def find_findings(
    session: Session,
    *,
    namespace: str | None = None,
    status: str | None = None,
    policy: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[Finding]:
    query = select(Finding)
    if namespace is not None:
        query = query.where(Finding.namespace == namespace)
    if status is not None:
        query = query.where(Finding.status == status)
    if policy is not None:
        query = query.where(Finding.policies.like(f"%,{_like_escape(policy)},%", escape="\\"))
    if after is not None:
        query = query.where(Finding.id > after)
    return list(session.scalars(query.order_by(Finding.id).limit(limit)))


def find_workloads(
    session: Session, *, namespace: str | None = None, image: str | None = None, limit: int = 500
) -> list[WorkloadOut]:
    """Workloads with their running containers; ``image`` matches a repository (any version),
    a repository@digest or a bare sha256 digest."""
    query = select(Finding)
    if namespace is not None:
        query = query.where(Finding.namespace == namespace)
    if image is not None:
        query = _image_filter(query, image)
    rows = session.scalars(
        query.order_by(
            Finding.cluster,
            Finding.namespace,
            Finding.workload_kind,
            Finding.workload_name,
            Finding.container,
        )
    )
    workloads: dict[tuple[str, str, str, str], WorkloadOut] = {}
    for row in rows:
        key = (row.cluster, row.namespace, row.workload_kind, row.workload_name)
        workload = workloads.get(key)
        if workload is None:
            if len(workloads) >= limit:
                break
            workload = workloads[key] = WorkloadOut(
                cluster=row.cluster,
                namespace=row.namespace,
                kind=row.workload_kind,
                name=row.workload_name,
                status="compliant",
                containers=[],
            )
        workload.containers.append(
            WorkloadContainer(
                container=row.container,
                image=row.image,
                digest=row.digest,
                status=row.status,
                pods=row.pods,
            )
        )
        if _SEVERITY.get(row.status, 0) > _SEVERITY.get(workload.status, 0):
            workload.status = row.status
    return list(workloads.values())


def _image_filter(query: Any, image: str) -> Any:
    if image.startswith("sha256:"):
        return query.where(Finding.digest == image.lower())
    ref = parse_image(image)  # ValueError: the caller answers 400
    if ref.digest_string is not None:
        return query.where(Finding.digest == ref.digest_string)
    prefix = _like_escape(ref.name)
    return query.where(
        (Finding.image == image)
        | Finding.image.like(f"{prefix}@%", escape="\\")
        | Finding.image.like(f"{prefix}:%", escape="\\")
    )


def affected_by(session: Session, digests: Sequence[str]) -> list[AffectedWorkload]:
    if not digests:
        return []
    rows = session.scalars(
        select(Finding)
        .where(Finding.digest.in_(list(digests)))
        .order_by(Finding.namespace, Finding.workload_name)
    )
    return [
        AffectedWorkload(
            cluster=r.cluster,
            namespace=r.namespace,
            kind=r.workload_kind,
            name=r.workload_name,
            container=r.container,
            image=r.image,
            status=r.status,
        )
        for r in rows
    ]


def find_deliveries(
    session: Session,
    *,
    endpoint: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[DeliveryOut]:
    query = select(Delivery)
    if endpoint is not None:
        query = query.where(Delivery.endpoint == endpoint)
    if status is not None:
        query = query.where(Delivery.status == status)
    rows = session.scalars(query.order_by(Delivery.created_at.desc(), Delivery.id).limit(limit))
    return [DeliveryOut.model_validate(row, from_attributes=True) for row in rows]


def violating_counts(session: Session) -> list[tuple[str, str, int]]:
    """(namespace, policy, violating workloads) for the gauge; a finding with no failing
    policy named (tag-only, no policy selects it) counts under policy ""."""
    rows = session.execute(
        select(
            Finding.namespace,
            Finding.policies,
            Finding.cluster,
            Finding.workload_kind,
            Finding.workload_name,
        ).where(Finding.status == "violating")
    ).all()
    workloads: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
    for namespace, policies, cluster, kind, name in rows:
        for policy in [p for p in policies.split(",") if p] or [""]:
            workloads.setdefault((namespace, policy), set()).add((cluster, kind, name))
    return sorted((ns, policy, len(w)) for (ns, policy), w in workloads.items())


def count_findings(session: Session) -> dict[str, int]:
    return dict(
        session.execute(select(Finding.status, func.count()).group_by(Finding.status)).all()
    )
