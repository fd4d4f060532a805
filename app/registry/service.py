"""Pull: resolve an image, discover what is stored beside it, and ingest every item through the
same path as an upload (``app.attestations.service.ingest``), with actor ``registry``.

Three triggers share it: ``provenant registry pull``, ``POST /v1/registry/pull`` and, for
policies that opt in, admission's fetch on miss (``fetch_missing``: coalesced per digest,
remembered briefly when it fails or finds nothing, bounded by the admission's budget).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.attestations.service import MessageSubject, ingest, record_rejection
from app.audit.service import record_event
from app.db import Database
from app.policy.matching import ImageRef, parse_image
from app.registry import errors as E
from app.registry.client import INDEX_TYPES, Deadline, Fetched, RegistryClient
from app.registry.credentials import Credential, Keychain
from app.registry.discovery import Found, Problem, Target, discover
from app.registry.errors import RegistryError
from app.registry.flight import NegativeCache, SingleFlight
from app.registry.models import RegistryOrigin
from app.registry.schemas import PullItem, PullResult
from app.verification.errors import VerificationError
from app.verification.trust import TrustStore

log = logging.getLogger("provenant.registry")

ACTOR = "registry"
MAX_PLATFORMS = 16


class TrustUnavailable(Exception):
    """No policy set is loaded, so nothing found could be verified."""


@dataclass(frozen=True)
class _Image:
    ref: ImageRef
    digest: str  # "sha256:<hex>"
    manifest: Fetched
    tag: str | None  # the tag it was resolved from, if it was


class RegistryService:
    def __init__(
        self,
        db: Database,
        trust: Callable[[], TrustStore | None],
        client: RegistryClient,
        keychain: Keychain,
        *,
        timeout: float = 30.0,
        negative_seconds: float = 10.0,
        tag_seconds: float = 60.0,
        workers: int = 8,
    ) -> None:
        self.db = db
        self.trust = trust
        self.client = client
        self.keychain = keychain
        self.timeout = timeout
        self._flights: SingleFlight[PullResult] = SingleFlight()
        self._misses: NegativeCache[RegistryError | PullResult] = NegativeCache(negative_seconds)
        self._tags: NegativeCache[str] = NegativeCache(tag_seconds)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="registry-fetch")
        # Separate from the fetch pool: fetches wait on lookups, so sharing could deadlock.
        self._lookups = ThreadPoolExecutor(workers, thread_name_prefix="registry-lookup")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._lookups.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # -- triggers --------------------------------------------------------------------------

    def pull(
        self,
        image: str,
        *,
        timeout: float | None = None,
        namespace: str | None = None,
        pull_secrets: Sequence[str] = (),
        platforms: bool = True,
        trigger: str = "api",
        progress: Callable[[str], None] | None = None,
    ) -> PullResult:
        """Everything beside ``image`` (and, for an index, beside its platform manifests).

        Raises RegistryError when the registry fails (the pull is recorded as failed) and
        TrustUnavailable without a loaded policy set.
        """
        deadline = Deadline.after(timeout or self.timeout)
        ref = parse_reference(image)
        credential = self.keychain.lookup(ref.registry, namespace, pull_secrets)
        return self._pull(ref, deadline, credential, platforms, trigger, progress)

    def resolve(
        self,
        image: str,
        *,
        timeout: float | None = None,
        namespace: str | None = None,
        pull_secrets: Sequence[str] = (),
    ) -> str:
        """The digest a tag points at now, cached for the tag cache time."""
        ref = parse_reference(image)
        if ref.digest is not None:
            return ref.digest_string or ""
        key = (ref.registry, ref.repository, ref.tag or "latest")
        cached = self._tags.get(key)
        if cached is not None:
            return cached
        deadline = Deadline.after(timeout or self.timeout)
        credential = self.keychain.lookup(ref.registry, namespace, pull_secrets)
        resolved = self._image(ref, deadline, credential)
        return resolved.digest

    def fetch_missing(
        self,
        images: Sequence[str],
        *,
        timeout: float,
        namespace: str | None = None,
        pull_secrets: Sequence[str] = (),
    ) -> int:
        """Fetch on miss for admission: pull beside each image's digest, all at once, within
        ``timeout``. Returns how many attestations were stored; raises the first RegistryError.
        """
        deadline = Deadline.after(timeout)
        futures = [
            self._executor.submit(self._fetch_one, image, deadline, namespace, tuple(pull_secrets))
            for image in images
        ]
        done, pending = wait_all(futures, timeout=max(deadline.remaining(), 0))
        for future in pending:
            future.cancel()
        if pending:
            raise RegistryError(E.TIMEOUT, f"registry fetch did not finish within {timeout:g}s")
        stored = 0
        for future in done:
            stored += future.result().created  # raises the fetch's RegistryError
        return stored

    def _fetch_one(
        self, image: str, deadline: Deadline, namespace: str | None, pull_secrets: tuple[str, ...]
    ) -> PullResult:
        ref = parse_reference(image)
        if ref.digest is None:
            raise RegistryError(E.INVALID_REFERENCE, f"{image} has no digest to fetch beside")
        key = (ref.registry, ref.repository, ref.digest_string)
        remembered = self._misses.get(key)
        if isinstance(remembered, RegistryError):
            raise RegistryError(
                remembered.code, f"{remembered.message} (remembered)", registry=remembered.registry
            )
        if remembered is not None:
            return remembered
        credential = self.keychain.lookup(ref.registry, namespace, pull_secrets)
        try:
            result = self._flights.do(
                key,
                lambda: self._pull(ref, deadline, credential, False, "admission", None),
                wait=max(deadline.remaining(), 0),
            )
        except TimeoutError as exc:
            raise RegistryError(
                E.TIMEOUT,
                f"a fetch of {ref.reference} already in flight did not finish in time",
                registry=ref.registry,
            ) from exc
        except RegistryError as exc:
            self._misses.put(key, exc)
            raise
        if result.created + result.existing == 0:
            self._misses.put(key, result)
        return result

    # -- the pull --------------------------------------------------------------------------

    def _pull(
        self,
        ref: ImageRef,
        deadline: Deadline,
        credential: Credential | None,
        platforms: bool,
        trigger: str,
        progress: Callable[[str], None] | None,
    ) -> PullResult:
        started = time.perf_counter()
        trust = self.trust()
        if trust is None:
            raise TrustUnavailable("no policy set is loaded, so nothing can be verified")
        try:
            image = self._image(ref, deadline, credential)
            subjects = [image.digest]
            if platforms and image.manifest.media_type in INDEX_TYPES:
                subjects += platform_digests(image.manifest)
            result = PullResult(
                image=ref.reference,
                registry=ref.registry,
                repository=ref.repository,
                digest=image.digest,
                resolved_from_tag=image.tag,
                subjects=subjects,
                items=[],
            )
            verifying = 0.0
            for subject in subjects:
                if progress:
                    progress(f"looking beside {ref.name}@{subject}")
                target = Target(ref.registry, ref.repository, subject, credential)
                found = discover(self.client, target, deadline, self._lookups)
                if subject == image.digest:
                    result.referrers_api = found.referrers_api
                began = time.perf_counter()
                for item in found.found:
                    if progress:
                        progress(f"verifying {item.scheme} {item.layer_digest[:19]}")
                    result.items.append(self._ingest(trust, ref, subject, item))
                for problem in found.problems:
                    result.items.append(self._reject(ref, subject, problem))
                verifying += time.perf_counter() - began
        except RegistryError as exc:
            self._record_pull(ref, trigger, None, exc)
            raise
        result.created = sum(i.status == "created" for i in result.items)
        result.existing = sum(i.status == "existing" for i in result.items)
        result.rejected = sum(i.status == "rejected" for i in result.items)
        result.seconds = round(time.perf_counter() - started, 4)
        result.verify_seconds = round(verifying, 4)
        self._record_pull(ref, trigger, result, None)
        return result

    def _image(self, ref: ImageRef, deadline: Deadline, credential: Credential | None) -> _Image:
        # First, so a refused registry is always registry_not_allowed (never a timeout of a
        # tiny deadline), and a refused pull is audited like any failed one.
        self.client.allowlist.check_registry(ref.registry)
        if ref.digest is not None and ref.digest[0] != "sha256":
            raise RegistryError(E.INVALID_REFERENCE, "only sha256 image digests are supported")
        reference = ref.digest_string if ref.digest else (ref.tag or "latest")
        assert reference is not None
        fetched = self.client.manifest(
            ref.registry, ref.repository, reference, deadline, credential=credential
        )
        if fetched is None:
            raise RegistryError(
                E.NOT_FOUND,
                f"{ref.name}:{reference} not found on {ref.registry}",
                registry=ref.registry,
            )
        tag = None if ref.digest else reference
        if tag is not None:
            self._tags.put((ref.registry, ref.repository, tag), fetched.digest)
        return _Image(ref, fetched.digest, fetched, tag)

    def _ingest(
        self, trust: TrustStore, ref: ImageRef, subject_digest: str, item: Found
    ) -> PullItem:
        algorithm, _, hex_digest = subject_digest.partition(":")
        subject = (
            MessageSubject(ref.name, algorithm, hex_digest, signed=item.signed_digest)
            if item.message_signature
            else None
        )
        origin = _origin(ref, subject_digest, item.scheme, item.manifest_digest, item.layer_digest)

        def add_origin(session: Session) -> None:
            session.execute(insert(RegistryOrigin.__table__), [_origin_row(origin, attestation)])

        attestation = _sha256_hex(item.document)
        outcome = ingest(
            self.db,
            trust,
            item.document,
            uploader=ACTOR,
            subject=subject,
            origin=origin,
            on_store=add_origin,
        )
        if outcome.status == "existing":
            self._remember_origin(origin, outcome.sha256)
        base: dict[str, Any] = {
            "subject_digest": subject_digest,
            "scheme": item.scheme,
            "manifest_digest": item.manifest_digest,
            "layer_digest": item.layer_digest,
            "status": outcome.status,
        }
        if outcome.status == "rejected":
            assert outcome.error is not None
            return PullItem(**base, code=outcome.error.code, message=outcome.error.message)
        summary = outcome.attestation
        return PullItem(
            **base,
            attestation_id=outcome.sha256,
            predicate_type=summary.predicate_type if summary is not None else None,
        )

    def _reject(self, ref: ImageRef, subject_digest: str, problem: Problem) -> PullItem:
        origin = _origin(
            ref, subject_digest, problem.scheme, problem.manifest_digest, problem.layer_digest
        )
        error = VerificationError(problem.error.code, problem.error.message)
        record_rejection(self.db, ACTOR, problem.raw, error, origin=origin)
        return PullItem(
            subject_digest=subject_digest,
            scheme=problem.scheme,  # type: ignore[arg-type]
            manifest_digest=problem.manifest_digest,
            layer_digest=problem.layer_digest,
            status="rejected",
            code=problem.error.code,
            message=problem.error.message,
        )

    def _remember_origin(self, origin: dict[str, Any], attestation_id: str) -> None:
        """An item already stored (uploaded by CI, or found before): add where it was found."""
        row = _origin_row(origin, attestation_id)
        try:
            with self.db.session() as session:
                known = session.scalar(
                    select(RegistryOrigin.id).where(
                        RegistryOrigin.attestation_id == attestation_id,
                        RegistryOrigin.registry_host == row["registry_host"],
                        RegistryOrigin.repository == row["repository"],
                        RegistryOrigin.manifest_digest == row["manifest_digest"],
                    )
                )
                if known is None:
                    session.execute(insert(RegistryOrigin.__table__), [row])
        except IntegrityError:
            pass  # a concurrent pull recorded the same place

    def _record_pull(
        self, ref: ImageRef, trigger: str, result: PullResult | None, error: RegistryError | None
    ) -> None:
        payload: dict[str, Any] = {"image": ref.reference, "trigger": trigger}
        if result is not None:
            payload.update(
                digest=result.digest,
                subjects=result.subjects,
                created=result.created,
                existing=result.existing,
                rejected=result.rejected,
            )
            kind = "registry.pulled"
        else:
            assert error is not None
            payload.update(code=error.code, message=error.message)
            kind = "registry.pull_failed"
        with self.db.session() as session:
            record_event(session, kind, ACTOR, payload)


def parse_reference(image: str) -> ImageRef:
    try:
        return parse_image(image)
    except ValueError as exc:
        raise RegistryError(E.INVALID_REFERENCE, str(exc)) from exc


def platform_digests(index: Fetched) -> list[str]:
    """An index's platform manifests: users deploy by the index digest (what a tag points
    at) or by a platform digest (what a node pulls), and either may have been signed."""
    manifests = index.json().get("manifests")
    digests: list[str] = []
    for descriptor in manifests if isinstance(manifests, list) else []:
        if not isinstance(descriptor, dict):
            continue
        digest = descriptor.get("digest")
        if isinstance(digest, str) and digest.startswith("sha256:") and digest not in digests:
            digests.append(digest)
    return digests[:MAX_PLATFORMS]


def _origin(
    ref: ImageRef, subject_digest: str, scheme: str, manifest_digest: str, layer: str | None
) -> dict[str, Any]:
    return {
        "registry": ref.registry,
        "repository": ref.repository,
        "subject_digest": subject_digest,
        "scheme": scheme,
        "manifest_digest": manifest_digest,
        "layer_digest": layer,
    }


def _origin_row(origin: dict[str, Any], attestation_id: str) -> dict[str, Any]:
    return {
        "attestation_id": attestation_id,
        "registry_host": origin["registry"],
        "repository": origin["repository"],
        "subject_digest": origin["subject_digest"],
        "manifest_digest": origin["manifest_digest"],
        "scheme": origin["scheme"],
        "found_at": datetime.now(UTC),
    }


def _sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def from_settings(
    settings: Any, db: Database, trust: Callable[[], TrustStore | None]
) -> RegistryService:
    """The process's registry service, configured by ``Settings`` (``PROVENANT_REGISTRY_*``)."""
    keychain = Keychain(settings.registry_auth_file, settings.registry_pull_secrets_dir)
    return RegistryService(
        db,
        trust,
        client_from_settings(settings),
        keychain,
        timeout=settings.registry_timeout,
        negative_seconds=settings.registry_negative_cache_seconds,
        tag_seconds=settings.registry_tag_cache_seconds,
    )


def client_from_settings(settings: Any) -> RegistryClient:
    return RegistryClient(
        certs_dir=settings.registry_certs_dir,
        insecure=[h for h in settings.registry_insecure.split(",") if h.strip()],
        concurrency=settings.registry_concurrency,
        retries=settings.registry_retries,
        max_manifest_bytes=settings.registry_max_manifest_bytes,
        max_blob_bytes=settings.registry_max_blob_bytes,
        allowed=settings.registry_allowed,
    )
