"""Rewriting history directly in the database (raw SQL) is caught, naming the first bad event."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.audit import leaf
from app.audit.checkpoint import Checkpoint
from app.audit.service import AuditLog
from app.db import Database
from tests.audit.conftest import ORIGIN, append, append_batch
from tests.helpers import TokenFactory

SIZE = 50  # events 0..49, signed checkpoints at 10, 20, 30 and 40


@pytest.fixture
def history(db: Database, log: AuditLog) -> AuditLog:
    for _ in range(4):
        append(db, 10)
        log.make_checkpoint()
    append(db, SIZE - 40)
    assert log.verify().ok
    return log


def sql(db: Database, statement: str, **params: object) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def row(conn: Connection, seq: int) -> dict:
    found = conn.execute(text("SELECT * FROM audit_events WHERE seq = :s"), {"s": seq})
    return dict(found.mappings().one())


def set_payload(conn: Connection, seq: int, payload: dict, *, rehash: bool) -> None:
    """What an attacker with database access does; with ``rehash`` also every derived hash."""
    cast = "CAST(:p AS JSONB)" if conn.dialect.name == "postgresql" else ":p"
    conn.execute(
        text(f"UPDATE audit_events SET payload = {cast} WHERE seq = :s"),
        {"p": json.dumps(payload), "s": seq},
    )
    if rehash:
        rehash_row(conn, seq)


def rehash_row(conn: Connection, seq: int) -> None:
    current = row(conn, seq)
    payload = current["payload"]
    if isinstance(payload, str):
        payload = json.loads(payload)
    created = current["created_at"]
    if isinstance(created, str):  # raw SQLite hands back the stored text
        created = datetime.fromisoformat(created)
    p_hash = leaf.payload_hash(payload)
    l_hash = leaf.leaf_hash(
        seq, leaf.format_time(created), current["type"], current["actor"], p_hash
    )
    conn.execute(
        text("UPDATE audit_events SET payload_hash = :p, leaf_hash = :l WHERE seq = :s"),
        {"p": p_hash, "l": l_hash.hex(), "s": seq},
    )


def move(conn: Connection, old: int, new: int) -> None:
    conn.execute(text("UPDATE audit_events SET seq = :n WHERE seq = :o"), {"n": new, "o": old})


def insert_event(conn: Connection, seq: int, *, consistent: bool) -> None:
    created = datetime.now(UTC)
    payload = {"forged": True}
    p_hash = leaf.payload_hash(payload)
    l_hash = leaf.leaf_hash(seq, leaf.format_time(created), "test.event", "mallory", p_hash)
    cast = "CAST(:p AS JSONB)" if conn.dialect.name == "postgresql" else ":p"
    conn.execute(
        text(
            "INSERT INTO audit_events (seq, created_at, type, actor, payload, payload_hash, "
            f"leaf_hash) VALUES (:s, :t, 'test.event', 'mallory', {cast}, :ph, :lh)"
        ),
        {
            "s": seq,
            "t": created,
            "p": json.dumps(payload),
            "ph": p_hash,
            "lh": l_hash.hex() if consistent else "00" * 32,
        },
    )


# Each tampering: what it does, the first bad seq verify must name, a word its reason contains.
def edit_payload(conn: Connection) -> None:
    set_payload(conn, 7, {"i": 999}, rehash=False)


def edit_actor(conn: Connection) -> None:
    conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 33"))


def edit_type_after_last_checkpoint(conn: Connection) -> None:
    conn.execute(text("UPDATE audit_events SET type = 'nothing.happened' WHERE seq = 45"))


def edit_time(conn: Connection) -> None:
    conn.execute(
        text("UPDATE audit_events SET created_at = :t WHERE seq = 3"), {"t": datetime(2020, 1, 1)}
    )


def edit_and_recompute_hashes(conn: Connection) -> None:
    set_payload(conn, 12, {"i": "rewritten"}, rehash=True)


def delete_one(conn: Connection) -> None:
    conn.execute(text("DELETE FROM audit_events WHERE seq = 20"))


def delete_one_and_renumber(conn: Connection) -> None:
    conn.execute(text("DELETE FROM audit_events WHERE seq = 20"))
    for seq in range(21, SIZE):
        move(conn, seq, seq - 1)
    conn.execute(text("UPDATE audit_log_head SET size = size - 1"))


def delete_tail(conn: Connection) -> None:
    conn.execute(text("DELETE FROM audit_events WHERE seq >= 45"))


def truncate_history_behind_a_checkpoint(conn: Connection) -> None:
    conn.execute(text("DELETE FROM audit_events WHERE seq >= 35"))
    conn.execute(text("UPDATE audit_log_head SET size = 35"))


def swap_two(conn: Connection) -> None:
    move(conn, 5, -1)
    move(conn, 9, 5)
    move(conn, -1, 9)


def insert_in_the_middle(conn: Connection) -> None:
    for seq in range(SIZE - 1, 14, -1):
        move(conn, seq, seq + 1)
    insert_event(conn, 15, consistent=True)
    conn.execute(text("UPDATE audit_log_head SET size = size + 1"))


def insert_garbage_at_the_end(conn: Connection) -> None:
    insert_event(conn, SIZE, consistent=False)


def insert_behind_the_heads_back(conn: Connection) -> None:
    insert_event(conn, SIZE, consistent=True)


TAMPERING: dict[str, tuple[Callable[[Connection], None], int, str]] = {
    "edit payload": (edit_payload, 7, "payload"),
    "edit actor": (edit_actor, 33, "leaf hash"),
    "edit type after the last checkpoint": (edit_type_after_last_checkpoint, 45, "leaf hash"),
    "edit time": (edit_time, 3, "leaf hash"),
    "edit and recompute every hash": (edit_and_recompute_hashes, 10, "signed checkpoint"),
    "delete one": (delete_one, 20, "missing"),
    "delete one and renumber": (delete_one_and_renumber, 20, "recorded as event 21"),
    "delete the tail": (delete_tail, 45, "missing"),
    "truncate behind a checkpoint": (truncate_history_behind_a_checkpoint, 35, "removed"),
    "swap two": (swap_two, 5, "recorded as event 9"),
    "insert in the middle": (insert_in_the_middle, 15, "recorded as event 15"),
    "insert garbage at the end": (insert_garbage_at_the_end, SIZE, "leaf hash"),
    "insert behind the head's back": (insert_behind_the_heads_back, SIZE, "beyond the end"),
}


@pytest.mark.parametrize("name", list(TAMPERING))
def test_tampering_is_detected_naming_the_first_bad_seq(
    db: Database, history: AuditLog, name: str
) -> None:
    tamper, first_bad, reason = TAMPERING[name]
    with db.engine.begin() as conn:
        tamper(conn)
    report = history.verify()
    assert report.ok is False
    assert report.first_bad_seq == first_bad, report
    assert reason in (report.reason or ""), report.reason


def test_verify_endpoint_names_the_first_bad_seq(
    client: TestClient, db: Database, tokens: TokenFactory
) -> None:
    read = tokens("read")
    append(db, 30)
    client.get("/v1/audit/checkpoint", params={"fresh": "true"}, headers=read)
    assert client.get("/v1/audit/verify", headers=read).json()["ok"] is True
    with db.engine.begin() as conn:
        set_payload(conn, 17, {"i": "changed"}, rehash=False)
    report = client.get("/v1/audit/verify", headers=read).json()
    assert report["ok"] is False
    assert report["first_bad_seq"] == 17
    assert "payload" in report["reason"]


def test_forged_checkpoint_rows_fail_verification(db: Database, history: AuditLog) -> None:
    other = Ed25519PrivateKey.generate()
    forged = Checkpoint(ORIGIN, SIZE, bytes(32)).sign(ORIGIN, other)
    sql(
        db,
        "INSERT INTO audit_checkpoints (tree_size, root_hash, note, created_at) "
        "VALUES (:n, :r, :note, :t)",
        n=SIZE,
        r="00" * 32,
        note=forged,
        t=datetime.now(UTC),
    )
    sql(
        db,
        "UPDATE audit_checkpoints SET note = replace(note, '\n20\n', '\n21\n') "
        "WHERE tree_size = 20",
    )
    report = history.verify()
    assert report.ok is False
    assert report.first_bad_seq is None  # the events are fine; the checkpoints are not
    assert {bad["tree_size"] for bad in report.bad_checkpoints} == {20, SIZE}


def test_altered_subtree_cache_is_reported(db: Database, log: AuditLog) -> None:
    append_batch(db, 300)
    log.make_checkpoint()  # signs 300 and caches the subtree of events 0..255
    sql(db, "UPDATE audit_merkle_nodes SET hash = :h WHERE level = 8 AND idx = 0", h="11" * 32)
    report = log.verify()
    assert report.ok is False
    assert report.first_bad_seq is None
    assert report.cache_problems and "0..255" in report.cache_problems[0]


def test_rewrite_under_the_cache_is_located_to_the_cached_subtree(
    db: Database, log: AuditLog
) -> None:
    append_batch(db, 600)
    log.make_checkpoint()  # caches 0..255 and 256..511, signs 600
    with db.engine.begin() as conn:
        set_payload(conn, 300, {"i": "rewritten"}, rehash=True)
    report = log.verify()
    assert report.ok is False
    assert report.first_bad_seq == 256
    assert "256..511" in (report.reason or "")


def test_proofs_over_a_damaged_log_say_so(
    client: TestClient, db: Database, tokens: TokenFactory
) -> None:
    read = tokens("read")
    append(db, 10)
    sql(db, "DELETE FROM audit_events WHERE seq = 4")
    response = client.get("/v1/audit/proof/inclusion", params={"seq": 2}, headers=read)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "audit_log_damaged" and "event 4 is missing" in error["message"]
    assert client.get("/v1/audit/verify", headers=read).json()["first_bad_seq"] == 4
