"""Uploads are parsed, verified and stored in ingest worker processes, away from the event loop
that answers admission (issue 11): same answers, same records, and the loop keeps its turns
while a maximum-size upload is processed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.db import Database
from tests.attestations.conftest import RELEASE_KEY, statement
from tests.conftest import make_app
from tests.helpers import TokenFactory
from tests.sigstore_stack import SigstoreTestStack


@pytest.fixture
def app(db_url: str, policy_dir: Path) -> FastAPI:
    return make_app(db_url, policy_dir, ingest_workers=1)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def signed(stack: SigstoreTestStack, name: str, **padding: object) -> bytes:
    document = statement(name)
    document["predicate"]["buildDefinition"]["internalParameters"] = padding
    return stack.sign_bare_dsse(document, RELEASE_KEY).encode()


def test_uploads_are_verified_and_stored_by_a_worker_process(
    client: TestClient, app: FastAPI, db: Database, tokens: TokenFactory, stack: SigstoreTestStack
) -> None:
    uploader = tokens("upload")
    assert app.state.ingest_workers.in_processes
    document = signed(stack, "app.tar.gz")
    index = app.state.admission_index
    index.read()
    created = client.post("/v1/attestations", content=document, headers=uploader)
    assert created.status_code == 201, created.text
    # This process's admission decisions see the worker's upload at once.
    assert index.fresh() is None
    again = client.post("/v1/attestations", content=document, headers=uploader)
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]

    tampered = stack.sign_bare_dsse(statement("x"), RELEASE_KEY, tamper="modified_payload").encode()
    refused = client.post("/v1/attestations", content=tampered, headers=uploader)
    assert refused.status_code == 422, refused.text
    garbage = client.post("/v1/attestations", content=b"\x00\x01 not json", headers=uploader)
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "malformed"

    lines = b"\n".join([signed(stack, "a.tar.gz"), signed(stack, "b.tar.gz")])
    jsonl = client.post("/v1/attestations", content=lines, headers=uploader)
    assert jsonl.status_code == 201 and jsonl.json()["created"] == 2, jsonl.text

    with db.session() as session:
        kinds = list(session.scalars(select(AuditEvent.type).order_by(AuditEvent.seq)))
    assert kinds.count("attestation.accepted") == 3
    assert kinds.count("attestation.rejected") == 2


def test_the_event_loop_keeps_its_turns_while_a_maximum_size_upload_is_processed(
    client: TestClient, tokens: TokenFactory, stack: SigstoreTestStack
) -> None:
    uploader = tokens("upload")
    # About 9.5 MiB of envelope: a statement of small objects, the slowest JSON to parse.
    document = signed(stack, "big.tar.gz", items=[{"k": n % 10} for n in range(760_000)])
    assert len(document) <= 10 * 1024 * 1024
    payload = json.dumps(statement("big.tar.gz") | {"items": [{"k": 1}] * 760_000}).encode()
    started = time.perf_counter()
    json.loads(payload)
    parse = time.perf_counter() - started

    gaps: list[float] = []
    stop = threading.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    client.portal.start_task_soon(heartbeat)
    try:
        for _ in range(2):
            response = client.post("/v1/attestations", content=document, headers=uploader)
            assert response.status_code in (200, 201), response.text[:500]
    finally:
        stop.set()
    # In threads of the serving process, parsing alone held the interpreter lock, and so the
    # loop, for the whole parse (and storing as long again).
    assert max(gaps) < parse / 2, (max(gaps), parse)
