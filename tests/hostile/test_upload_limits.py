"""Issue 11: hostile uploads are refused with a 4xx naming the limit, before expensive work,
as one audit event; on SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.db import Database
from tests.attestations.conftest import statement
from tests.helpers import RELEASE_KEY
from tests.sigstore_stack import SigstoreTestStack


def _events(db: Database, type_: str) -> list[dict[str, Any]]:
    with db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.type == type_)).all()
        return [dict(r.payload) for r in rows]


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert set(error) == {"code", "message", "details"}
    return dict(error)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("[" * 100_000, "json_too_deep"),
        ('{"a":' * 5_000 + "1" + "}" * 5_000, "json_too_deep"),
        ("[" + "9" * 5_000 + "]", "integer_too_long"),
        ('{"mediaType": ' + "1" * 5_000 + "}", "integer_too_long"),
        ('{"a\\u0000": 1}', "unrepresentable_text"),
        ('{"payload": "x", "payload": "y"}', "duplicate_key"),
    ],
    ids=["array-depth", "object-depth", "integer", "integer-in-object", "nul-key", "dup"],
)
def test_hostile_json_upload_is_a_4xx_and_one_rejection_event(
    client: TestClient, db: Database, uploader: dict, body: str, code: str
) -> None:
    response = client.post("/v1/attestations", content=body.encode(), headers=uploader)
    error = _error(response, 422, code)
    if code in ("json_too_deep", "integer_too_long"):
        assert error["details"]["limit"].startswith("PROVENANT_MAX_")
    rejected = _events(db, "attestation.rejected")
    assert [e["code"] for e in rejected] == [code]


def _envelope(stack: SigstoreTestStack, st: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(stack.sign_bare_dsse(st, RELEASE_KEY)))


def test_signed_dsse_with_nul_in_a_subject_name_is_refused(
    client: TestClient, db: Database, stack: SigstoreTestStack, uploader: dict
) -> None:
    envelope = _envelope(stack, statement(name="app\x00.tar.gz"))
    response = client.post("/v1/attestations", json=envelope, headers=uploader)
    error = _error(response, 422, "unrepresentable_text")
    assert "subject[0].name" in error["message"]


def test_duplicate_payload_key_is_refused_not_stored(
    client: TestClient, db: Database, stack: SigstoreTestStack, uploader: dict
) -> None:
    """A parser that keeps the first key would read a payload nobody signed."""
    signed = _envelope(stack, statement())
    unsigned = base64.b64encode(json.dumps(statement(name="evil")).encode()).decode()
    text = (
        f'{{"payload": "{unsigned}", "payloadType": "{signed["payloadType"]}", '
        f'"payload": "{signed["payload"]}", "signatures": {json.dumps(signed["signatures"])}}}'
    )
    response = client.post("/v1/attestations", content=text.encode(), headers=uploader)
    error = _error(response, 422, "duplicate_key")
    assert error["details"] == {"key": "payload"}
    assert _events(db, "attestation.accepted") == []


def test_signature_count_is_bounded_before_any_is_checked(
    client: TestClient, stack: SigstoreTestStack, uploader: dict
) -> None:
    envelope = _envelope(stack, statement())
    envelope["signatures"] = envelope["signatures"] * 5_000
    response = client.post("/v1/attestations", json=envelope, headers=uploader)
    error = _error(response, 422, "too_many_signatures")
    assert error["details"] == {"limit": "PROVENANT_MAX_SIGNATURES", "max": 16}


def test_deep_signed_predicate_is_refused_at_ingest_and_a_stored_one_reads_back(
    client: TestClient, stack: SigstoreTestStack, uploader: dict, reader: dict
) -> None:
    """A predicate nested 300 deep was stored, then GET answered 500 forever."""

    def nested(depth: int) -> dict[str, Any]:
        value: dict[str, Any] = {"leaf": 1}
        for _ in range(depth - 1):
            value = {"n": value}
        return value

    deep = statement()
    deep["predicate"]["deep"] = nested(300)
    response = client.post("/v1/attestations", json=_envelope(stack, deep), headers=uploader)
    _error(response, 422, "json_too_deep")

    # At the limit (64, the statement and predicate counting 2 and "deep" 1 more): stored,
    # and every read answers.
    at_limit = statement(name="limit.tar.gz")
    at_limit["predicate"]["deep"] = nested(61)
    response = client.post("/v1/attestations", json=_envelope(stack, at_limit), headers=uploader)
    assert response.status_code == 201, response.text
    ident = response.json()["id"]
    assert client.get(f"/v1/attestations/{ident}", headers=reader).status_code == 200
    digest = at_limit["subject"][0]["digest"]["sha256"]
    assert client.get(f"/v1/artifacts/sha256:{digest}", headers=reader).status_code == 200


def test_jsonl_lines_are_bounded_and_a_rejected_upload_is_one_event(
    client: TestClient, db: Database, uploader: dict
) -> None:
    many = b"{}\n" * 10_000
    headers = {**uploader, "Content-Type": "application/x-ndjson"}
    response = client.post("/v1/attestations", content=many, headers=headers)
    error = _error(response, 413, "too_many_lines")
    assert error["details"]["limit"] == "PROVENANT_MAX_JSONL_LINES"
    assert len(_events(db, "attestation.rejected")) == 1

    response = client.post("/v1/attestations", content=b"{}\n" * 3, headers=headers)
    error = _error(response, 422, "jsonl_rejected")
    assert error["details"]["rejected"] == 3
    assert [r["error"]["code"] for r in error["details"]["results"]] == ["unsupported_format"] * 3
    events = _events(db, "attestation.rejected")
    assert len(events) == 2
    assert events[1]["lines"] == [{"line": n, "code": "unsupported_format"} for n in (1, 2, 3)]


def test_jsonl_partly_rejected_is_207_with_one_rejection_event(
    client: TestClient, db: Database, stack: SigstoreTestStack, uploader: dict
) -> None:
    good = stack.sign_bare_dsse(statement(), RELEASE_KEY).encode()
    body = b"{}\n" + good.replace(b"\n", b"") + b"\n{}\n"
    response = client.post("/v1/attestations", content=body, headers=uploader)
    assert response.status_code == 207, response.text
    assert response.json()["created"] == 1
    events = _events(db, "attestation.rejected")
    assert len(events) == 1
    assert [entry["line"] for entry in events[0]["lines"]] == [1, 3]
