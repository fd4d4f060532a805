"""Judging running images with the admission engine: the same evaluation (and decision cache)
the webhook uses, through ``app.admission.service.evaluate``; only the reading of its result
into a finding status is here."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from app.admission.service import Admission, evaluate
from app.admission.verdicts import EXEMPTION_NOTICE
from app.continuous.inventory import FindingKey
from app.policy.matching import any_matches, parse_image
from app.policy.results import ImageResult
from app.policy.store import PolicySet

log = logging.getLogger("provenant.continuous")

STATUSES = ("compliant", "violating", "error", "exempt")


@dataclass(frozen=True)
class Judgement:
    status: str  # one of STATUSES
    policies: tuple[str, ...]  # the failing policies when violating or error, else the passing
    reasons: tuple[str, ...]
    policy_hash: str | None
    expiring: bool = False  # exempt by an exemption inside its warning window


def judge(
    admission: Admission, policy_set: PolicySet, keys: Iterable[FindingKey], now: datetime
) -> dict[FindingKey, Judgement]:
    """Each key's judgement: one engine evaluation per namespace for its distinct images (the
    engine fetches their attestations together)."""
    by_namespace: dict[str, dict[str, list[FindingKey]]] = {}
    for key in keys:
        by_namespace.setdefault(key.namespace, {}).setdefault(key.image, []).append(key)
    judged: dict[FindingKey, Judgement] = {}
    for namespace, images in by_namespace.items():
        refs = list(images)
        try:
            evaluation = evaluate(admission, refs, namespace, policy_set, now)
            results = evaluation.images
        except Exception as exc:
            log.exception("continuous: evaluating %d images in %s failed", len(refs), namespace)
            error = Judgement(
                "error", (), (f"{type(exc).__name__}: {exc}",), policy_set.content_hash
            )
            for keys_of_image in images.values():
                judged.update(dict.fromkeys(keys_of_image, error))
            continue
        for ref, result in zip(refs, results, strict=True):
            judgement = judgement_of(result, policy_set, namespace, now)
            judged.update(dict.fromkeys(images[ref], judgement))
    return judged


def judgement_of(
    result: ImageResult, policy_set: PolicySet, namespace: str, now: datetime
) -> Judgement:
    """compliant: allowed with nothing failing; violating: any selecting policy failed (in any
    mode: a warn or audit policy's failure is still a violation to report), or the image was
    refused without one (tag-only, no policy selects it); error: a policy could not decide;
    exempt: an exemption or an excluded namespace admitted it without judging it."""
    config = policy_set.config
    reasons = (result.reason, *result.warnings, *result.audit)
    failing = tuple(p.name for p in result.policies if not p.passed or p.status == "error")
    if any(p.status == "error" for p in result.policies):
        return Judgement("error", failing, reasons, policy_set.content_hash)
    if result.exemption is not None:
        expires = exemption_expiry(policy_set, result, namespace)
        expiring = expires is not None and expires <= now + EXEMPTION_NOTICE
        if expiring:
            reasons = (*reasons, f"the exemption expires at {expires.isoformat()}")
        return Judgement("exempt", (), reasons, policy_set.content_hash, expiring)
    if any_matches(config.excluded_namespaces, namespace) is not None:
        return Judgement("exempt", (), reasons, policy_set.content_hash)
    if not result.allowed or failing or result.warnings:
        return Judgement("violating", failing, reasons, policy_set.content_hash)
    passing = tuple(p.name for p in result.policies)
    return Judgement("compliant", passing, reasons, policy_set.content_hash)


def exemption_expiry(policy_set: PolicySet, result: ImageResult, namespace: str) -> datetime | None:
    try:
        ref = parse_image(result.image)
    except ValueError:
        return None
    for exemption in policy_set.config.exemptions:
        if exemption.reason == result.exemption and exemption.applies(ref, namespace):
            return exemption.expires_at
    return None


def clock_instants(policy_set: PolicySet) -> list[datetime]:
    """When the passing of time alone changes a judgement: each exemption's expiry and the start
    of its warning window."""
    instants = []
    for exemption in policy_set.config.exemptions:
        if exemption.expires_at is not None:
            instants += [exemption.expires_at - EXEMPTION_NOTICE, exemption.expires_at]
    return sorted(instants)
