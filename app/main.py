"""App factory: settings, database, policy store, routers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.admission.cache import DecisionCache
from app.admission.router import router as admission_router
from app.attestations.router import router as attestations_router
from app.audit.query_router import router as query_router
from app.audit.router import router as audit_router
from app.audit.tasks import audit_lifespan
from app.auth.cache import TokenCache
from app.auth.router import router as auth_router
from app.db import Database
from app.errors import install_error_handlers
from app.health import router as health_router
from app.metrics import Metrics, MetricsMiddleware
from app.policy.router import router as policy_router
from app.policy.store import PolicyStore, install_sighup_reload
from app.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.policies.reload()
        install_sighup_reload(app.state.policies)
        # Inside db.dispose(): shutdown waits for a checkpoint that is being signed.
        async with audit_lifespan(app):
            yield
        app.state.db.dispose()

    app = FastAPI(
        title="Provenant",
        version=__version__,
        description="Records and verifies build provenance; answers Kubernetes admission.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = Database(settings.database_url, pool_size=settings.db_pool_size)
    app.state.policies = PolicyStore(settings.policy_dir)
    # Per process; invalidated through the database on uploads and revocations (every decision
    # reads the index version), so no listener needs starting, and here on policy reloads.
    app.state.admission_cache = DecisionCache(settings.admission_cache_seconds)
    app.state.admission_slots = asyncio.Semaphore(settings.admission_concurrency)
    app.state.policies.listeners.append(app.state.admission_cache.clear)
    app.state.metrics = Metrics()
    app.state.token_cache = TokenCache(settings.token_cache_seconds)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(attestations_router)
    app.include_router(policy_router)
    app.include_router(admission_router)
    app.include_router(audit_router)
    app.include_router(query_router)
    return app
