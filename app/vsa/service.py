"""Issue a VSA: evaluate one artifact under one ImagePolicy, sign the verdict, record it.

The evaluation is the policy engine's ``evaluate_policy``, the same code admission runs, on the
stored, already-verified facts; PolicyConfig (exemptions, excluded namespaces, noMatch) plays no
part: a VSA says the artifact met a policy, not that a cluster let it in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.errors import ApiError
from app.policy.engine import Run, evaluate_policy
from app.policy.facts import StoredAttestation
from app.policy.loader import CompiledPolicy, CompiledRequirement
from app.policy.lookup import LookupCache, db_lookup
from app.policy.matching import ImageRef, parse_image
from app.policy.results import PolicyResult
from app.policy.store import PolicySet
from app.vsa.envelope import sign_statement
from app.vsa.keys import VsaSigner
from app.vsa.levels import verified_levels
from app.vsa.summary import InputAttestation, policy_digest, vsa_statement


@dataclass(frozen=True)
class IssueRequest:
    digest: tuple[str, str]
    policy: str | None  # an ImagePolicy name; None: the one policy that selects ``image``
    image: str | None  # image name (a tag or a digest equal to ``digest`` may follow)
    resource_uri: str | None  # None: oci://<image name>@<digest>


@dataclass(frozen=True)
class IssuedVsa:
    envelope: dict[str, Any]
    statement: dict[str, Any]
    key_id: str
    result: PolicyResult

    @property
    def passed(self) -> bool:
        return bool(self.statement["predicate"]["verificationResult"] == "PASSED")


def digest_text(digest: tuple[str, str]) -> str:
    return f"{digest[0]}:{digest[1]}"


def image_for(request: IssueRequest) -> ImageRef:
    """The image the policy judges: the given name at the requested digest, or the bare digest
    (then CEL's ``image.name`` is empty and policy selection needs ``policy``)."""
    text = digest_text(request.digest)
    if request.image is None:
        return ImageRef(original=text, registry="", repository="", tag=None, digest=request.digest)
    try:
        named = parse_image(request.image)
    except ValueError as exc:
        raise ApiError(422, "invalid_image", str(exc)) from exc
    if named.digest is not None and named.digest != request.digest:
        raise ApiError(
            422,
            "digest_mismatch",
            f"image {request.image} names digest {named.digest_string}, the request asks for "
            f"{text}",
        )
    return parse_image(f"{named.name}@{text}")


def choose_policy(policy_set: PolicySet, request: IssueRequest, image: ImageRef) -> CompiledPolicy:
    if request.policy is not None:
        for policy in policy_set.policies:
            if policy.name == request.policy:
                if image.repository and not policy.selects(image, None):
                    raise ApiError(
                        422,
                        "policy_does_not_select",
                        f"ImagePolicy {policy.name} does not select {image.name}",
                    )
                return policy
        known = ", ".join(p.name for p in policy_set.policies) or "none loaded"
        raise ApiError(404, "policy_not_found", f"no ImagePolicy {request.policy} (known: {known})")
    if not image.repository:
        raise ApiError(
            422, "policy_required", "name the ImagePolicy (policy=) or the image (image=)"
        )
    selecting = [p for p in policy_set.policies if p.selects(image, None)]
    if len(selecting) != 1:
        names = ", ".join(p.name for p in selecting) or "none"
        raise ApiError(
            422,
            "policy_ambiguous" if selecting else "policy_not_found",
            f"{len(selecting)} ImagePolicies select {image.name} ({names}); a VSA states one "
            "policy: name it with policy=",
        )
    return selecting[0]


def resource_uri_for(request: IssueRequest, image: ImageRef) -> str:
    if request.resource_uri is not None:
        return request.resource_uri
    if not image.repository:
        raise ApiError(
            422,
            "resource_uri_required",
            "a VSA names the resource it is about: give image= (then it is oci://<name>@<digest>) "
            "or resource_uri=",
        )
    return f"oci://{image.name}@{digest_text(request.digest)}"


def issue_vsa(
    session: Session,
    policy_set: PolicySet,
    signer: VsaSigner,
    request: IssueRequest,
    *,
    verifier_id: str,
    base_url: str,
    actor: str,
    now: datetime,
) -> IssuedVsa:
    """Evaluate, sign and record (an audit event ``vsa.issued`` in the caller's transaction)."""
    image = image_for(request)
    policy = choose_policy(policy_set, request, image)
    resource_uri = resource_uri_for(request, image)
    lookup = db_lookup(session)
    cache = LookupCache(lookup, lookup)
    result = evaluate_policy(policy, Run(image, request.digest, cache, now))
    passed = result.status == "passed"  # an error excused by onError: allow is not a pass
    stored = {a.id: a for a in cache.attestations(request.digest)}
    used_ids = list(dict.fromkeys(i for r in result.requirements for i in r.attestations))
    statement = vsa_statement(
        digest=request.digest,
        subject_name=image.name if image.repository else digest_text(request.digest),
        verifier_id=verifier_id,
        time_verified=now,
        resource_uri=resource_uri,
        policy_uri=f"{verifier_id.rstrip('/')}/policies/{policy.name}",
        policy_sha256=policy_digest(policy),
        inputs=[
            InputAttestation(f"{base_url.rstrip('/')}/v1/attestations/{i}/raw", i) for i in used_ids
        ],
        passed=passed,
        levels=verified_levels(passed, _used(policy, result, stored)),
    )
    envelope = sign_statement(statement, signer)
    record_event(
        session,
        "vsa.issued",
        actor,
        {
            "digest": digest_text(request.digest),
            "resource_uri": resource_uri,
            "policy": policy.name,
            "policy_digest": statement["predicate"]["policy"]["digest"]["sha256"],
            "policy_set": policy_set.content_hash,
            "verification_result": statement["predicate"]["verificationResult"],
            "verified_levels": statement["predicate"]["verifiedLevels"],
            "input_attestations": used_ids,
            "key_id": signer.key_id,
            "payload_sha256": hashlib.sha256(orjson.dumps(statement)).hexdigest(),
            "reason": result.reason,
        },
    )
    return IssuedVsa(envelope, statement, signer.key_id, result)


def _used(
    policy: CompiledPolicy, result: PolicyResult, stored: dict[str, StoredAttestation]
) -> Iterator[tuple[CompiledRequirement, StoredAttestation]]:
    requirements = {r.index: r for r in policy.requirements}
    for outcome in result.requirements:
        if not outcome.passed:
            continue
        for attestation_id in outcome.attestations:
            if attestation_id in stored:
                yield requirements[outcome.index], stored[attestation_id]
