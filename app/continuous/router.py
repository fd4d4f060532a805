"""GET /v1/findings, GET /v1/workloads, GET /v1/notifications/deliveries."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from app.auth.dependencies import require
from app.auth.schemas import Principal, Scope
from app.continuous import queries
from app.continuous.schemas import DeliveryPage, FindingPage, WorkloadList
from app.errors import ApiError

router = APIRouter(tags=["continuous"])
Reader = Annotated[Principal, Depends(require(Scope.READ))]
Name = Annotated[str | None, Query(max_length=253)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Status = Literal["compliant", "violating", "error", "exempt"]


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise ApiError(400, "invalid_cursor", "cursor is not one this server issued")
    return int(cursor)


@router.get("/v1/findings", response_model=FindingPage)
def list_findings(
    request: Request,
    _principal: Reader,
    namespace: Name = None,
    status: Status | None = None,
    policy: Name = None,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
    limit: Limit = 100,
) -> FindingPage:
    """The current state of each running (workload, container, image): compliant, violating,
    error or exempt, with the policies, reasons and since when."""
    with request.app.state.db.session() as session:
        rows = queries.find_findings(
            session,
            namespace=namespace,
            status=status,
            policy=policy,
            after=_cursor(cursor),
            limit=limit,
        )
        items = [queries.finding_out(r) for r in rows]
    next_cursor = str(items[-1].id) if len(items) == limit else None
    return FindingPage(items=items, next_cursor=next_cursor)


@router.get("/v1/workloads", response_model=WorkloadList)
def list_workloads(
    request: Request,
    _principal: Reader,
    namespace: Name = None,
    image: Annotated[
        str | None,
        Query(
            max_length=1024,
            description="a repository (any version), repository@digest or sha256:<hex>",
        ),
    ] = None,
    limit: Limit = 500,
) -> WorkloadList:
    """Running workloads (as the watcher last saw them) with their containers' images."""
    with request.app.state.db.session() as session:
        try:
            items = queries.find_workloads(session, namespace=namespace, image=image, limit=limit)
        except ValueError as exc:
            raise ApiError(400, "invalid_parameter", str(exc), {"parameter": "image"}) from exc
    return WorkloadList(items=items)


@router.get("/v1/notifications/deliveries", response_model=DeliveryPage)
def list_deliveries(
    request: Request,
    _principal: Reader,
    endpoint: Name = None,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Limit = 100,
) -> DeliveryPage:
    """The notification delivery log, newest first: each attempt's outcome."""
    with request.app.state.db.session() as session:
        items = queries.find_deliveries(session, endpoint=endpoint, status=status, limit=limit)
    return DeliveryPage(items=items, next_cursor=None)
