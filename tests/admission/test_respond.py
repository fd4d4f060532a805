"""The answer's limits and the record's helpers, without a database."""

from __future__ import annotations

import copy
import time
import uuid

from app.admission.record import new_decision_id, without_managed_fields
from app.admission.respond import MAX_MESSAGE, MAX_WARNING, MAX_WARNINGS_TOTAL, respond
from app.admission.schemas import AdmissionReview
from app.admission.verdicts import Verdict
from tests.admission.helpers import load, review

DECISION = "01a21f3c-88d2-7544-9947-dfe9cd6abe58"


def _review() -> AdmissionReview:
    return AdmissionReview.model_validate(review(load("pod")))


def test_a_hundred_denied_images_fit_in_a_message_that_keeps_the_decision() -> None:
    lines = [
        f"ghcr.io/acme/app{n}@sha256:{n:064x} (containers/c{n}): " + "x" * 300 for n in range(100)
    ]
    verdict = Verdict(False, "denied", [], denial=lines)
    status = respond(_review(), verdict, DECISION, "h").response.status
    assert status is not None
    assert len(status.message) <= MAX_MESSAGE
    assert status.message.startswith(f"Provenant denied Pod default/app (decision {DECISION}")
    assert status.message.endswith(f"more; see decision {DECISION}")
    assert status.message.splitlines()[1].startswith("- ghcr.io/acme/app0@sha256:")


def test_warnings_stay_within_what_kube_apiserver_passes_on() -> None:
    verdict = Verdict(True, "warn", [], warnings=[f"warning {n} " + "y" * 400 for n in range(40)])
    warnings = respond(_review(), verdict, DECISION, "h").response.warnings
    assert warnings is not None
    assert all(len(w) <= MAX_WARNING for w in warnings)
    assert sum(len(w) for w in warnings) <= MAX_WARNINGS_TOTAL
    assert warnings[-1] == f"Provenant: full explanation at GET /v1/decisions/{DECISION}"


def test_allowed_answers_carry_no_status_and_repeat_no_warning() -> None:
    verdict = Verdict(True, "warn", [], warnings=["same", "same"])
    response = respond(_review(), verdict, DECISION, None).response
    assert response.status is None
    assert response.warnings == ["same"]
    assert response.auditAnnotations == {
        "outcome": "warn",
        "policy-set-hash": "none",
        "decision-id": DECISION,
    }


def test_decision_ids_are_time_ordered_version_7_uuids() -> None:
    first = new_decision_id()
    time.sleep(0.002)
    second = new_decision_id()
    assert uuid.UUID(first).version == 7 and uuid.UUID(first).variant == uuid.RFC_4122
    assert first < second
    assert int(first.replace("-", "")[:12], 16) // 1000 - int(time.time()) in (-1, 0)


def test_managed_fields_are_dropped_from_a_copy() -> None:
    request = review(load("pod"), operation="UPDATE", old=load("pod"))["request"]
    request["oldObject"]["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    original = copy.deepcopy(request)
    stored = without_managed_fields(request)
    assert "managedFields" not in stored["object"]["metadata"]
    assert "managedFields" not in stored["oldObject"]["metadata"]
    assert stored["object"]["spec"] == request["object"]["spec"]
    assert request == original
