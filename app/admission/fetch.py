"""Opt-in network at admission: fetch on miss and tag resolution, through callables wired in
``app.main`` (admission does not import the registry package; the graph stays one-way).

Only policies that say ``source: {registry: {fetchOnMiss: true}}`` cause a fetch, only for
digests with nothing stored, and only within the policy's timeout (capped below the webhook's).
A registry failure raises ``RegistryFetchFailed``: the decision becomes an ``error``, so the
policy's ``onError`` applies, and its message says the registry failed, not the policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import bindparam, select, tuple_

from app.attestations.models import AttestationSubject
from app.db import Database
from app.policy.matching import parse_image
from app.policy.store import PolicySet


class FetchOnMiss(Protocol):
    def __call__(
        self,
        images: Sequence[str],
        *,
        timeout: float,
        namespace: str | None,
        pull_secrets: Sequence[str],
    ) -> int: ...


class ResolveTag(Protocol):
    def __call__(
        self, image: str, *, timeout: float, namespace: str | None, pull_secrets: Sequence[str]
    ) -> str: ...


class RegistryFetchFailed(Exception):
    """The registry could not be read in time; raised into the decision as an error."""


@dataclass(frozen=True)
class RegistryAccess:
    fetch: FetchOnMiss
    resolve: ResolveTag
    resolve_timeout: float = 3.0


@dataclass(frozen=True)
class _Plan:
    images: list[str]
    timeout: float
    pull_secrets: list[str]


def plan(
    db: Database,
    images: Sequence[str],
    namespace: str | None,
    policy_set: PolicySet,
    pod_pull_secrets: Sequence[str] = (),
) -> _Plan | None:
    """Which images to fetch for: pinned, selected by a policy that opted in, and with no
    attestation stored for their digest. None when there is nothing to fetch."""
    candidates: dict[str, tuple[str, str]] = {}
    timeout = 0.0
    secrets: list[str] = list(pod_pull_secrets)
    for image in images:
        try:
            ref = parse_image(image)
        except ValueError:
            continue
        if ref.digest is None:
            continue
        for policy in policy_set.policies:
            source = policy.registry
            if source is None or not policy.selects(ref, namespace):
                continue
            candidates[image] = ref.digest
            # The most patient opted-in policy sets the budget; the cap applies later.
            timeout = max(timeout, source.timeout)
            secrets += [s for s in source.pullSecrets if s not in secrets]
    if not candidates:
        return None
    stored = _stored_digests(db, set(candidates.values()))
    missing = [image for image, digest in candidates.items() if digest not in stored]
    return _Plan(missing, timeout, secrets) if missing else None


_STORED = select(AttestationSubject.algorithm, AttestationSubject.digest).where(
    tuple_(AttestationSubject.algorithm, AttestationSubject.digest).in_(
        bindparam("pairs", expanding=True)
    )
)


def _stored_digests(db: Database, digests: set[tuple[str, str]]) -> set[tuple[str, str]]:
    with db.session() as session:
        rows = session.execute(_STORED, {"pairs": sorted(digests)}).all()
    return {(algorithm, digest) for algorithm, digest in rows}
