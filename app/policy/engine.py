"""The decision: may this image run in this namespace, given the stored, verified facts?

Order of judgement, per image: excluded namespace, then exemptions, then the digest (a tag
proves nothing: ``tagOnly``), then the policies that select the image (``noMatch`` when
none does). Every selecting policy must pass (AND); within one, every requirement must pass;
a requirement passes when ``count`` distinct signers among its authorities have verified,
unrevoked attestations that pass its SLSA checks and all its conditions.

Only internal failures are "errors" governed by ``onError``. A condition that fails to
evaluate on attacker-influenced content (a missing field, a wrong type) makes that
attestation fail: with ``onError: allow`` such errors would otherwise be a way in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.policy.authorities import (
    KeylessAuthority,
    describe_signer,
    signer_as_cel,
    signer_identity,
)
from app.policy.cel_conditions import ContextCache, collection_width
from app.policy.cel_conditions import evaluate as evaluate_conditions
from app.policy.facts import StoredAttestation
from app.policy.loader import CompiledConfig, CompiledPolicy, CompiledRequirement
from app.policy.lookup import Digest, Lookup, LookupCache
from app.policy.matching import ImageRef, any_matches, parse_image
from app.policy.results import (
    CheckResult,
    Evaluation,
    ImageResult,
    ModeName,
    PolicyResult,
    Rejection,
    RequirementResult,
    RequirementStatus,
)

if TYPE_CHECKING:
    from app.policy.store import PolicySet

log = logging.getLogger("provenant.policy")

_MODE_RANK: dict[ModeName, int] = {"audit": 0, "warn": 1, "enforce": 2}


def evaluate(
    image_ref: str,
    namespace: str | None,
    policy_set: PolicySet,
    lookup: Lookup,
    now: datetime,
    *,
    links: Lookup | None = None,
) -> Evaluation:
    """Evaluate one image reference. ``lookup(algorithm, hex)`` returns the stored attestations
    whose subject is that digest; ``links`` does the same for in-toto links (default:
    ``lookup``)."""
    return evaluate_images([image_ref], namespace, policy_set, lookup, now, links=links)


def evaluate_images(
    image_refs: Sequence[str],
    namespace: str | None,
    policy_set: PolicySet,
    lookup: Lookup,
    now: datetime,
    *,
    links: Lookup | None = None,
) -> Evaluation:
    """Evaluate every image of a workload; it is allowed only if every image is."""
    cache = LookupCache(lookup, links or lookup)
    images = tuple(
        evaluate_image(ref, namespace, policy_set.policies, policy_set.config, cache, now)
        for ref in image_refs
    )
    return workload_evaluation(images, namespace, policy_set, now)


def workload_evaluation(
    images: tuple[ImageResult, ...], namespace: str | None, policy_set: PolicySet, now: datetime
) -> Evaluation:
    """A workload's evaluation from its images' results: allowed only if every image is, in
    the strictest mode among them."""
    mode: ModeName = max((i.mode for i in images), key=_MODE_RANK.__getitem__, default="enforce")
    return Evaluation(
        allowed=all(i.allowed for i in images),
        mode=mode,
        images=images,
        policy_hash=policy_set.content_hash,
        evaluated_at=now,
        namespace=namespace,
    )


def evaluate_image(
    image_ref: str,
    namespace: str | None,
    policies: Sequence[CompiledPolicy],
    config: CompiledConfig,
    cache: LookupCache,
    now: datetime,
) -> ImageResult:
    try:
        image = parse_image(image_ref)
    except ValueError as exc:
        return ImageResult(image_ref, None, None, False, "enforce", str(exc))
    base: dict[str, Any] = {
        "image": image_ref,
        "reference": image.reference,
        "digest": image.digest_string,
    }
    if namespace is not None:
        excluded = any_matches(config.excluded_namespaces, namespace)
        if excluded is not None:
            reason = f"namespace {namespace} is excluded from policy ({excluded.pattern})"
            return ImageResult(**base, allowed=True, mode="enforce", reason=reason)
    exempted = _exemption(config, image, namespace, now)
    if isinstance(exempted, ImageResult):
        return exempted
    notes = exempted  # expired exemptions that would have matched
    if image.digest is None:
        reason = (
            f"{image_ref} has no digest: a tag can move, so no attestation can be tied to it; "
            f"pin it as {image.name}@sha256:<digest> (tagOnly: {config.tag_only})"
        )
        if config.tag_only == "resolve":
            # Admission resolves tags before evaluating; a tag reaching here was not resolved
            # (an offline evaluation, or resolution failed): nothing can vouch for it.
            reason += "; the tag was not resolved through the registry here"
            return _config_action(base, "deny", reason, notes)
        return _config_action(base, config.tag_only, reason, notes)
    selected = [p for p in policies if p.selects(image, namespace)]
    if not selected:
        where = f" in namespace {namespace}" if namespace else ""
        reason = f"no ImagePolicy selects {image.name}{where} (noMatch: {config.no_match})"
        return _config_action(base, config.no_match, reason, notes)
    run = Run(image, image.digest, cache, now)
    results = tuple(evaluate_policy(policy, run) for policy in selected)
    return _decide(base, results, notes)


def _exemption(
    config: CompiledConfig, image: ImageRef, namespace: str | None, now: datetime
) -> ImageResult | list[str]:
    expired: list[str] = []
    for exemption in config.exemptions:
        if not exemption.applies(image, namespace):
            continue
        if exemption.expires_at is not None and exemption.expires_at <= now:
            expired.append(
                f"exemption ({exemption.reason}) expired at {exemption.expires_at.isoformat()}"
            )
            continue
        until = f" until {exemption.expires_at.isoformat()}" if exemption.expires_at else ""
        return ImageResult(
            image=image.original,
            reference=image.reference,
            digest=image.digest_string,
            allowed=True,
            mode="enforce",
            reason=f"exempted{until}: {exemption.reason}",
            exemption=exemption.reason,
        )
    return expired


def _config_action(base: dict[str, Any], action: str, reason: str, notes: list[str]) -> ImageResult:
    reason = "; ".join([reason, *notes])
    if action == "deny":
        return ImageResult(**base, allowed=False, mode="enforce", reason=reason)
    if action == "warn":
        return ImageResult(**base, allowed=True, mode="warn", reason=reason, warnings=(reason,))
    return ImageResult(**base, allowed=True, mode="enforce", reason=reason)


def _decide(
    base: dict[str, Any], results: tuple[PolicyResult, ...], notes: list[str]
) -> ImageResult:
    mode = max((p.mode for p in results), key=_MODE_RANK.__getitem__)
    failed = [p for p in results if not p.passed]
    denied = [p for p in failed if p.mode == "enforce"]
    warnings = tuple(f"policy {p.name} (warn): {p.reason}" for p in failed if p.mode == "warn")
    audit = tuple(f"policy {p.name} (audit): {p.reason}" for p in failed if p.mode == "audit")
    if denied:
        reason = "; ".join(f"denied by policy {p.name}: {p.reason}" for p in denied)
    elif failed:
        reason = f"allowed: {len(failed)} non-enforcing polic(ies) failed, " + ", ".join(
            f"{p.name} ({p.mode})" for p in failed
        )
    else:
        reason = f"allowed: {', '.join(p.name for p in results)} passed"
    reason = "; ".join([reason, *notes])
    return ImageResult(
        **base,
        allowed=not denied,
        mode=mode,
        reason=reason,
        policies=results,
        warnings=warnings,
        audit=audit,
    )


def evaluate_policy(policy: CompiledPolicy, run: Run) -> PolicyResult:
    results = tuple(evaluate_requirement(r, run) for r in policy.requirements)
    failing = [r for r in results if r.status in ("missing", "failing")]
    errors = [r for r in results if r.status == "error"]
    if failing:
        # A definite failure outranks an error elsewhere: onError cannot rescue it.
        status, passed = "failed", False
        reason = _join(failing)
    elif errors:
        status, passed = "error", policy.on_error == "allow"
        verdict = "allowed" if passed else "denied"
        reason = f"{_join(errors)} ({verdict} by onError: {policy.on_error})"
    else:
        status, passed = "passed", True
        reason = _join(results)
    return PolicyResult(
        name=policy.name,
        file=policy.file,
        mode=policy.mode,
        on_error=policy.on_error,
        status=status,  # type: ignore[arg-type]
        passed=passed,
        reason=reason,
        requirements=results,
    )


def _join(results: Sequence[RequirementResult]) -> str:
    return "; ".join(f"{r.name}: {r.reason}" for r in results)


# -- requirements -------------------------------------------------------------------------------


# Across evaluations, keyed by attestation id (the hash of immutable uploaded bytes).
_CONTEXTS = ContextCache()
_WIDTHS: dict[str, int] = {}
_MAX_WIDTHS = 8192


def _statement_width(attestation: StoredAttestation) -> int:
    width = _WIDTHS.get(attestation.id)
    if width is None:
        if len(_WIDTHS) >= _MAX_WIDTHS:
            _WIDTHS.clear()  # cheap and rare; a full LRU is not worth its lock here
        # Signer and image values are small; the statement is what can be wide.
        width = _WIDTHS[attestation.id] = max(collection_width(attestation.statement), 32)
    return width


class Run:
    """One image's evaluation: its digest, the shared lookups, and per-run memos (an
    attestation's SLSA verdict does not change between policies)."""

    def __init__(self, image: ImageRef, digest: Digest, cache: LookupCache, now: datetime) -> None:
        self.image = image
        self.digest = digest
        self.cache = cache
        self.now = now
        self._image_cel = image.as_cel()
        self._slsa: dict[tuple[int, str], CheckResult] = {}
        self._vsa: dict[tuple[int, str], CheckResult] = {}
        self._bound: dict[tuple[int, str, tuple[int, ...]], tuple[list[int], str]] = {}

    def slsa(self, requirement: CompiledRequirement, attestation: StoredAttestation) -> CheckResult:
        key = (id(requirement.slsa), attestation.id)
        if key not in self._slsa:
            from app.policy.slsa import check_slsa

            assert requirement.slsa is not None  # only called for requirements with slsa
            self._slsa[key] = check_slsa(requirement.slsa, attestation.statement or {})
        return self._slsa[key]

    def vsa(self, requirement: CompiledRequirement, attestation: StoredAttestation) -> CheckResult:
        key = (id(requirement.vsa), attestation.id)
        if key not in self._vsa:
            from app.policy.vsa import check_vsa

            self._vsa[key] = check_vsa(
                requirement.vsa,
                attestation.statement,
                now=self.now,
                image_name=self.image.name if self.image.repository else None,
                digest=_digest_text(self.digest),
            )
        return self._vsa[key]

    def vouching_signers(
        self, requirement: CompiledRequirement, attestation: StoredAttestation, matched: list[int]
    ) -> tuple[list[int], str]:
        """Of the ``matched`` signers, those that vouch for the provenance's builder (and else
        why none does); memoized like the SLSA verdict."""
        key = (id(requirement.slsa), attestation.id, tuple(matched))
        if key not in self._bound:
            from app.policy.slsa_signer import signers_vouching_for_builder

            assert requirement.slsa is not None
            signers = [attestation.signers[index] for index in matched]
            bound, problem = signers_vouching_for_builder(
                requirement.slsa, attestation.statement or {}, signers
            )
            self._bound[key] = ([matched[i] for i in bound], problem)
        return self._bound[key]

    def conditions(
        self, requirement: CompiledRequirement, attestation: StoredAttestation, signer: int
    ) -> CheckResult:
        if not requirement.conditions:
            return CheckResult(True, "no conditions")
        names = requirement.variables

        def variables() -> dict[str, Any]:
            statement = attestation.statement
            values = {
                "predicate": statement.get("predicate") if statement else None,
                "statement": statement,
                "signer": signer_as_cel(attestation.signers[signer]),
                "image": self._image_cel,
            }
            # Only what the conditions read is converted into CEL values: that is the cost.
            return {name: value for name, value in values.items() if name in names}

        key = (attestation.id, signer, self.image.original, names)
        try:
            # Converting the content into CEL values fails on what CEL cannot hold (an
            # integer beyond 64 bits, say): the attestation's content, so it fails alone.
            context = _CONTEXTS.get(key, variables)
            width = None
            if any(c.shape.depth for c in requirement.conditions):
                width = _statement_width(attestation)
        except Exception as exc:
            return _content_failure("the conditions", exc)
        return evaluate_conditions(list(requirement.conditions), context, width=width)


