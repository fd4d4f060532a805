"""Explanations and requests stored once: each decision still reads back exactly as decided."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.admission.documents import (
    ID_MARK,
    NAME_MARK,
    TIME_MARK,
    canonical_bytes,
    join_explanation,
    join_request,
    split_explanation,
    split_request,
)
from app.admission.models import Decision, DecisionExplanation, DecisionRequest
from app.admission.record import canonical_sha256
from app.audit.models import AuditEvent
from app.db import Database
from app.migrate import alembic_config
from tests.admission.helpers import APP, digest_of, review, with_images

UNATTESTED = f"ghcr.io/acme/unattested@sha256:{digest_of('unattested')}"
CREATED = "2026-12-03T18:00:00Z"
DECISION_ID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
NAME = "web-7d9f-00001"
AT = "2026-12-03T18:00:00.123456+00:00"


def _explanation(
    uid: str, decision_id: str, extra: str = "", at: str = AT, name: str = NAME
) -> dict[str, Any]:
    return {
        "evaluation": {
            "evaluated_at": at,
            "images": [{"image": APP, "reason": f"denied {extra}", "n": 2**70}],
        },
        "warnings": [f"see {extra}"],
        "denial": ["x"],
        "error": None,
        "break_glass": None,
        "response": {
            "uid": uid,
            "allowed": False,
            "status": {"message": f"denied Pod prod/{name} (decision {decision_id}, details at "
                       f"GET /v1/decisions/{decision_id} {extra}"},
            "warnings": [f"Provenant: full explanation at GET /v1/decisions/{decision_id}"],
            "auditAnnotations": {"decision-id": decision_id, "outcome": "denied"},
        },
    }  # fmt: skip


def _round_trip(
    explanation: dict[str, Any], decision_id: str, uid: str, at: str = AT, name: str = NAME
) -> bytes:
    shared = split_explanation(canonical_bytes(explanation), decision_id, uid, at, name)
    stored = json_value(shared)
    return canonical_bytes(join_explanation(stored, decision_id, uid, at, name))


def json_value(data: bytes) -> Any:
    from app import jsoncodec

    return jsoncodec.loads_exact(data)


def test_two_decisions_of_one_template_share_their_explanation_and_read_back_exactly() -> None:
    first = _explanation("uid-1", DECISION_ID)
    other_id = "0190a1b2-c3d4-7e5f-8a9b-ffffffffffff"
    later = "2026-12-03T18:00:01+00:00"
    second = _explanation("uid-2", other_id, at=later, name="web-7d9f-00002")
    shared_1 = split_explanation(canonical_bytes(first), DECISION_ID, "uid-1", AT, NAME)
    shared_2 = split_explanation(
        canonical_bytes(second), other_id, "uid-2", later, "web-7d9f-00002"
    )
    assert shared_1 == shared_2
    assert DECISION_ID.encode() not in shared_1 and b"uid-1" not in shared_1
    assert AT.encode() not in shared_1
    assert _round_trip(first, DECISION_ID, "uid-1") == canonical_bytes(first)
    assert _round_trip(second, other_id, "uid-2", later, "web-7d9f-00002") == canonical_bytes(
        second
    )
    # A name inside an escape sequence cannot be marked; a short one is left in place.
    odd = _explanation("uid-1", DECISION_ID, extra="\u0007", name="u0007")
    assert _round_trip(odd, DECISION_ID, "uid-1", name="u0007") == canonical_bytes(odd)
    assert _round_trip(first, DECISION_ID, "uid-1", name="d") == canonical_bytes(first)


@pytest.mark.parametrize(
    ("explanation", "uid"),
    [
        (_explanation("uid-1", DECISION_ID, extra=ID_MARK), "uid-1"),  # the mark already occurs
        (_explanation("uid-1", DECISION_ID, extra=TIME_MARK), "uid-1"),
        (_explanation("uid-1", DECISION_ID, extra=NAME_MARK), "uid-1"),
        (_explanation("uid-1", DECISION_ID), "another uid"),  # the response is not this review's
        ({"response": None, "evaluation": None}, "uid-1"),
    ],
)
def test_an_explanation_that_cannot_be_split_exactly_is_kept_whole(
    explanation: dict[str, Any], uid: str
) -> None:
    whole = canonical_bytes(explanation)
    assert split_explanation(whole, DECISION_ID, uid, AT, NAME) == whole
    assert _round_trip(explanation, DECISION_ID, uid) == whole


def test_a_request_splits_into_its_template_and_own_values_and_back() -> None:
    def pod(uid: str, name: str) -> dict[str, Any]:
        return {
            "uid": uid,
            "name": name,
            "namespace": "prod",
            "object": {
                "metadata": {"name": name, "uid": uid[::-1], "creationTimestamp": CREATED,
                             "labels": {"app": "web"}},
                "spec": {"containers": [{"image": APP}]},
            },
            "oldObject": None,
        }  # fmt: skip

    one, two = pod("a1", "web-1"), pod("b2", "web-2")
    template_1, own_1 = split_request(one, "a1")
    template_2, own_2 = split_request(two, "other")
    assert template_1 == template_2
    # The row's uid is not repeated; a request whose uid is not the row's keeps its own.
    assert "uid" not in own_1 and own_2["uid"] == "b2" and own_1["object.metadata.name"] == "web-1"
    for request, template, own, uid in (
        (one, template_1, own_1, "a1"),
        (two, template_2, own_2, "other"),
    ):
        joined = join_request(json_value(template), own, uid)
        assert canonical_bytes(joined) == canonical_bytes(request)
    # An object without metadata, or a key that is absent, stays absent.
    bare = {"uid": "c3", "object": {"spec": {}}}
    template, own = split_request(bare, "c3")
    assert join_request(json_value(template), own, "c3") == bare


def _replica(pod: dict[str, Any], index: int) -> dict[str, Any]:
    obj = copy.deepcopy(pod)
    obj["metadata"]["name"] = f"web-7d9f-{index:05d}"
    obj["metadata"]["uid"] = f"00000000-0000-0000-0000-{index:012d}"
    return review(obj)


def _count(db: Database, table: Any) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def _answers(client: TestClient, reader: dict[str, str], ids: list[str]) -> list[Any]:
    views = []
    for decision_id in ids:
        response = client.get(f"/v1/decisions/{decision_id}?include_request=true", headers=reader)
        assert response.status_code == 200, response.text
        views.append(response.json())
    listed = client.get("/v1/decisions?limit=100", headers=reader)
    assert listed.status_code == 200, listed.text
    return [views, listed.json()]


def test_replicas_store_one_explanation_and_each_decision_verifies_against_its_event(
    client: TestClient, db: Database, attest, webhook: dict, reader: dict
) -> None:
    attest(APP)
    allowed = with_images("pod", [APP])
    denied = with_images("pod", [UNATTESTED])
    for index in range(4):
        for pod in (allowed, denied):
            response = client.post("/k8s/validate", json=_replica(pod, index), headers=webhook)
            assert response.status_code == 200, response.text
    assert _count(db, Decision) == 8
    assert _count(db, DecisionExplanation) == 2
    assert _count(db, DecisionRequest) == 2
    with db.session() as session:
        payloads = {
            e.payload["decision"]: e.payload
            for e in session.scalars(select(AuditEvent).where(AuditEvent.type.like("admission.%")))
        }
        rows = list(session.scalars(select(Decision)))
        for row in rows:
            payload = payloads[row.id]
            assert canonical_sha256(row.explanation) == payload["explanation_sha256"]
            assert canonical_sha256(row.request) == row.request_sha256 == payload["request_sha256"]
            assert row.explanation["response"]["uid"] == row.uid
            assert row.request["object"]["metadata"]["name"].startswith("web-7d9f-")
    denial = next(r for r in rows if not r.allowed).explanation["response"]["status"]["message"]
    assert "decision " in denial and ID_MARK not in denial


def test_the_migration_moves_decisions_out_and_back_and_they_answer_the_same(
    client: TestClient, db: Database, db_url: str, attest, webhook: dict, reader: dict
) -> None:
    attest(APP)
    for index in range(3):
        for pod in (with_images("pod", [APP]), with_images("pod", [UNATTESTED])):
            response = client.post("/k8s/validate", json=_replica(pod, index), headers=webhook)
            assert response.status_code == 200, response.text
    with db.session() as session:
        ids = sorted(session.scalars(select(Decision.id)))
        expected = {
            row.id: (canonical_bytes(row.explanation), canonical_bytes(row.request))
            for row in session.scalars(select(Decision))
        }
    before = _answers(client, reader, ids)
    db.dispose()
    config = alembic_config(db_url)

    command.downgrade(config, "0011")  # the revision before 0013
    from sqlalchemy import create_engine, text

    from app.db import normalize_url
    from app.jsoncodec import loads_exact

    engine = create_engine(normalize_url(db_url))
    with engine.connect() as conn:
        old = conn.execute(
            text("SELECT id, explanation, request, images FROM admission_decisions")
        ).all()
    engine.dispose()
    assert len(old) == len(ids)
    for decision_id, explanation, request, images in old:
        as_value = [loads_exact(v) if isinstance(v, str) else v for v in (explanation, request)]
        assert canonical_bytes(as_value[0]) == expected[decision_id][0]
        assert canonical_bytes(as_value[1]) == expected[decision_id][1]
        assert images

    command.upgrade(config, "head")
    assert _answers(client, reader, ids) == before
    assert _count(db, DecisionExplanation) == 2
