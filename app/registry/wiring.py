"""The registry service as the app uses it: built from settings, and handed to admission as
plain callables (admission never imports this package)."""

from __future__ import annotations

from collections.abc import Sequence

from app.admission.fetch import RegistryAccess, RegistryFetchFailed
from app.db import Database
from app.policy.store import PolicyStore
from app.registry.errors import RegistryError
from app.registry.service import RegistryService, TrustUnavailable, from_settings
from app.settings import Settings


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