def _content_failure(what: str, exc: Exception) -> CheckResult:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return CheckResult(
        False,
        f"the attestation's content could not be given to {what}: {type(exc).__name__}"
        + (f": {text}" if text else ""),
        {"error": type(exc).__name__},
    )


def evaluate_requirement(requirement: CompiledRequirement, run: Run) -> RequirementResult:
    try:
        if requirement.layout is not None:
            return _layout_requirement(requirement, run)
        return _attestation_requirement(requirement, run)
    except Exception as exc:  # a bug or an unavailable check: an error, not a verdict
        log.exception("requirement %s could not be evaluated", requirement.name)
        return RequirementResult(
            requirement.index,
            requirement.name,
            "error",
            f"could not be evaluated: {type(exc).__name__}: {exc}",
        )


def _digest_text(digest: Digest) -> str:
    return f"{digest[0]}:{digest[1]}"


def _attestation_requirement(requirement: CompiledRequirement, run: Run) -> RequirementResult:
    what = (
        f"attestation of type {requirement.predicate_type}"
        if requirement.predicate_type
        else "signature or attestation"
    )
    names = ", ".join(a.name for a in requirement.authorities)
    signers_needed = (
        f"{requirement.count} distinct signers" if requirement.count > 1 else "a signer"
    )

    def result(status: RequirementStatus, reason: str, **kwargs: Any) -> RequirementResult:
        return RequirementResult(requirement.index, requirement.name, status, reason, **kwargs)

    try:
        stored = run.cache.attestations(run.digest)
    except Exception as exc:
        return result("error", f"attestation lookup failed: {type(exc).__name__}: {exc}")
    candidates = [a for a in stored if _relevant(requirement, a)]
    if not candidates:
        return result(
            "missing",
            f"no {what} for {_digest_text(run.digest)} (expected one from {signers_needed} "
            f"among {names})",
        )
    passing: dict[str, str] = {}  # signer identity -> attestation id
    signer_names: dict[str, str] = {}
    rejected: list[Rejection] = []
    for attestation in candidates:
        if attestation.revoked:
            why = f": {attestation.revoked_reason}" if attestation.revoked_reason else ""
            rejected.append(Rejection(attestation.id, f"revoked{why}"))
            continue
        matched, mismatch = _matching_signers(requirement, attestation)
        if not matched:
            rejected.append(Rejection(attestation.id, mismatch))
            continue
        if requirement.slsa is not None:
            slsa = run.slsa(requirement, attestation)
            if not slsa.passed:
                rejected.append(Rejection(attestation.id, slsa.reason))
                continue
            # The builder a provenance claims counts only if its signer speaks for it.
            matched, unbound = run.vouching_signers(requirement, attestation, matched)
            if not matched:
                rejected.append(Rejection(attestation.id, unbound))
                continue
        if requirement.vsa is not None:
            summary = run.vsa(requirement, attestation)
            if not summary.passed:
                rejected.append(Rejection(attestation.id, summary.reason))
                continue
        for index in matched:
            signer = attestation.signers[index]
            identity = signer_identity(signer)
            if identity in passing:
                continue
            checked = run.conditions(requirement, attestation, index)
            if checked.passed:
                passing[identity] = attestation.id
                signer_names[identity] = describe_signer(signer)
            else:
                rejected.append(Rejection(attestation.id, checked.reason))
        if len(passing) >= requirement.count:
            break  # enough: the remaining attestations cannot change the verdict
    ids = tuple(dict.fromkeys(passing.values()))
    if len(passing) >= requirement.count:
        return result(
            "passed",
            f"{what} {', '.join(i[:12] for i in ids)} signed by {', '.join(signer_names.values())}",
            attestations=ids,
        )
    if passing:
        reason = (
            f"needs {requirement.count} distinct signers among {names}, found "
            f"{len(passing)} ({', '.join(signer_names.values())})"
        )
        if rejected:
            reason += f"; others: {_summarize(rejected)}"
    else:
        count = len(candidates)
        found = f"{count} {what}" if count == 1 else f"{count} {_plural(what)}"
        reason = f"{found} present, none passes: {_summarize(rejected)}"
    return result("failing", reason, attestations=ids, rejected=tuple(rejected))


