"""POST /k8s/validate through the app, on SQLite and PostgreSQL: every outcome, the words the
user sees, what is recorded, and who may ask."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.admission.models import Decision
from app.admission.record import canonical_sha256
from app.audit.models import AuditEvent
from app.db import Database
from tests.admission.conftest import EXEMPTION_EXPIRES
from tests.admission.helpers import (
    APP,
    INIT,
    KINDS,
    SIDECAR,
    captured,
    digest_of,
    load,
    review,
    with_images,
)

UNATTESTED = f"ghcr.io/acme/unattested@sha256:{digest_of('unattested')}"
CANARY = f"ghcr.io/canary/app@sha256:{digest_of('canary')}"
SHADOW = f"ghcr.io/shadow/app@sha256:{digest_of('shadow')}"
LENIENT = f"ghcr.io/lenient/app@sha256:{digest_of('lenient')}"


def validate(client: TestClient, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    response = client.post("/k8s/validate", json=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["apiVersion"] == body["apiVersion"]
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == body["request"]["uid"]
    return dict(answer["response"])


def decisions(db: Database) -> list[Decision]:
    with db.session() as session:
        return list(session.scalars(select(Decision).order_by(Decision.created_at)))


def events(db: Database, prefix: str = "admission.") -> list[AuditEvent]:
    with db.session() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        return [e for e in rows if e.type.startswith(prefix)]


# -- every kind, every container list ------------------------------------------------------------


@pytest.mark.parametrize("fixture", sorted(KINDS))
def test_every_kind_is_denied_until_each_container_list_is_attested(
    fixture: str, client: TestClient, attest, webhook: dict, reader: dict
) -> None:
    body = review(load(fixture))
    denied = validate(client, body, webhook)
    assert denied["allowed"] is False
    status = denied["status"]
    assert status["code"] == 403
    decision_id = denied["auditAnnotations"]["decision-id"]
    assert decision_id in status["message"]
    # Each denied image, with the container that runs it, and the failed rule in words.
    for image, label in [
        (APP, "containers/"),
        (SIDECAR, "containers/sidecar"),
        (INIT, "initContainers/init"),
    ]:
        line = next(line for line in status["message"].splitlines() if image in line)
        assert label in line
        assert "denied by policy acme-release: release-provenance: no attestation of type" in line
    for image in (APP, SIDECAR, INIT):
        attest(image)
    allowed = validate(client, review(load(fixture)), webhook)
    assert allowed["allowed"] is True
    assert "status" not in allowed
    assert allowed["auditAnnotations"]["outcome"] == "allowed"

    detail = client.get(f"/v1/decisions/{decision_id}", headers=reader).json()
    assert detail["outcome"] == "denied"
    assert detail["kind"] == "/".join(p for p in KINDS[fixture][:3] if p)
    assert {i["image"] for i in detail["images"]} == {APP, SIDECAR, INIT}


def test_denial_explains_and_points_at_the_decision(
    client: TestClient, app: FastAPI, attest, webhook: dict, reader: dict
) -> None:
    attest(APP)
    obj = with_images("deployment", [APP, UNATTESTED, "nginx:1.25"])
    answer = validate(client, review(obj, namespace="prod-a", user="bob"), webhook)
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    decision_id = answer["auditAnnotations"]["decision-id"]
    assert message.startswith(f"Provenant denied Deployment prod-a/web (decision {decision_id}")
    assert f"GET /v1/decisions/{decision_id}" in message
    assert APP not in message  # only the denied images are listed
    assert f"{UNATTESTED} (containers/c1): denied by policy acme-release" in message
    # Tag-only: says why and how to pin.
    assert "nginx:1.25 (containers/c2): nginx:1.25 has no digest: a tag can move" in message
    assert "pin it as docker.io/library/nginx@sha256:<digest>" in message
    assert "crane digest nginx:1.25" in message
    hash_ = app.state.policies.active.content_hash
    assert answer["auditAnnotations"] == {
        "decision-id": decision_id,
        "policy-set-hash": hash_,
        "outcome": "denied",
    }

    detail = client.get(f"/v1/decisions/{decision_id}", headers=reader)
    assert detail.status_code == 200
    body = detail.json()
    assert body["namespace"] == "prod-a" and body["name"] == "web" and body["user"] == "bob"
    assert body["operation"] == "CREATE" and body["caller"] == "kube-apiserver"
    assert body["policy_hash"] == hash_ and body["dry_run"] is False
    assert [i["allowed"] for i in body["images"]] == [True, False, False]
    assert body["images"][2] == {
        "image": "nginx:1.25",
        "digest": None,
        "reference": "docker.io/library/nginx:1.25",
        "containers": ["containers/c2"],
        "allowed": False,
    }
    assert any(r.startswith(f"{UNATTESTED}: denied by policy") for r in body["reasons"])
    evaluation = body["explanation"]["evaluation"]
    assert evaluation["images"][1]["policies"][0]["requirements"][0]["status"] == "missing"
    assert body["explanation"]["response"]["status"]["message"] == message
    assert "request" not in body
    with_request = client.get(
        f"/v1/decisions/{decision_id}", params={"include_request": True}, headers=reader
    ).json()
    # Stored as received, minus managedFields: replayable against a later policy set.
    assert (
        with_request["request"]["object"]["spec"]["template"]["spec"]["containers"][1]["image"]
        == UNATTESTED
    )
    assert "managedFields" not in with_request["request"]["object"]["metadata"]


def test_decisions_need_the_read_scope_and_an_existing_id(
    client: TestClient, webhook: dict, reader: dict
) -> None:
    answer = validate(client, review(with_images("pod", [UNATTESTED])), webhook)
    path = f"/v1/decisions/{answer['auditAnnotations']['decision-id']}"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=webhook).status_code == 403
    missing = client.get("/v1/decisions/01a00000-0000-7000-8000-000000000000", headers=reader)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


# -- modes ---------------------------------------------------------------------------------------


def test_warn_mode_admits_with_warnings(client: TestClient, db: Database, webhook: dict) -> None:
    answer = validate(client, review(with_images("pod", [CANARY])), webhook)
    assert answer["allowed"] is True
    assert answer["auditAnnotations"]["outcome"] == "warn"
    warning, pointer = answer["warnings"]
    assert warning.startswith(f"{CANARY}: policy canary (warn): release-provenance: no attestation")
    # kube-apiserver may cut warnings beyond 256 characters: clipped here, and the rest linked.
    assert len(warning) == 256 and warning.endswith("…")
    decision_id = answer["auditAnnotations"]["decision-id"]
    assert pointer == f"Provenant: full explanation at GET /v1/decisions/{decision_id}"
    (decision,) = decisions(db)
    assert decision.outcome == "warn" and decision.allowed


def test_audit_mode_admits_silently_and_records_the_failure(
    client: TestClient, db: Database, webhook: dict
) -> None:
    answer = validate(client, review(with_images("pod", [SHADOW])), webhook)
    assert answer["allowed"] is True
    assert "warnings" not in answer
    assert answer["auditAnnotations"]["outcome"] == "audit"
    (decision,) = decisions(db)
    image = decision.explanation["evaluation"]["images"][0]
    assert image["audit"][0].startswith("policy shadow (audit): release-provenance")


def test_enforce_outranks_warn(client: TestClient, webhook: dict) -> None:
    answer = validate(client, review(with_images("pod", [CANARY, UNATTESTED])), webhook)
    assert answer["allowed"] is False
    assert answer["auditAnnotations"]["outcome"] == "denied"
    assert any("policy canary (warn)" in w for w in answer["warnings"])


def test_tag_only_image_is_denied_by_default(client: TestClient, webhook: dict) -> None:
    answer = validate(client, review(with_images("pod", ["ghcr.io/acme/app:v1"])), webhook)
    assert answer["allowed"] is False
    assert (
        "pin it as ghcr.io/acme/app@sha256:<digest> (tagOnly: deny)" in answer["status"]["message"]
    )


def test_an_exemption_about_to_expire_is_announced(client: TestClient, webhook: dict) -> None:
    pause = "registry.k8s.io/pause:3.9"
    answer = validate(client, review(with_images("pod", [pause])), webhook)
    assert answer["allowed"] is True
    (warning,) = answer["warnings"]
    assert warning.startswith(f"{pause} is admitted by an exemption (pause containers")
    # A date is inclusive: the exemption ends when the next day starts (UTC).
    ends = datetime.combine(EXEMPTION_EXPIRES + timedelta(days=1), time(), tzinfo=UTC)
    assert f"expires at {ends.isoformat()}: attest the image or renew the exemption" in warning


def test_image_no_policy_selects_falls_to_no_match(client: TestClient, webhook: dict) -> None:
    other = f"quay.io/other/app@sha256:{digest_of('other')}"
    answer = validate(client, review(with_images("pod", [other])), webhook)
    assert answer["allowed"] is False
    assert "no ImagePolicy selects quay.io/other/app" in answer["status"]["message"]


# -- what is not evaluated -----------------------------------------------------------------------


def test_excluded_namespace_is_allowed_without_evaluation(
    client: TestClient, db: Database, webhook: dict
) -> None:
    body = review(with_images("pod", ["nginx:latest"]), namespace="kube-system")
    answer = validate(client, body, webhook)
    assert answer["allowed"] is True
    assert answer["auditAnnotations"]["outcome"] == "excluded"
    (decision,) = decisions(db)
    assert decision.explanation["evaluation"] is None
    assert decision.reasons == ["namespace kube-system is excluded from policy (kube-system)"]


def test_unknown_kind_is_allowed_with_a_warning(
    client: TestClient, db: Database, webhook: dict
) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {}}
    body = review(service, gvk=("", "v1", "Service", "services"))
    answer = validate(client, body, webhook)
    assert answer["allowed"] is True
    assert answer["auditAnnotations"]["outcome"] == "unsupported"
    assert answer["warnings"] == [
        "Provenant: core/v1/Service is not a kind Provenant reads images from; allowed without "
        "evaluation"
    ]
    assert decisions(db)[0].outcome == "unsupported"


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_delete_and_connect_are_allowed(
    operation: str, client: TestClient, db: Database, webhook: dict
) -> None:
    body = review(None, "pod", operation=operation, old=with_images("pod", [UNATTESTED]))
    answer = validate(client, body, webhook)
    assert answer["allowed"] is True
    (decision,) = decisions(db)
    assert (decision.outcome, decision.operation) == ("skipped", operation)


def test_status_subresource_is_not_evaluated(client: TestClient, webhook: dict) -> None:
    body = review(with_images("pod", [UNATTESTED]), operation="UPDATE", sub_resource="status")
    assert validate(client, body, webhook)["auditAnnotations"]["outcome"] == "skipped"


def test_ephemeral_container_subresource_evaluates_only_the_new_debug_container(
    client: TestClient, attest, webhook: dict
) -> None:
    pod = load("pod-ephemeral")  # its regular containers are not attested: not evaluated here
    body = review(pod, operation="UPDATE", sub_resource="ephemeralcontainers", old=load("pod"))
    answer = validate(client, body, webhook)
    assert answer["allowed"] is False
    assert "ephemeralContainers/debugger" in answer["status"]["message"]
    assert APP not in answer["status"]["message"]
    attest(pod["spec"]["ephemeralContainers"][0]["image"])
    assert validate(client, body, webhook)["allowed"] is True


def test_an_update_is_judged_on_the_images_it_adds(
    client: TestClient, db: Database, webhook: dict
) -> None:
    canary = f"ghcr.io/acme/canary@sha256:{digest_of('canary-2')}"
    old = with_images("deployment", [UNATTESTED])
    body = review(with_images("deployment", [UNATTESTED, canary]), operation="UPDATE", old=old)
    answer = validate(client, body, webhook)
    assert answer["allowed"] is False
    assert canary in answer["status"]["message"]
    assert UNATTESTED not in answer["status"]["message"]


def test_an_update_that_adds_no_image_is_not_judged_again(
    client: TestClient, db: Database, webhook: dict
) -> None:
    # A controller removing a finalizer from a Pod whose attestation was since revoked.
    old = with_images("pod", [UNATTESTED])
    new = with_images("pod", [UNATTESTED])
    new["metadata"]["finalizers"] = []
    answer = validate(client, review(new, operation="UPDATE", old=old), webhook)
    assert answer["allowed"] is True
    assert answer["auditAnnotations"]["outcome"] == "unchanged"
    (decision,) = decisions(db)
    assert decision.images[0]["image"] == UNATTESTED and decision.images[0]["allowed"] is None


# -- dry run and break-glass ---------------------------------------------------------------------


def test_dry_run_gets_the_same_answer_and_is_recorded_as_such(
    client: TestClient, db: Database, webhook: dict
) -> None:
    obj = with_images("pod", [UNATTESTED])
    real = validate(client, review(obj), webhook)
    dry = validate(client, review(obj, dry_run=True), webhook)
    assert dry["allowed"] is real["allowed"] is False
    assert dry["status"]["message"].split(":\n", 1)[1] == real["status"]["message"].split(":\n")[1]
    first, second = decisions(db)
    assert (first.dry_run, second.dry_run) == (False, True)
    assert [e.payload["dry_run"] for e in events(db)] == [False, True]


def test_break_glass_admits_where_permitted_and_is_audited(
    client: TestClient, db: Database, webhook: dict
) -> None:
    justification = "INC-1234: hotfix while the attestation pipeline is down"
    obj = with_images("pod", [UNATTESTED], annotations={"provenant.dev/break-glass": justification})
    answer = validate(client, review(obj, namespace="prod-eu"), webhook)
    assert answer["allowed"] is True
    assert answer["auditAnnotations"]["outcome"] == "break-glass"
    assert answer["warnings"][0].startswith(f'admitted by break-glass: "{justification}"')
    assert "it would have been denied" in answer["warnings"][0]
    (decision,) = decisions(db)
    assert decision.outcome == "break-glass" and decision.allowed
    assert decision.explanation["break_glass"] == justification
    assert any("denied by policy acme-release" in line for line in decision.explanation["denial"])
    (event,) = events(db)
    assert event.type == "admission.break_glass"
    assert event.payload["break_glass"] == justification
    assert event.payload["decision"] == decision.id


def test_break_glass_on_the_pod_template_counts(client: TestClient, webhook: dict) -> None:
    obj = with_images("deployment", [UNATTESTED])
    obj["spec"]["template"]["metadata"]["annotations"] = {"provenant.dev/break-glass": "INC-9"}
    answer = validate(client, review(obj), webhook)
    assert answer["auditAnnotations"]["outcome"] == "break-glass"


def test_break_glass_outside_its_namespaces_or_without_reason_is_refused(
    client: TestClient, webhook: dict
) -> None:
    obj = with_images("pod", [UNATTESTED], annotations={"provenant.dev/break-glass": "urgent"})
    answer = validate(client, review(obj, namespace="team-x"), webhook)
    assert answer["allowed"] is False
    assert "break-glass is not enabled for namespace team-x" in answer["status"]["message"]
    empty = with_images("pod", [UNATTESTED], annotations={"provenant.dev/break-glass": "  "})
    answer = validate(client, review(empty), webhook)
    assert answer["allowed"] is False
    assert "annotation needs a justification" in answer["status"]["message"]


def test_break_glass_is_not_recorded_when_nothing_was_bypassed(
    client: TestClient, db: Database, attest, webhook: dict
) -> None:
    attest(APP)
    obj = with_images("pod", [APP], annotations={"provenant.dev/break-glass": "just in case"})
    answer = validate(client, review(obj), webhook)
    assert answer["auditAnnotations"]["outcome"] == "allowed"
    assert events(db)[0].type == "admission.decision"


# -- internal errors -----------------------------------------------------------------------------


def _break_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("database at db.internal:5432 went away")

    monkeypatch.setattr("app.admission.service.evaluate_images", broken)


def test_internal_error_is_denied_per_on_error_and_told_apart(
    client: TestClient, db: Database, webhook: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_the_engine(monkeypatch)
    answer = validate(client, review(with_images("pod", [UNATTESTED])), webhook)
    assert answer["allowed"] is False
    status = answer["status"]
    assert status["code"] == 500 and status["reason"] == "InternalError"
    assert status["message"].startswith("Provenant could not decide on Pod default/app")
    assert "internal error, not a policy failure (ConnectionError)" in status["message"]
    assert "denied by onError: deny of policy acme-release" in status["message"]
    assert "db.internal" not in status["message"]  # details are for operators
    (decision,) = decisions(db)
    assert decision.outcome == "error" and not decision.allowed
    assert "db.internal:5432" in decision.explanation["error"]


def test_internal_error_is_allowed_where_every_policy_says_on_error_allow(
    client: TestClient, db: Database, webhook: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_the_engine(monkeypatch)
    answer = validate(client, review(with_images("pod", [LENIENT])), webhook)
    assert answer["allowed"] is True
    assert answer["auditAnnotations"]["outcome"] == "error"
    assert "allowed by onError: allow of policy lenient" in answer["warnings"][0]
    assert decisions(db)[0].outcome == "error"


def test_an_unattested_image_under_on_error_allow_is_still_a_policy_denial(
    client: TestClient, webhook: dict
) -> None:
    # onError covers errors only: a missing attestation is a verdict.
    answer = validate(client, review(with_images("pod", [LENIENT])), webhook)
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403


def test_no_policy_set_is_an_error_that_denies(
    client: TestClient, app: FastAPI, webhook: dict
) -> None:
    app.state.policies.active = None
    answer = validate(client, review(with_images("pod", [LENIENT])), webhook)
    assert answer["allowed"] is False
    assert answer["auditAnnotations"]["outcome"] == "error"
    assert answer["auditAnnotations"]["policy-set-hash"] == "none"


# -- recording -----------------------------------------------------------------------------------


def test_decision_and_audit_event_are_one_record(
    client: TestClient, db: Database, webhook: dict
) -> None:
    validate(client, review(with_images("pod", [UNATTESTED]), user="carol"), webhook)
    (decision,) = decisions(db)
    (event,) = events(db)
    assert event.type == "admission.decision" and event.actor == "carol"
    payload = event.payload
    assert payload["decision"] == decision.id
    assert payload["outcome"] == "denied" and payload["allowed"] is False
    assert payload["images"] == [
        {"image": UNATTESTED, "digest": f"sha256:{digest_of('unattested')}"}
    ]
    # The large columns are bound to the log by their hashes, recomputable from the database.
    assert payload["request_sha256"] == decision.request_sha256
    assert canonical_sha256(decision.request) == decision.request_sha256
    assert canonical_sha256(decision.explanation) == payload["explanation_sha256"]


def test_a_decision_that_cannot_be_recorded_is_refused_and_leaves_nothing(
    client: TestClient, db: Database, attest, webhook: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    attest(APP)
    from app.admission import record

    real = record.append_event_rows

    def record_then_fail(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)  # the event is in the transaction...
        raise RuntimeError("disk full")  # ...which then fails before the decision is added

    monkeypatch.setattr(record, "append_event_rows", record_then_fail)
    answer = validate(client, review(with_images("pod", [APP])), webhook)
    assert answer["allowed"] is False
    assert "decision not recorded" in answer["status"]["message"]
    assert "decision-id" not in answer["auditAnnotations"]
    assert decisions(db) == []
    assert events(db) == []


# -- the review itself ---------------------------------------------------------------------------


def test_v1beta1_is_answered_in_kind(client: TestClient, webhook: dict) -> None:
    body = review(with_images("pod", [UNATTESTED]), api_version="admission.k8s.io/v1beta1")
    assert validate(client, body, webhook)["allowed"] is False


def _broken(mutate) -> dict[str, Any]:
    body = review(load("deployment"))
    mutate(body)
    return body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "the body is not JSON"),
        (b"[1, 2]", "not an AdmissionReview object"),
        (json.dumps({"kind": "AdmissionReview"}).encode(), "apiVersion"),
        (_broken(lambda b: b.pop("request")), "request"),
        (_broken(lambda b: b.update(apiVersion="admission.k8s.io/v2")), "apiVersion"),
        (_broken(lambda b: b["request"].pop("uid")), "request.uid"),
        (_broken(lambda b: b["request"].update(operation="PATCH")), "request.operation"),
        (_broken(lambda b: b["request"].update(object=None)), "must carry the object"),
        (
            _broken(lambda b: b["request"]["object"]["spec"].update(template=[])),
            "request.object: spec.template is not an object",
        ),
    ],
    ids=[
        "not-json",
        "array",
        "no-apiversion",
        "no-request",
        "bad-apiversion",
        "no-uid",
        "bad-operation",
        "create-without-object",
        "bad-object",
    ],
)
def test_malformed_reviews_are_400_with_the_error_shape(
    body: Any, message: str, client: TestClient, db: Database, webhook: dict
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post("/k8s/validate", content=content, headers=webhook)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "malformed_review"
    assert message in error["message"]
    assert decisions(db) == []


@pytest.mark.parametrize(
    ("scopes", "status", "code"),
    [(None, 401, "unauthenticated"), ((), 401, "unauthenticated"), (("read",), 403, "forbidden")],
    ids=["missing", "invalid", "wrong-scope"],
)
def test_wrong_or_missing_credentials(
    scopes: tuple[str, ...] | None, status: int, code: str, client: TestClient, tokens, db
) -> None:
    if scopes is None:
        headers: dict[str, str] = {}
    elif not scopes:
        headers = {"Authorization": "Bearer prv_not-a-real-token"}
    else:
        headers = tokens(*scopes)
    response = client.post("/k8s/validate", json=review(load("pod")), headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert decisions(db) == []


def test_admin_tokens_may_ask(client: TestClient, tokens) -> None:
    assert validate(client, review(load("pod")), tokens("admin"))["allowed"] is False


@pytest.mark.parametrize("path", captured(), ids=lambda p: p.name)
def test_reviews_captured_from_a_real_apiserver(
    path, client: TestClient, db: Database, attest, webhook: dict
) -> None:
    """Their placeholder images swapped for pinned ones: "good" ones attested, others not."""
    body = json.loads(path.read_text())
    pinned: dict[str, str] = {}
    text = json.dumps(body)
    for image in {c["image"] for c in _containers(body["request"]["object"])}:
        good = "good" in image or image.startswith("busybox")
        pinned[image] = f"ghcr.io/acme/{'good' if good else 'evil'}@sha256:{digest_of(image)}"
        if good:
            attest(pinned[image])
        text = text.replace(f'"{image}"', f'"{pinned[image]}"')
    body = json.loads(text)
    answer = validate(client, body, webhook)
    expected = all("good" in p for p in pinned.values())
    assert answer["allowed"] is expected, answer
    (decision,) = decisions(db)
    assert decision.dry_run is bool(body["request"]["dryRun"])
    assert decision.uid == body["request"]["uid"]


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    found.extend(value)
                else:
                    walk(value)

    walk(copy.deepcopy(obj))
    return found


def test_without_a_policy_set_the_denial_says_the_policies_did_not_load(
    db_url: str, tmp_path, webhook: dict
) -> None:
    from tests.conftest import make_app

    broken = tmp_path / "broken-policies"
    broken.mkdir()
    (broken / "policy.yaml").write_text("apiVersion: provenant.dev/v1alpha1\nkind: Nonsense\n")
    with TestClient(make_app(db_url, broken), raise_server_exceptions=False) as c:
        assert c.get("/readyz").status_code == 503
        denied = validate(c, review(load("pod")), webhook)
    assert denied["allowed"] is False  # still fail closed
    message = denied["status"]["message"]
    assert "no policy set is loaded: the policy directory failed to load" in message
    assert "RuntimeError" not in message and "NoPolicySet" not in message
