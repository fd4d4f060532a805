"""Liveness, readiness and metrics: unauthenticated, for probes and scrapers."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    checks: dict[str, dict[str, object]] = {}
    try:
        with request.app.state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as exc:
        checks["database"] = {"ok": False, "message": f"{type(exc).__name__}: {exc}"}
    store = request.app.state.policies
    active = store.active
    checks["policies"] = {
        "ok": active is not None,
        "directory": str(store.directory),
        "content_hash": active.content_hash if active else None,
        # A failed reload keeps serving the last good set, but operators must see it.
        "last_error": store.last_error,
    }
    ready = all(bool(c["ok"]) for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