def _plural(what: str) -> str:
    """ "attestation of type X" -> "attestations of type X"; "signature or attestation" ->
    "signatures or attestations"."""
    if what.startswith("attestation of type"):
        return "attestations" + what[len("attestation") :]
    return what.replace("signature", "signatures").replace("attestation", "attestations")


def _relevant(requirement: CompiledRequirement, attestation: StoredAttestation) -> bool:
    if requirement.predicate_type is not None:
        return (
            attestation.content_kind == "statement"
            and attestation.predicate_type == requirement.predicate_type
        )
    # Links prove a step happened, not that the image is approved: layouts judge them.
    return attestation.content_kind in ("statement", "message-signature")


def _matching_signers(
    requirement: CompiledRequirement, attestation: StoredAttestation
) -> tuple[list[int], str]:
    """Indexes of the signers some authority accepts, and else the most telling mismatch."""
    matched: list[int] = []
    reasons: list[str] = []
    for index, signer in enumerate(attestation.signers):
        mismatches = [a.mismatch(attestation, signer) for a in requirement.authorities]
        if any(m is None for m in mismatches):
            matched.append(index)
            continue
        # The authority of the signer's own kind says the most ("expects subject X, found Y").
        same_kind = [
            m
            for a, m in zip(requirement.authorities, mismatches, strict=True)
            if isinstance(a, KeylessAuthority) == (signer.kind == "keyless")
        ]
        best = (same_kind or mismatches)[0] or ""
        others = len(mismatches) - 1
        reasons.append(best + (f" (and {others} other authorities do not match)" if others else ""))
    return matched, "; ".join(dict.fromkeys(reasons))


