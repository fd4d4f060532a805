"""The AdmissionReview answer: what kubectl shows, within what kube-apiserver passes on."""

from __future__ import annotations

from app.admission.schemas import (
    AdmissionRequest,
    AdmissionResponse,
    AdmissionReview,
    AdmissionReviewResponse,
    Status,
)
from app.admission.verdicts import Verdict

# kube-apiserver may truncate warnings longer than 256 characters, and all of them beyond 4 KiB.
MAX_WARNING = 256
MAX_WARNINGS_TOTAL = 4096
# A denial lists every denied image; a 100-container Pod must not produce a megabyte message.
MAX_LINE = 1000
MAX_MESSAGE = 6000


def decision_path(decision_id: str) -> str:
    return f"/v1/decisions/{decision_id}"


def respond(
    review: AdmissionReview,
    verdict: Verdict,
    decision_id: str | None,
    policy_hash: str | None,
) -> AdmissionReviewResponse:
    """``decision_id`` is None when the decision could not be recorded."""
    request = review.request
    annotations = {"outcome": verdict.outcome, "policy-set-hash": policy_hash or "none"}
    if decision_id is not None:
        annotations["decision-id"] = decision_id
    response = AdmissionResponse(
        uid=request.uid,
        allowed=verdict.allowed,
        status=None if verdict.allowed else _status(request, verdict, decision_id),
        warnings=_warnings(verdict.warnings, decision_id) or None,
        auditAnnotations=annotations,
    )
    return AdmissionReviewResponse(apiVersion=review.apiVersion, response=response)


def _status(request: AdmissionRequest, verdict: Verdict, decision_id: str | None) -> Status:
    what = describe(request)
    ref = (
        f"decision {decision_id}, details at GET {decision_path(decision_id)}"
        if decision_id
        else "decision not recorded"
    )
    if verdict.is_error:
        header = f"Provenant could not decide on {what} ({ref})"
        code, reason = 500, "InternalError"
    else:
        header = f"Provenant denied {what} ({ref})"
        code, reason = 403, "Forbidden"
    message = header + ":"
    for shown, line in enumerate(verdict.denial):
        entry = f"\n- {_clip(line, MAX_LINE)}"
        if len(message) + len(entry) > MAX_MESSAGE - 100:  # room for the line below
            rest = len(verdict.denial) - shown
            message += f"\n- and {rest} more; see decision {decision_id}"
            break
        message += entry
    return Status(code=code, reason=reason, message=message)


def describe(request: AdmissionRequest) -> str:
    """'Deployment prod/web': generateName'd objects have no name yet at CREATE."""
    name = request.name or object_name(request) or ""
    where = f"{request.namespace}/" if request.namespace and name else ""
    return f"{request.kind.kind} {where}{name}".rstrip()


def object_name(request: AdmissionRequest) -> str | None:
    metadata = (request.object or {}).get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) and name else None


def _warnings(warnings: list[str], decision_id: str | None) -> list[str]:
    kept: list[str] = []
    total = 0
    clipped = False
    for warning in dict.fromkeys(warnings):
        text = _clip(warning, MAX_WARNING)
        clipped = clipped or text != warning
        if total + len(text) > MAX_WARNINGS_TOTAL - MAX_WARNING:
            clipped = True
            break
        kept.append(text)
        total += len(text)
    if clipped and decision_id:
        kept.append(f"Provenant: full explanation at GET {decision_path(decision_id)}")
    return kept


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
