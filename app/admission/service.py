"""Deciding an AdmissionReview: extract the images, evaluate them with the policy engine against
the stored, verified facts (through the decision cache), judge per mode, record, answer.

Nothing here calls the network: the engine only reads the database. Every decision is recorded
with its audit event in one transaction; a decision that cannot be recorded is refused, since
an unrecorded admission is exactly what an audit trail must not have.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

from app.admission import record as records
from app.admission.cache import DecisionCache, IndexVersionReader, current_index_version
from app.admission.extract import EPHEMERAL_SUBRESOURCE, ExtractError, Extraction, extract
from app.admission.fetch import RegistryAccess, RegistryFetchFailed, plan
from app.admission.lookup import image_digests, prefetching_lookup
from app.admission.recorder import Recorder
from app.admission.respond import object_name, respond
from app.admission.schemas import AdmissionRequest, AdmissionReview
from app.admission.verdicts import (
    BREAK_GLASS_ANNOTATION,
    Verdict,
    apply_break_glass,
    from_error,
    from_evaluation,
    not_evaluated,
)
from app.db import DATABASE_UNAVAILABLE, Database
from app.policy.engine import evaluate_images, workload_evaluation
from app.policy.matching import any_matches, parse_image
from app.policy.results import Evaluation, ImageResult
from app.policy.store import PolicySet, PolicyStore

log = logging.getLogger("provenant.admission")


@dataclass(frozen=True)
class Admission:
    """What deciding needs from the app."""

    db: Database
    policies: PolicyStore
    cache: DecisionCache
    # None: read the index version for every decision (CLI replays, tests).
    index: IndexVersionReader | None = None
    # None: no network at admission, whatever policies ask (simulation, CLI replays).
    registry: RegistryAccess | None = None
    # PROVENANT_MAX_CONTAINERS_PER_OBJECT; None: no limit (replays of recorded requests).
    max_containers: int | None = None


class NeedsDatabase(Exception):
    """Deciding needs a database read: leave the event loop for a worker thread."""


@dataclass(frozen=True)
class Prepared:
    """A decision taken, answered and ready to record."""

    answer: dict[str, Any]  # the AdmissionReview to send back, as JSON data
    record: records.DecisionRecord


def extract_images(request: AdmissionRequest) -> Extraction | None:
    """The containers of the request's object; None when there is nothing to extract (DELETE,
    CONNECT). Raises ExtractError for an object not shaped like its kind."""
    if request.operation not in ("CREATE", "UPDATE") or request.object is None:
        return None
    return extract(request.kind.group, request.kind.kind, request.object, request.subResource)


async def decide_async(
    admission: Admission,
    recorder: Recorder,
    slots: asyncio.Semaphore,
    review: AdmissionReview,
    body: bytes,
    extraction: Extraction | None,
    caller: str,
) -> dict[str, Any]:
    """The answer, as JSON data. Decided on the event loop when every image's evaluation is
    cached (the common case: a Deployment's replicas, restarts, rollouts); otherwise in a worker
    thread, at most ``slots`` at once, since evaluation then reads the database. Recording is a
    group commit."""
    index = admission.index
    if index is not None and index.fresh() is None:
        # One primary-key read, off the loop; then the decision can usually stay on it.
        try:
            await index.refresh()
        except DATABASE_UNAVAILABLE:
            # Deciding reads it again below, in a worker thread, where a failure becomes an
            # error verdict, and then cannot be recorded: refused, never admitted unrecorded.
            pass
    try:
        prepared = prepare(admission, review, body, extraction, caller, cached_only=True)
    except NeedsDatabase:
        # Evaluations that read the database serialize on it and on the GIL anyway; letting
        # every request into the threadpool only makes them queue there and stretches the tail.
        async with slots:
            prepared = await anyio.to_thread.run_sync(
                functools.partial(prepare, admission, review, body, extraction, caller)
            )
    try:
        await recorder.record(prepared.record)
    except Exception as exc:
        return _unrecorded(review, prepared, exc)
    return prepared.answer


def prepare(
    admission: Admission,
    review: AdmissionReview,
    body: bytes,
    extraction: Extraction | None,
    caller: str,
    *,
    cached_only: bool = False,
) -> Prepared:
    """Judge the request and build its answer and its record. With ``cached_only``, raise
    NeedsDatabase instead of reading the database."""
    request = review.request
    now = datetime.now(UTC)
    decision_id = records.new_decision_id()
    policy_set = admission.policies.active
    policy_hash = policy_set.content_hash if policy_set else None
    namespace = request.namespace or _object_namespace(request)
    verdict = judge_or_error(
        admission,
        request,
        extraction,
        policy_set,
        namespace,
        now,
        label=decision_id,
        cached_only=cached_only,
    )
    answer = respond(review, verdict, decision_id, policy_hash).as_json()
    if over_container_limit(admission, extraction):
        # Recorded without its thousands of image rows: none was evaluated, and the review as
        # received (kept in the record) still lists them.
        extraction = None
    record = records.DecisionRecord(
        id=decision_id,
        at=now,
        request=request,
        review=body,
        extraction=extraction,
        verdict=verdict,
        policy_hash=policy_hash,
        caller=caller,
        namespace=namespace,
        name=request.name or object_name(request),
        response=answer["response"],
    )
    return Prepared(answer, record)


def _unrecorded(review: AdmissionReview, prepared: Prepared, exc: Exception) -> dict[str, Any]:
    """A decision that could not be recorded is refused, whatever it was."""
    log.error(
        "admission %s (%s): the decision could not be recorded",
        review.request.uid,
        prepared.record.id,
        exc_info=exc,
    )
    unrecorded = from_error(
        f"recording failed: {type(exc).__name__}: {exc}",
        f"{type(exc).__name__} while recording the decision",
        allowed=False,
        rule="rule: every decision is recorded",
    )
    return respond(review, unrecorded, None, prepared.record.policy_hash).as_json()


def judge_or_error(
    admission: Admission,
    request: AdmissionRequest,
    extraction: Extraction | None,
    policy_set: PolicySet | None,
    namespace: str | None,
    now: datetime,
    *,
    label: str,
    cached_only: bool = False,
) -> Verdict:
    """``judge``, with an internal failure turned into its onError verdict. Records nothing:
    policy simulation replays requests through here too."""
    try:
        return judge(
            admission, request, extraction, policy_set, namespace, now, cached_only=cached_only
        )
    except NeedsDatabase:
        raise
    except Exception as exc:
        log.exception("admission %s (%s): evaluation failed", request.uid, label)
        return _error_verdict(exc, policy_set, extraction, namespace)


def judge(
    admission: Admission,
    request: AdmissionRequest,
    extraction: Extraction | None,
    policy_set: PolicySet | None,
    namespace: str | None,
    now: datetime,
    *,
    cached_only: bool = False,
) -> Verdict:
    if request.operation in ("DELETE", "CONNECT"):
        return not_evaluated("skipped", f"{request.operation} requests are not evaluated")
    if request.subResource and request.subResource != EPHEMERAL_SUBRESOURCE:
        return not_evaluated(
            "skipped", f"the {request.subResource} subresource cannot change a Pod's images"
        )
    if policy_set is None:
        detail = admission.policies.last_error or "never loaded"
        raise NoPolicySet(f"no policy set is loaded ({detail})")
    config = policy_set.config
    if namespace is not None:
        excluded = any_matches(config.excluded_namespaces, namespace)
        if excluded is not None:
            return not_evaluated(
                "excluded", f"namespace {namespace} is excluded from policy ({excluded.pattern})"
            )
    if extraction is None or not extraction.supported:
        kind = f"{request.kind.group or 'core'}/{request.kind.version}/{request.kind.kind}"
        reason = f"{kind} is not a kind Provenant reads images from; allowed without evaluation"
        return not_evaluated("unsupported", reason, warning=f"Provenant: {reason}")
    if over_container_limit(admission, extraction):
        return container_limit_verdict(len(extraction.containers), admission.max_containers)
    images = extraction.images
    if not images:
        return not_evaluated("allowed", "the object has no containers")
    if request.operation == "UPDATE":
        # What an update adds is judged; what it keeps was judged when it came in. Judging
        # kept images again would let a revocation or a stricter policy block controllers'
        # metadata updates (finalizer removal, adoption) on running workloads, and protects
        # nothing: every new Pod is a CREATE, evaluated in full.
        before = _images_before(request)
        images = [image for image in images if image not in before]
        if not images:
            return not_evaluated("unchanged", "the update changes no image")
    evaluation = evaluate(
        admission,
        images,
        namespace,
        policy_set,
        now,
        cached_only=cached_only,
        pull_secrets=pull_secrets_of(request.object),
    )
    verdict = from_evaluation(evaluation, extraction, config, now)
    return apply_break_glass(
        verdict,
        _break_glass_annotation(request, extraction),
        permitted=namespace is not None and config.break_glass_allowed(namespace),
        namespace=namespace,
    )


def over_container_limit(admission: Admission, extraction: Extraction | None) -> bool:
    limit = admission.max_containers
    return limit is not None and extraction is not None and len(extraction.containers) > limit


def container_limit_verdict(count: int, limit: int | None) -> Verdict:
    """Refused before evaluation: evaluating costs time per container, and no real workload
    comes near the limit, so an object over it is hostile or broken."""
    line = (
        f"the object has {count} containers, more than PROVENANT_MAX_CONTAINERS_PER_OBJECT "
        f"({limit}); it was not evaluated"
    )
    return Verdict(False, "denied", [line], denial=[line])


def evaluate(
    admission: Admission,
    images: Sequence[str],
    namespace: str | None,
    policy_set: PolicySet,
    now: datetime,
    *,
    cached_only: bool = False,
    pull_secrets: Sequence[str] = (),
) -> Evaluation:
    """The engine's evaluation of ``images``, each taken from the cache when it can be."""
    cache = admission.cache
    results: dict[str, ImageResult] = {}
    resolved: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    if policy_set.config.tag_only == "resolve" and admission.registry is not None:
        if cached_only and _has_tag_only(images):
            raise NeedsDatabase  # resolving may touch the network: not on the event loop
        resolved, unresolved = _resolve_tags(admission.registry, images, namespace, pull_secrets)
    judged = [resolved.get(image, image) for image in images]
    # Read before any attestation: a change committed after this read has a newer version, so
    # whatever this decision caches from it is never reused once the change is visible.
    version = _index_version(admission, cached_only)
    for image in judged:
        hit = cache.get(version, (image, namespace, policy_set.content_hash))
        if hit is not None:
            results[image] = hit
    missing = [image for image in judged if image not in results]
    if missing:
        if cached_only:
            raise NeedsDatabase
        if admission.registry is not None and _fetch_on_miss(
            admission, admission.registry, missing, namespace, policy_set, pull_secrets
        ):
            # What the fetch stored bumped the index version: cache under the new one.
            version = _index_version(admission, cached_only, fresh=True)
        with admission.db.session() as session:
            lookup = prefetching_lookup(session, image_digests(missing))
            fresh = evaluate_images(missing, namespace, policy_set, lookup, now)
            for image, result in zip(missing, fresh.images, strict=True):
                results[image] = result
                cache.put(version, (image, namespace, policy_set.content_hash), result)
    ordered = tuple(
        _as_resolved(results[judged_image], image)
        if judged_image != image
        else _not_resolved(results[image], unresolved.get(image))
        for image, judged_image in zip(images, judged, strict=True)
    )
    return workload_evaluation(ordered, namespace, policy_set, now)


def _fetch_on_miss(
    admission: Admission,
    registry: RegistryAccess,
    images: Sequence[str],
    namespace: str | None,
    policy_set: PolicySet,
    pull_secrets: Sequence[str],
) -> bool:
    """Fetch beside the digests nothing is stored for, when a selecting policy opted in;
    True when a fetch ran. Raises RegistryFetchFailed (an error: onError applies)."""
    wanted = plan(admission.db, images, namespace, policy_set, pull_secrets)
    if wanted is None:
        return False
    registry.fetch(
        wanted.images,
        timeout=wanted.timeout,
        namespace=namespace,
        pull_secrets=wanted.pull_secrets,
    )
    return True


def _has_tag_only(images: Sequence[str]) -> bool:
    for image in images:
        try:
            if parse_image(image).digest is None:
                return True
        except ValueError:
            continue
    return False


def _resolve_tags(
    registry: RegistryAccess,
    images: Sequence[str],
    namespace: str | None,
    pull_secrets: Sequence[str],
) -> tuple[dict[str, str], dict[str, str]]:
    """tagOnly: resolve: each tag-only image as ``name:tag@digest``, the digest the registry
    names for the tag now; and why the others could not be resolved. An unresolved tag stays
    tag-only, which the engine denies under ``resolve`` unless an exemption admits the image:
    a registry that cannot answer must neither let a tag through nor block exempted images."""
    resolved: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    for image in images:
        try:
            ref = parse_image(image)
        except ValueError:
            continue  # the engine reports it
        if ref.digest is not None:
            continue
        try:
            digest = registry.resolve(
                image,
                timeout=registry.resolve_timeout,
                namespace=namespace,
                pull_secrets=pull_secrets,
            )
        except RegistryFetchFailed as exc:
            unresolved[image] = str(exc)
            continue
        resolved[image] = f"{ref.name}:{ref.tag or 'latest'}@{digest}"
    return resolved, unresolved


def _not_resolved(result: ImageResult, error: str | None) -> ImageResult:
    if error is None or result.allowed:
        return result
    return dataclasses.replace(result, reason=f"{result.reason} (a registry error: {error})")


def _as_resolved(result: ImageResult, image: str) -> ImageResult:
    note = (
        f"{image} has no digest; its tag was resolved through the registry to {result.digest} "
        "(tagOnly: resolve), and that digest was judged"
    )
    return dataclasses.replace(result, image=image, reason=f"{note}: {result.reason}")


def pull_secrets_of(obj: dict[str, Any] | None) -> list[str]:
    """The object's imagePullSecrets (a Pod's, or its pod template's), by name."""
    spec = (obj or {}).get("spec")
    for _ in range(3):  # Pod, template (Deployment...), jobTemplate.template (CronJob)
        if not isinstance(spec, dict):
            return []
        secrets = spec.get("imagePullSecrets")
        if isinstance(secrets, list):
            names = [s.get("name") for s in secrets if isinstance(s, dict)]
            return [n for n in names if isinstance(n, str) and n][:16]
        nested = spec.get("template") or spec.get("jobTemplate")
        spec = nested.get("spec") if isinstance(nested, dict) else None
    return []


def _index_version(admission: Admission, cached_only: bool, *, fresh: bool = False) -> int:
    reader = admission.index
    if fresh:
        return reader.read() if reader is not None else current_index_version(admission.db.engine)
    version = reader.fresh() if reader is not None else None
    if version is not None:
        return version
    if cached_only:
        raise NeedsDatabase
    return reader.read() if reader is not None else current_index_version(admission.db.engine)


def _images_before(request: AdmissionRequest) -> set[str]:
    if not isinstance(request.oldObject, dict):
        return set()
    try:
        old = extract(request.kind.group, request.kind.kind, request.oldObject, request.subResource)
    except ExtractError:  # an old object we cannot read vouches for nothing
        return set()
    return set(old.images)


def _object_namespace(request: AdmissionRequest) -> str | None:
    metadata = (request.object or {}).get("metadata")
    value = metadata.get("namespace") if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and value else None


def _break_glass_annotation(request: AdmissionRequest, extraction: Extraction) -> object:
    """On the object itself, or on its pod template (which the Pods it creates will carry)."""
    metadata = (request.object or {}).get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(annotations, dict) and BREAK_GLASS_ANNOTATION in annotations:
        return annotations[BREAK_GLASS_ANNOTATION]
    template = extraction.template_annotations or {}
    return template.get(BREAK_GLASS_ANNOTATION)


class NoPolicySet(RuntimeError):
    """The policy directory has not loaded (a startup or reload error): fail closed, and say so."""

    summary = (
        "no policy set is loaded: the policy directory failed to load; /readyz and the server "
        "log name the error; fix the files, then reload (POST /v1/policies:reload or SIGHUP)"
    )


def _error_verdict(
    exc: Exception,
    policy_set: PolicySet | None,
    extraction: Extraction | None,
    namespace: str | None,
) -> Verdict:
    allowed, rule = _on_error(policy_set, extraction, namespace)
    if isinstance(exc, RegistryFetchFailed):
        # What the registry said is safe to show, and is what the operator needs to know.
        return from_error(
            f"{type(exc).__name__}: {exc}",
            str(exc),
            allowed=allowed,
            rule=rule,
            cause="a registry error",
        )
    # The exception's text may name hosts or paths: it goes to the record, the summary is shown.
    summary = exc.summary if isinstance(exc, NoPolicySet) else type(exc).__name__
    return from_error(f"{type(exc).__name__}: {exc}", summary, allowed=allowed, rule=rule)


def _on_error(
    policy_set: PolicySet | None, extraction: Extraction | None, namespace: str | None
) -> tuple[bool, str]:
    """Allowed only if policies select the object's images and every one of them says
    ``onError: allow``: an error must not open a door no policy meant to leave open."""
    if policy_set is None or extraction is None or not extraction.images:
        return False, "default (fail closed: no policy applies)"
    try:
        refs = [parse_image(image) for image in extraction.images]
        selecting = {
            p.name: p.on_error
            for p in policy_set.policies
            for ref in refs
            if p.selects(ref, namespace)
        }
    except Exception:  # an unparseable image: nothing can vouch for it
        return False, "default (fail closed)"
    if not selecting:
        return False, "default (fail closed: no policy selects these images)"
    denying = sorted(name for name, on_error in selecting.items() if on_error != "allow")
    if denying:
        return False, f"onError: deny of policy {', '.join(denying)}"
    return True, f"onError: allow of policy {', '.join(sorted(selecting))}"
