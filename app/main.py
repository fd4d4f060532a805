"""App factory: settings, database, policy store, routers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app import __version__, limits
from app.admission import fast_path
from app.admission.cache import DecisionCache, IndexVersionReader
from app.admission.fetch import RegistryAccess, RegistryFetchFailed
from app.admission.recorder import DecisionRecorder
from app.admission.recorder_process import ProcessRecorder
from app.admission.router import router as admission_router
from app.api_docs import install_docs
from app.attestations.router import router as attestations_router
from app.attestations.workers import IngestWorkers
from app.audit.query_router import router as query_router
from app.audit.router import router as audit_router
from app.audit.tasks import audit_lifespan
from app.auth.cache import TokenCache
from app.auth.router import router as auth_router
from app.continuous.metrics import FindingsCollector
from app.continuous.router import router as continuous_router
from app.continuous.wiring import RevocationHook, build_validator
from app.db import Database
from app.errors import install_error_handlers
from app.gc_tuning import tune_gc
from app.health import router as health_router
from app.metrics import Metrics, MetricsMiddleware
from app.openapi import install_openapi
from app.policy import load_events as policy_load_events
from app.policy.router import router as policy_router
from app.policy.store import PolicyStore, install_sighup_reload
from app.registry.errors import RegistryError
from app.registry.router import router as registry_router
from app.registry.service import RegistryService, TrustUnavailable, from_settings
from app.request_guard import RefuseUnrepresentable
from app.settings import Settings, get_settings, input_limits
from app.vsa.router import router as vsa_router


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
        # The recorder child spends its first second importing: load the policies meanwhile.
        await asyncio.gather(
            app.state.decision_recorder.start(),
            asyncio.to_thread(app.state.policies.reload, trigger="startup", actor="system:startup"),
        )
        install_sighup_reload(app.state.policies)
        if server_process:  # process-wide: not for apps embedded in tests or tools
            tune_gc()
        validator = app.state.continuous
        if validator is not None:
            validator.start()
        # Inside db.dispose(): shutdown waits for a checkpoint that is being signed.
        async with audit_lifespan(app):
            yield
            if validator is not None:
                await asyncio.to_thread(validator.stop)
            # Decisions already taken are recorded before the database goes.
            await app.state.decision_recorder.aclose()
        app.state.registry.close()
        app.state.ingest_workers.close()
        app.state.db.dispose()

    app = ProvenantAPI(
        title="Provenant",
        version=__version__,
        description="Records and verifies build provenance; answers Kubernetes admission.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from local assets
        redoc_url=None,
    )
    app.state.settings = settings
    limits.configure(input_limits(settings))
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
    # Network at admission only for policies that opt in (fetchOnMiss, tagOnly: resolve).
    app.state.registry = registry_service(settings, app.state.db, app.state.policies)
    app.state.admission_registry = registry_access(app.state.registry, settings)
    app.state.policies.recorders.append(policy_load_events.recorder(app.state.db))
    app.state.metrics = Metrics()
    # Continuous validation: hooks into policy reloads and revocations, registered here so that
    # policy and attestations never import it.
    app.state.continuous = (
        build_validator(settings, app.state.db, app.state.policies)
        if settings.continuous_enabled
        else None
    )
    if app.state.continuous is not None:
        app.state.policies.listeners.append(app.state.continuous.policies_reloaded)
    app.state.revocation_listeners = [RevocationHook(app.state.db, app.state.continuous)]
    app.state.metrics.registry.register(FindingsCollector(app.state.db))
    app.state.token_cache = TokenCache(settings.token_cache_seconds)
    app.admission_fast_path = fast_path.AdmissionFastPath(app.state.metrics)
    app.add_middleware(RefuseUnrepresentable)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(attestations_router)
    app.include_router(policy_router)
    app.include_router(admission_router)
    app.include_router(audit_router)
    app.include_router(query_router)
    app.include_router(vsa_router)
    app.include_router(registry_router)
    app.include_router(continuous_router)
    install_docs(app)
    install_openapi(app)  # after install_docs: it completes the document that one builds
    return app


# The registry as the app uses it: admission gets plain callables (it never imports the
# registry package, so the package graph stays one-way).


def registry_service(settings: Settings, db: Database, policies: PolicyStore) -> RegistryService:
    def trust():  # noqa: ANN202 - the active set's trust store, read per pull
        active = policies.active
        return active.trust if active is not None else None

    return from_settings(settings, db, trust)


def registry_access(service: RegistryService, settings: Settings) -> RegistryAccess:
    cap = settings.registry_fetch_max_seconds

    def fetch(
        images: Sequence[str],
        *,
        timeout: float,
        namespace: str | None,
        pull_secrets: Sequence[str],
    ) -> int:
        budget = min(timeout, cap)
        try:
            return service.fetch_missing(
                images, timeout=budget, namespace=namespace, pull_secrets=pull_secrets
            )
        except (RegistryError, TrustUnavailable) as exc:
            raise RegistryFetchFailed(_message("fetch on miss", exc, budget)) from exc

    def resolve(
        image: str, *, timeout: float, namespace: str | None, pull_secrets: Sequence[str]
    ) -> str:
        budget = min(timeout, cap)
        try:
            return service.resolve(
                image, timeout=budget, namespace=namespace, pull_secrets=pull_secrets
            )
        except (RegistryError, TrustUnavailable) as exc:
            raise RegistryFetchFailed(
                _message(f"resolving the tag of {image}", exc, budget)
            ) from exc

    return RegistryAccess(fetch=fetch, resolve=resolve, resolve_timeout=cap)


def _message(what: str, exc: Exception, budget: float) -> str:
    code = getattr(exc, "code", "policies_unavailable")
    detail = getattr(exc, "message", str(exc))
    return f"{what} failed: {code}: {detail} (budget {budget:g}s)"
