"""POST /v1/attestations and the queries, through the app, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.attestations.models import Attestation, AttestationBlob, AttestationSubject
from app.audit.models import AuditEvent
from app.db import Database
from tests.attestations.conftest import RELEASE_KEY, statement
from tests.helpers import TokenFactory
from tests.sigstore_stack import SigstoreTestStack, github_actions_extensions


@pytest.fixture
def uploader(tokens: TokenFactory) -> dict[str, str]:
    return tokens("upload", name="ci")


@pytest.fixture
def reader(tokens: TokenFactory) -> dict[str, str]:
    return tokens("read", name="auditor")


def _count(db: Database, model: type) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _events(db: Database, type_: str) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.type == type_)).all())


def test_keyless_dsse_bundle_is_verified_stored_and_indexed(
    client: TestClient, stack: SigstoreTestStack, uploader: dict, reader: dict
) -> None:
    st = statement()
    bundle = stack.sign_dsse(st, extensions=github_actions_extensions()).encode()
    response = client.post("/v1/attestations", content=bundle, headers=uploader)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "created"
    assert body["id"] == hashlib.sha256(bundle).hexdigest()

    detail = client.get(f"/v1/attestations/{body['id']}", headers=reader).json()
    assert detail["trust_root"] == "test-stack"
    assert detail["predicate_type"] == "https://slsa.dev/provenance/v1"
    assert detail["signer"]["issuer"] == "https://token.actions.githubusercontent.com"
    assert detail["signer"]["san"].startswith("https://github.com/acme/app/")
    extensions = detail["signers"][0]["extensions"]
    assert extensions["sourceRepositoryURI"] == "https://github.com/acme/app"
    assert extensions["buildTrigger"] == "push"
    assert detail["builder_id"].startswith("https://github.com/slsa-framework/")
    assert detail["source_repo"] == "https://github.com/acme/app"
    assert detail["source_commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert detail["materials"][0]["digest"] == {
        "gitcommit": "0123456789abcdef0123456789abcdef01234567"
    } or detail["materials"][0]["digest"] == {
        "gitCommit": "0123456789abcdef0123456789abcdef01234567"
    }
    assert detail["tlog_entries"][0]["kind"] == "dsse"
    assert detail["statement"]["subject"] == st["subject"]

    raw = client.get(f"/v1/attestations/{body['id']}/raw", headers=reader)
    assert raw.content == bundle

    digest = st["subject"][0]["digest"]["sha256"]
    listed = client.get(
        "/v1/attestations", params={"subject_digest": f"sha256:{digest}"}, headers=reader
    ).json()
    assert [a["id"] for a in listed["items"]] == [body["id"]]
    other = client.get(
        "/v1/attestations", params={"subject_digest": "sha256:" + "0" * 64}, headers=reader
    ).json()
    assert other["items"] == []


def test_reupload_returns_200_and_the_same_id(
    client: TestClient, stack: SigstoreTestStack, uploader: dict, db: Database
) -> None:
    bundle = stack.sign_dsse(statement()).encode()
    first = client.post("/v1/attestations", content=bundle, headers=uploader)
    again = client.post("/v1/attestations", content=bundle, headers=uploader)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["status"] == "existing"
    assert _count(db, Attestation) == 1


def test_message_signature_needs_and_records_the_subject(
    client: TestClient, stack: SigstoreTestStack, uploader: dict, reader: dict
) -> None:
    artifact = b"release tarball bytes"
    digest = hashlib.sha256(artifact).hexdigest()
    bundle = stack.sign_artifact(artifact).encode()
    missing = client.post("/v1/attestations", content=bundle, headers=uploader)
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "subject_missing"

    wrong = client.post(
        "/v1/attestations",
        content=bundle,
        headers=uploader,
        params={"subject_digest": "sha256:" + "1" * 64, "subject_name": "app.tar.gz"},
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "subject_mismatch"

    ok = client.post(
        "/v1/attestations",
        content=bundle,
        headers=uploader,
        params={"subject_digest": f"sha256:{digest}", "subject_name": "app.tar.gz"},
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["attestation"]["content_kind"] == "message-signature"
    listed = client.get(
        "/v1/attestations", params={"subject_digest": f"sha256:{digest}"}, headers=reader
    ).json()["items"]
    assert listed[0]["subjects"] == [{"name": "app.tar.gz", "digest": {"sha256": digest}}]


def test_bad_subject_digest_parameter_is_400(
    client: TestClient, stack: SigstoreTestStack, uploader: dict
) -> None:
    response = client.post(
        "/v1/attestations",
        content=stack.sign_artifact(b"x").encode(),
        headers=uploader,
        params={"subject_digest": "sha256:xyz"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_digest"


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("bad_signature", "signature_invalid"),
        ("modified_payload", "signature_invalid"),
        # The stack's impostor CA: same names as the trusted Fulcio CA, another key.
        ("bad_chain", "untrusted_root"),
        ("expired_cert", "certificate_expired"),
        ("bad_sct", "sct_invalid"),
        ("bad_inclusion_proof", "tlog_proof_invalid"),
        ("subject_missing", "subject_missing"),
    ],
)
def test_rejections_are_422_recorded_and_store_nothing(
    client: TestClient,
    stack: SigstoreTestStack,
    uploader: dict,
    db: Database,
    tamper: str,
    code: str,
) -> None:
    bundle = stack.sign_dsse(statement(), tamper=tamper).encode()
    response = client.post("/v1/attestations", content=bundle, headers=uploader)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert _count(db, Attestation) == 0
    assert _count(db, AttestationBlob) == 0
    assert _count(db, AttestationSubject) == 0
    [event] = _events(db, "attestation.rejected")
    assert event.actor == "ci"
    assert event.payload["code"] == code
    assert event.payload["sha256"] == hashlib.sha256(bundle).hexdigest()
    assert event.payload["size"] == len(bundle)
    assert "bundle" not in json.dumps(event.payload)  # the payload itself is never kept


def test_accepted_upload_is_an_audit_event(
    client: TestClient, stack: SigstoreTestStack, uploader: dict, db: Database
) -> None:
    response = client.post(
        "/v1/attestations", content=stack.sign_dsse(statement()).encode(), headers=uploader
    )
    [event] = _events(db, "attestation.accepted")
    assert event.payload["id"] == response.json()["id"]
    assert event.actor == "ci"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "malformed"),
        (b"{not json", 400, "malformed"),
        (b"\xff\xfe\x00garbage", 400, "malformed"),
        (b'{"hello": "world"}', 422, "unsupported_format"),
        (b"[1, 2, 3]", 422, "unsupported_format"),
    ],
)
def test_malformed_and_unknown_bodies(
    client: TestClient, uploader: dict, db: Database, body: bytes, status: int, code: str
) -> None:
    response = client.post("/v1/attestations", content=body, headers=uploader)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert len(_events(db, "attestation.rejected")) == 1


def test_upload_over_the_limit_is_413(
    db_url: str, policy_dir, stack: SigstoreTestStack, tokens: TokenFactory, db: Database
) -> None:
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(database_url=db_url, policy_dir=policy_dir, max_upload_bytes=1000))
    bundle = stack.sign_dsse(statement()).encode()
    assert len(bundle) > 1000
    with TestClient(app) as c:
        response = c.post("/v1/attestations", content=bundle, headers=tokens("upload"))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert _events(db, "attestation.rejected")[0].payload["code"] == "payload_too_large"
    assert _count(db, Attestation) == 0


def test_bare_dsse_with_a_configured_key(
    client: TestClient, stack: SigstoreTestStack, uploader: dict, reader: dict
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    envelope = stack.sign_bare_dsse(statement(), RELEASE_KEY).encode()
    response = client.post("/v1/attestations", content=envelope, headers=uploader)
    assert response.status_code == 201, response.text
    signer = response.json()["attestation"]["signer"]
    assert signer["kind"] == "key"
    assert signer["key_id"]

    stranger = ec.generate_private_key(ec.SECP256R1())
    unknown = client.post(
        "/v1/attestations",
        content=stack.sign_bare_dsse(statement(), stranger).encode(),
        headers=uploader,
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "untrusted_key"


def test_key_signed_bundle_with_tlog_entry(
    client: TestClient, stack: SigstoreTestStack, uploader: dict
) -> None:
    bundle = stack.sign_dsse_with_key(statement(), RELEASE_KEY).encode()
    response = client.post("/v1/attestations", content=bundle, headers=uploader)
    assert response.status_code == 201, response.text
    assert response.json()["attestation"]["signer"]["kind"] == "key"
    assert response.json()["attestation"]["trust_root"] == "test-stack"
    bad = stack.sign_dsse_with_key(statement(), RELEASE_KEY, tamper="bad_inclusion_proof")
    rejected = client.post("/v1/attestations", content=bad.encode(), headers=uploader)
    assert rejected.status_code == 422
    assert rejected.json()["error"]["code"] == "tlog_proof_invalid"


def test_jsonl_lines_are_stored_or_rejected_on_their_own(
    client: TestClient, stack: SigstoreTestStack, uploader: dict, db: Database
) -> None:
    good1 = stack.sign_dsse(statement("a"))
    good2 = stack.sign_dsse(statement("b"))
    bad = stack.sign_dsse(statement("c"), tamper="bad_signature")
    body = "\n".join([good1, bad, "", good2]).encode() + b"\n"
    response = client.post(
        "/v1/attestations", content=body, headers={**uploader, "Content-Type": "application/jsonl"}
    )
    assert response.status_code == 207, response.text
    result = response.json()
    assert (result["created"], result["existing"], result["rejected"]) == (2, 0, 1)
    assert [r["status"] for r in result["results"]] == ["created", "rejected", "created"]
    assert result["results"][1]["error"]["code"] == "signature_invalid"
    assert _count(db, Attestation) == 2

    again = client.post(
        "/v1/attestations", content=(good1 + "\n" + good2).encode(), headers=uploader
    )
    assert again.status_code == 200
    assert again.json()["existing"] == 2


def test_scopes_on_ingest_and_queries(
    client: TestClient, stack: SigstoreTestStack, reader: dict, uploader: dict
) -> None:
    bundle = stack.sign_dsse(statement()).encode()
    assert client.post("/v1/attestations", content=bundle, headers=reader).status_code == 403
    assert (
        client.get(
            "/v1/attestations", params={"subject_digest": "sha256:" + "0" * 64}, headers=uploader
        ).status_code
        == 403
    )


def test_unknown_attestation_and_bad_cursor(client: TestClient, reader: dict) -> None:
    missing = client.get("/v1/attestations/" + "0" * 64, headers=reader)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert client.get("/v1/attestations/nope/raw", headers=reader).status_code == 404
    bad = client.get(
        "/v1/attestations",
        params={"subject_digest": "sha256:" + "0" * 64, "cursor": "!!!"},
        headers=reader,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_cursor"


def test_pagination_by_subject(
    client: TestClient, stack: SigstoreTestStack, uploader: dict, reader: dict
) -> None:
    digest = "ab" * 32
    ids = set()
    for _ in range(5):
        r = client.post(
            "/v1/attestations", content=stack.sign_dsse(statement(digest=digest)), headers=uploader
        )
        ids.add(r.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"subject_digest": f"sha256:{digest}", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/attestations", params=params, headers=reader).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))


def _two_subject_statement() -> dict:
    st = statement("two")
    st["subject"].append({"name": "two-b", "digest": {"sha256": "EF" * 32, "sha1": "12" * 20}})
    return st


@pytest.mark.parametrize("kind", ["keyless", "two-subjects", "message", "key-bundle", "bare-dsse"])
def test_the_upload_answer_is_the_stored_records_summary(
    client: TestClient,
    stack: SigstoreTestStack,
    uploader: dict,
    reader: dict,
    db: Database,
    kind: str,
) -> None:
    """A new upload is answered from the values inserted, not from a row read back: both must
    say the same, and re-uploading (answered from the stored row) must say it again."""
    artifact = hashlib.sha256(b"artifact").hexdigest()
    params: dict[str, str] = {}
    if kind == "keyless":
        body = stack.sign_dsse(statement(), extensions=github_actions_extensions())
    elif kind == "two-subjects":
        body = stack.sign_dsse(_two_subject_statement())
    elif kind == "message":
        body = stack.sign_artifact(b"artifact")
        params = {"subject_digest": f"sha256:{artifact}", "subject_name": "artifact.bin"}
    elif kind == "key-bundle":
        body = stack.sign_dsse_with_key(statement(), RELEASE_KEY)
    else:
        body = stack.sign_bare_dsse(statement(), RELEASE_KEY)
    created = client.post("/v1/attestations", content=body, params=params, headers=uploader)
    assert created.status_code == 201, created.text
    again = client.post("/v1/attestations", content=body, params=params, headers=uploader)
    assert again.status_code == 200, again.text
    answer = created.json()["attestation"]
    assert answer["uploaded_at"].endswith("Z")
    listed = client.get(
        "/v1/attestations",
        params={"subject_digest": f"sha256:{answer['subjects'][0]['digest']['sha256']}"},
        headers=reader,
    ).json()["items"]
    for stored in (again.json()["attestation"], *listed):
        # Read answers carry the zone too (SQLite hands stored times back without one).
        assert stored == answer
    assert len(listed) == 1
    assert answer["uploaded_by"] == "ci" and answer["revoked"] is False


def test_listing_recent_uploads_without_a_digest(
    client: TestClient, stack: SigstoreTestStack, uploader: dict, reader: dict
) -> None:
    ids = [
        client.post(
            "/v1/attestations", content=stack.sign_dsse(statement(f"r{i}")), headers=uploader
        ).json()["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/attestations", params=params, headers=reader)
        assert page.status_code == 200, page.text
        seen += [a["id"] for a in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    newest = client.get("/v1/attestations", params={"limit": 1}, headers=reader).json()
    assert newest["items"][0]["id"] == seen[0]


@pytest.mark.parametrize(
    "spelling",
    ["github.com/acme/app", "https://github.com/acme/app.git", "git+https://GitHub.com/acme/app/"],
)
def test_source_repo_matches_in_any_spelling(
    client: TestClient, stack: SigstoreTestStack, uploader: dict, reader: dict, spelling: str
) -> None:
    stored = statement("src", repo="https://github.com/acme/app.git")
    other = statement("other", repo="https://github.com/acme/other")
    for st in (stored, other):
        assert (
            client.post(
                "/v1/attestations", content=stack.sign_dsse(st), headers=uploader
            ).status_code
            == 201
        )
    listed = client.get("/v1/attestations", params={"source_repo": spelling}, headers=reader)
    assert [a["source_repo"] for a in listed.json()["items"]] == ["https://github.com/acme/app"]
    blast = client.get("/v1/artifacts", params={"source_repo": spelling}, headers=reader)
    assert blast.status_code == 200, blast.text
    digests = [a["digest"] for a in blast.json()["items"]]
    assert digests == [f"sha256:{stored['subject'][0]['digest']['sha256']}"]
