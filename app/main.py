"""App factory: settings, database, policy store, routers."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app import __version__
from app.admission import fast_path
from app.admission.cache import DecisionCache, IndexVersionReader
from app.admission.recorder import DecisionRecorder
from app.admission.recorder_process import ProcessRecorder
from app.admission.router import router as admission_router
from app.attestations.router import router as attestations_router
from app.attestations.workers import IngestWorkers
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


class ProvenantAPI(FastAPI):
    """FastAPI, with the admission webhook's requests answered before its middleware and router
    (see ``app.admission.fast_path``); the route in ``app.admission.router`` documents them."""

    admission_fast_path: fast_path.AdmissionFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.admission_fast_path
        if handler is not None and fast_path.handles(scope):
            scope["app"] = self
            await handler(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_server_app() -> FastAPI:
    """The factory ``provenant serve`` gives uvicorn: the app, owning its process."""
    return create_app(server_process=True)


def create_app(settings: Settings | None = None, *, server_process: bool = False) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.policies.reload()
        install_sighup_reload(app.state.policies)
        await app.state.decision_recorder.start()
        if server_process:  # process-wide: not for apps embedded in tests or tools
            tune_gc()
        # Inside db.dispose(): shutdown waits for a checkpoint that is being signed.
        async with audit_lifespan(app):
            yield
            # Decisions already taken are recorded before the database goes.
            await app.state.decision_recorder.aclose()
        app.state.ingest_workers.close()
        app.state.db.dispose()

    app = ProvenantAPI(
        title="Provenant",
        version=__version__,
        description="Records and verifies build provenance; answers Kubernetes admission.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = Database(settings.database_url, pool_size=settings.db_pool_size)
    app.state.policies = PolicyStore(settings.policy_dir)
    # Per process; invalidated through the database on uploads and revocations (the index
    # version, read at most every admission_index_max_age seconds), and here on policy reloads.
    app.state.admission_cache = DecisionCache(settings.admission_cache_seconds)
    app.state.admission_index = IndexVersionReader(
        app.state.db.engine, settings.admission_index_max_age
    )
    app.state.decision_recorder = (
        ProcessRecorder(app.state.db.url)
        if settings.admission_recorder == "process" and app.state.db.shared
        else DecisionRecorder(app.state.db)  # a child could not reach an in-memory database
    )
    app.state.admission_slots = asyncio.Semaphore(settings.admission_concurrency)
    app.state.ingest_workers = IngestWorkers(app.state.db, settings.ingest_workers)
    app.state.policies.listeners.append(app.state.admission_cache.clear)
    app.state.metrics = Metrics()
    app.state.token_cache = TokenCache(settings.token_cache_seconds)
    app.admission_fast_path = fast_path.AdmissionFastPath(app.state.metrics)
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


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path as far as is safe.

    What startup built lives as long as the process, so it is frozen out of every collection;
    and collections run less often (full ones about once per 100 million allocations). Measured
    under admission load: the default thresholds ran a full collection every few hundred
    requests, each 5 to 20 ms with the loop stopped, which cost more CPU than the requests.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(5000, 20, 1000)
