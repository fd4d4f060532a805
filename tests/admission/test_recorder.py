"""Recording decisions: group commit in a thread or a child process, each decision committed
before its answer, failures confined to the decisions they concern."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.admission import recorder_process
from app.admission.models import Decision
from app.admission.record import (
    DecisionMessage,
    DecisionRecord,
    PreparedDecision,
    canonical_bytes,
    canonical_sha256,
    decode,
    encode,
    explanation_json,
    prepare_message,
    to_message,
    write_prepared,
)
from app.admission.recorder import DecisionRecorder
from app.admission.router import parse_review
from app.admission.service import Admission, extract_images, prepare
from app.audit.models import AuditEvent
from app.db import Database
from app.main import create_app
from app.settings import Settings
from tests.admission.helpers import APP, review, with_images
from tests.admission.test_validate import validate
from tests.conftest import make_app


def make_records(app: FastAPI, count: int) -> list[DecisionRecord]:
    state = app.state
    admission = Admission(db=state.db, policies=state.policies, cache=state.admission_cache)
    records = []
    for _ in range(count):
        body = json.dumps(review(with_images("pod", [APP]))).encode()
        parsed = parse_review(body)
        records.append(
            prepare(admission, parsed, body, extract_images(parsed.request), "test").record
        )
    return records


def stored_ids(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Decision.id)))


def decision_events(db: Database) -> list[str]:
    with db.session() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.type == "admission.decision"))
        return [row.payload["decision"] for row in rows]


# -- in a thread ---------------------------------------------------------------------------------


def test_thread_recorder_confines_a_failure_to_its_decision(
    client: TestClient, app: FastAPI, db: Database
) -> None:
    records = make_records(app, 4)
    bad = records[1].id

    def save(database: Database, prepared: list[PreparedDecision]) -> None:
        if any(p.id == bad for p in prepared):
            raise RuntimeError("refused")
        write_prepared(database, prepared)

    recorder = DecisionRecorder(db, save=save)

    async def main() -> list[Any]:
        try:
            return await asyncio.gather(
                *(recorder.record(r) for r in records), return_exceptions=True
            )
        finally:
            await recorder.aclose()

    outcomes = asyncio.run(main())
    assert [isinstance(o, RuntimeError) for o in outcomes] == [False, True, False, False]
    assert stored_ids(db) == {r.id for r in records} - {bad}
    assert sorted(decision_events(db)) == sorted(r.id for r in records if r.id != bad)


# -- in a child process: the child's side ---------------------------------------------------------


def _send(sock: socket.socket, message: DecisionMessage) -> None:
    data = encode(message)
    sock.sendall(struct.pack(">I", len(data)) + data)


def _frames(sock: socket.socket) -> list[dict[str, Any]]:
    data = b""
    while chunk := sock.recv(1 << 16):
        data += chunk
    frames = []
    while data:
        (size,) = struct.unpack(">I", data[:4])
        frames.append(orjson.loads(data[4 : 4 + size]))
        data = data[4 + size :]
    return frames


def test_the_child_records_every_message_and_confines_a_bad_one(
    client: TestClient, app: FastAPI, db: Database
) -> None:
    records = make_records(app, 3)
    messages = [to_message(r) for r in records]
    # Not a decision the recorder can write: a review without its request.
    messages[1] = dataclasses.replace(messages[1], review=b'{"kind": "AdmissionReview"}')
    parent, child = socket.socketpair()

    def child_process() -> None:  # its end closes when it exits, as a process's would
        with child:
            recorder_process.serve(child, db)

    worker = threading.Thread(target=child_process)
    worker.start()
    for message in messages:
        _send(parent, message)
    parent.shutdown(socket.SHUT_WR)  # EOF: the child writes what it has, then returns
    frames = _frames(parent)
    worker.join(10)
    assert frames[0] == {"ready": True}
    acked = [i for frame in frames[1:] for i in frame["ok"]]
    failed = [f for frame in frames[1:] for f in frame["failed"]]
    assert sorted(acked) == sorted([records[0].id, records[2].id])
    assert [f[0] for f in failed] == [records[1].id] and "request" in failed[0][1]
    assert stored_ids(db) == {records[0].id, records[2].id}


# -- in a child process: through the server --------------------------------------------------------


@pytest.fixture
def process_app(db_url: str, policy_dir: Path) -> FastAPI:
    return make_app(db_url, policy_dir, admission_recorder="process")


def test_a_decision_is_committed_before_its_answer_leaves(
    process_app: FastAPI, db: Database, attest, webhook: dict
) -> None:
    with TestClient(process_app) as client:
        assert process_app.state.decision_recorder.alive  # started with the server
        for _ in range(5):
            answer = validate(client, review(with_images("pod", [APP])), webhook)
            assert answer["auditAnnotations"]["decision-id"] in stored_ids(db)
    assert not process_app.state.decision_recorder.alive  # stopped with it


def test_a_lost_recorder_refuses_what_it_lost_and_is_restarted(
    process_app: FastAPI, db: Database, attest, webhook: dict
) -> None:
    attest(APP)
    with TestClient(process_app) as client:
        recorder = process_app.state.decision_recorder
        assert validate(client, review(with_images("pod", [APP])), webhook)["allowed"] is True
        pid = recorder._process.pid
        os.kill(pid, signal.SIGSTOP)  # the decision below reaches it, and is never written
        answers: list[dict[str, Any]] = []
        body = review(with_images("pod", [APP]))
        waiting = threading.Thread(target=lambda: answers.append(validate(client, body, webhook)))
        waiting.start()
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        waiting.join(10)
        assert answers[0]["allowed"] is False
        assert "decision not recorded" in answers[0]["status"]["message"]
        assert "decision-id" not in answers[0]["auditAnnotations"]
        # The next decision starts a new recorder and is recorded.
        answer = validate(client, review(with_images("pod", [APP])), webhook)
        assert answer["allowed"] is True
        assert answer["auditAnnotations"]["decision-id"] in stored_ids(db)
        assert recorder.restarts == 1


def test_an_in_memory_database_is_recorded_in_a_thread(tmp_path: Path) -> None:
    settings = Settings(
        database_url="sqlite:///:memory:",
        policy_dir=tmp_path,
        audit_key_file=tmp_path / "audit-key.pem",
        admission_recorder="process",
    )
    assert isinstance(create_app(settings).state.decision_recorder, DecisionRecorder)


# -- the message ----------------------------------------------------------------------------------


def test_the_message_round_trips_and_its_explanation_is_the_canonical_json(
    client: TestClient, app: FastAPI
) -> None:
    for record in make_records(app, 2):  # the second one reuses the cached image results
        message = to_message(record)
        assert decode(encode(message)) == message
        plain = {**record.verdict.explanation(), "response": record.response}
        assert message.explanation == canonical_bytes(plain)
        assert message.review == record.review


def test_an_explanation_orjson_cannot_write_falls_back_to_the_same_canonical_form(
    client: TestClient, app: FastAPI
) -> None:
    record = make_records(app, 1)[0]
    assert record.verdict.evaluation is not None
    image = record.verdict.evaluation.images[0]
    policy = image.policies[0]
    huge = dataclasses.replace(policy.requirements[0], details={"n": 2**70})  # beyond 64 bits
    image = dataclasses.replace(
        image, policies=(dataclasses.replace(policy, requirements=(huge,)),)
    )
    evaluation = dataclasses.replace(record.verdict.evaluation, images=(image,))
    record = dataclasses.replace(
        record, verdict=dataclasses.replace(record.verdict, evaluation=evaluation)
    )
    explanation = explanation_json(record)
    assert b'"n":1180591620717411303424' in explanation
    plain = {**record.verdict.explanation(), "response": record.response}
    assert explanation == canonical_bytes(plain)
    assert prepare_message(to_message(record)).event.payload["explanation_sha256"] == (
        canonical_sha256(plain)
    )


def test_the_child_checkpoints_sqlite_off_the_commit_path(tmp_path: Path) -> None:
    from app.migrate import upgrade

    url = f"sqlite:///{tmp_path}/checkpoint.db"
    upgrade(url)
    database = Database(url)
    try:
        with recorder_process._checkpointing(database):
            with database.engine.connect() as connection:
                # The recorder's own connections never checkpoint inside a commit...
                assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
            with database.session() as session:
                session.connection().exec_driver_sql("CREATE TABLE filler (x BLOB)")
            for _ in range(20):
                with database.session() as session:
                    session.connection().exec_driver_sql(
                        "INSERT INTO filler VALUES (randomblob(100000))"
                    )
            # ...the checkpoint thread does, in the background: the rows reach the database
            # file itself, which nothing else here would write.
            deadline = time.monotonic() + 5
            while os.path.getsize(tmp_path / "checkpoint.db") < 2_000_000:
                assert time.monotonic() < deadline, "no checkpoint within 5 s"
                time.sleep(0.05)
    finally:
        database.dispose()