def _summarize(rejected: list[Rejection], limit: int = 3) -> str:
    # Many attestations usually fail for one reason (every build of a branch, say): group them.
    by_reason: dict[str, list[str]] = {}
    for rejection in rejected:
        by_reason.setdefault(rejection.reason, []).append(rejection.attestation[:12])
    parts = [f"{', '.join(ids)}: {reason}" for reason, ids in list(by_reason.items())[:limit]]
    if len(by_reason) > limit:
        parts.append(f"and {len(by_reason) - limit} other reason(s)")
    return "; ".join(parts)


def _layout_requirement(requirement: CompiledRequirement, run: Run) -> RequirementResult:
    def result(status: RequirementStatus, reason: str, **kwargs: Any) -> RequirementResult:
        return RequirementResult(requirement.index, requirement.name, status, reason, **kwargs)

    try:
        links = run.cache.links(run.digest)
    except Exception as exc:
        return result("error", f"link lookup failed: {type(exc).__name__}: {exc}")
    if not links:
        return result(
            "missing",
            f"no in-toto link has {_digest_text(run.digest)} as a product (the layout's "
            "final step must produce the image)",
        )
    from app.policy.layouts import check_layout

    assert requirement.layout is not None
    checked = check_layout(requirement.layout, links, run.digest, run.now)
    used = checked.details.get("links")
    # The layout check reports the links it used per step: {step: [ids]}.
    steps = used.values() if isinstance(used, dict) else [used] if isinstance(used, list) else []
    ids = tuple(dict.fromkeys(i for step in steps if isinstance(step, list) for i in step))
    if checked.passed:
        return result("passed", checked.reason, attestations=ids, details=checked.details)
    return result("failing", checked.reason, attestations=ids, details=checked.details)
