"""From an evaluation (or its absence) to a verdict: allowed or not, the outcome kind, the reasons
recorded, and the words kube-apiserver shows the user. Pure functions, no database."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.admission.extract import Extraction
from app.policy.loader import CompiledConfig
from app.policy.matching import parse_image
from app.policy.results import Evaluation, ImageResult

# An exemption this close to its expiry is announced in every admission it grants.
EXEMPTION_NOTICE = timedelta(days=14)
BREAK_GLASS_ANNOTATION = "provenant.dev/break-glass"
PIN_HINT = "find its digest with `crane digest {image}` (or `docker buildx imagetools inspect`)"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    # allowed | denied | warn | audit | error | break-glass | excluded | unsupported | skipped
    # | unchanged (an UPDATE that adds no image)
    outcome: str
    reasons: list[str]
    warnings: list[str] = field(default_factory=list)
    evaluation: Evaluation | None = None
    # For a refusal: one line per denied image (or the error), shown under a header naming the
    # decision; for a break-glass admission, what it would have said.
    denial: list[str] = field(default_factory=list)
    error: str | None = None  # the internal error, for the record only (it may name hosts)
    break_glass: str | None = None  # the justification, when break-glass admitted the object

    @property
    def is_error(self) -> bool:
        return self.outcome == "error" or self.error is not None

    def explanation(
        self, image: Callable[[ImageResult], Any] = ImageResult.as_dict
    ) -> dict[str, Any]:
        return {
            "evaluation": self.evaluation.as_dict(image) if self.evaluation else None,
            "warnings": self.warnings,
            "denial": self.denial,
            "error": self.error,
            "break_glass": self.break_glass,
        }


def not_evaluated(outcome: str, reason: str, *, warning: str | None = None) -> Verdict:
    return Verdict(True, outcome, [reason], [warning] if warning else [])


def from_error(
    error: str, summary: str, *, allowed: bool, rule: str, cause: str = "an internal error"
) -> Verdict:
    """An internal error: ``summary`` is safe to show, ``error`` goes to the record only.
    ``cause`` tells a registry that failed a fetch on miss from Provenant failing itself."""
    verdict = "allowed" if allowed else "denied"
    line = (
        f"Provenant could not evaluate this object because of {cause}, not a policy "
        f"failure ({summary}); {verdict} by {rule}"
    )
    return Verdict(allowed, "error", [line], [line] if allowed else [], denial=[line], error=error)


def from_evaluation(
    evaluation: Evaluation, extraction: Extraction, config: CompiledConfig, now: datetime
) -> Verdict:
    images = evaluation.images
    reasons = [f"{i.image}: {i.reason}" for i in images]
    warnings = [w for i in images for w in _image_warnings(i)]
    namespace = evaluation.namespace
    warnings += [
        w for i in images if i.exemption for w in _exemption_notice(i, config, namespace, now)
    ]
    errors = [i for i in images if _has_error(i)]
    if not evaluation.allowed:
        denied = [i for i in images if not i.allowed]
        outcome = "error" if all(_denied_by_error_only(i) for i in denied) else "denied"
        denial = [_denial_line(i, extraction) for i in denied]
    else:
        denial = []
        if errors:
            outcome = "error"  # admitted by onError: allow, and recorded as such
            warnings += [f"{i.image}: {i.reason}" for i in errors]
        elif any(i.warnings for i in images):
            outcome = "warn"
        elif any(i.audit for i in images):
            outcome = "audit"
        else:
            outcome = "allowed"
    return Verdict(evaluation.allowed, outcome, reasons, warnings, evaluation, denial)


def apply_break_glass(
    verdict: Verdict, annotation: object, *, permitted: bool, namespace: str | None
) -> Verdict:
    """Admit a refused object carrying a justified break-glass annotation where PolicyConfig
    permits it; otherwise say in the refusal why the annotation did not help."""
    if annotation is None or verdict.allowed:
        return verdict
    justification = annotation.strip() if isinstance(annotation, str) else ""
    if not justification:
        why = f"the {BREAK_GLASS_ANNOTATION} annotation needs a justification as its value"
    elif not permitted:
        where = f"namespace {namespace}" if namespace else "this object"
        why = f"break-glass is not enabled for {where} (PolicyConfig spec.breakGlass)"
    else:
        warning = (
            f'admitted by break-glass: "{justification[:80]}"; it would have been denied; '
            "this use is audited"
        )
        return dataclasses.replace(
            verdict,
            allowed=True,
            outcome="break-glass",
            warnings=[warning, *verdict.warnings],
            break_glass=justification[:1024],
        )
    return dataclasses.replace(verdict, denial=[*verdict.denial, f"({why})"])


def _has_error(image: ImageResult) -> bool:
    return any(p.status == "error" for p in image.policies)


def _denied_by_error_only(image: ImageResult) -> bool:
    refusing = [p for p in image.policies if not p.passed and p.mode == "enforce"]
    return bool(refusing) and all(p.status == "error" for p in refusing)


def _denial_line(image: ImageResult, extraction: Extraction) -> str:
    where = ", ".join(c.label for c in extraction.containers_of(image.image))
    reason = image.reason
    if image.digest is None and image.reference is not None:
        reason = f"{reason}; {PIN_HINT.format(image=image.image)}"
    return f"{image.image} ({where}): {reason}"


def _image_warnings(image: ImageResult) -> list[str]:
    return [w if image.image in w else f"{image.image}: {w}" for w in image.warnings]


def _exemption_notice(
    image: ImageResult, config: CompiledConfig, namespace: str | None, now: datetime
) -> list[str]:
    try:
        ref = parse_image(image.image)
    except ValueError:
        return []
    for exemption in config.exemptions:
        if exemption.reason != image.exemption or not exemption.applies(ref, namespace):
            continue
        expires = exemption.expires_at
        if expires is not None and now < expires <= now + EXEMPTION_NOTICE:
            return [
                f"{image.image} is admitted by an exemption ({exemption.reason}) that expires "
                f"at {expires.isoformat()}: attest the image or renew the exemption"
            ]
        return []
    return []
