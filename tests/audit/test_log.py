"""Appending: sequence numbers without gaps, forks or duplicates; the database-backed tree."""

from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import delete, func, select, text

from app.audit import leaf, merkle
from app.audit.models import AuditEvent, AuditLogHead, AuditMerkleNode
from app.audit.service import AuditLog, record_event
from app.audit.tree import CACHE_LEVEL, TreeReader, tree_size
from app.db import Database
from tests.audit.conftest import append, append_batch


def stored_leaves(db: Database) -> list[bytes]:
    with db.session() as session:
        rows = session.scalars(select(AuditEvent.leaf_hash).order_by(AuditEvent.seq)).all()
    return [bytes.fromhex(h) for h in rows]


def test_sequence_starts_at_zero_and_leaf_hash_is_the_canonical_one(db: Database) -> None:
    assert append(db, 3) == [0, 1, 2]
    with db.session() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        assert tree_size(session) == 3
    for event in events:
        time = leaf.format_time(event.created_at)
        expected = merkle.hash_leaf(
            leaf.leaf_input(event.seq, time, event.type, event.actor, event.payload_hash)
        )
        assert event.leaf_hash == expected.hex()
        assert event.payload_hash == leaf.payload_hash(event.payload)


def test_rolled_back_event_leaves_no_gap(db: Database) -> None:
    append(db, 2)
    with pytest.raises(RuntimeError), db.session() as session:
        record_event(session, "test.event", "tester", {"doomed": True})
        raise RuntimeError("the cause failed, so its event must vanish with it")
    assert append(db, 1) == [2]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 3


def test_several_events_in_one_transaction(db: Database) -> None:
    with db.session() as session:
        seqs = [record_event(session, "t", "a", {"n": n}).seq for n in range(4)]
    assert seqs == [0, 1, 2, 3]


def test_payload_is_normalized_and_must_be_json(db: Database) -> None:
    with db.session() as session:
        event = record_event(session, "t", "a", {"tuple": (1, 2), "nested": {"b": 1, "a": 2}})
    assert event.payload == {"tuple": [1, 2], "nested": {"b": 1, "a": 2}}
    with pytest.raises(ValueError), db.session() as session:
        record_event(session, "t", "a", {"x": float("nan")})
    with pytest.raises(TypeError), db.session() as session:
        record_event(session, "t", "a", ["not", "an", "object"])  # type: ignore[arg-type]
    assert append(db, 1) == [1]


def test_missing_head_row_is_rebuilt_from_the_events(db: Database) -> None:
    append(db, 3)
    with db.session() as session:
        session.execute(delete(AuditLogHead))
    assert append(db, 2) == [3, 4]


def test_concurrent_appenders_in_threads_form_one_log(db: Database, log: AuditLog) -> None:
    threads, per_thread = 6, 20
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            append(db, per_thread, type_="test.concurrent")
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors
    with db.session() as session:
        seqs = session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
        assert tree_size(session) == threads * per_thread
    assert seqs == list(range(threads * per_thread))
    assert log.verify().ok


SIZES = [1, 2, 3, 255, 256, 257, 511, 512, 513, 700, 1024, 1100]


def test_database_tree_matches_in_memory_tree_cold_and_warm(db: Database) -> None:
    append_batch(db, 1100)
    hashes = stored_leaves(db)
    memory = merkle.list_range_hasher(hashes)
    rng = random.Random(7)
    for warm in (False, True):
        for size in SIZES:
            with db.session() as session:
                reader = TreeReader(session)
                assert reader.root(size) == merkle.root_of(hashes[:size])
                for index in {0, size - 1, rng.randrange(size)}:
                    assert reader.inclusion_proof(index, size) == merkle.inclusion_proof(
                        index, size, memory
                    )
                for old in {1, size // 2 or 1, size - 1 or 1, rng.randrange(1, size + 1)}:
                    assert reader.consistency_proof(old, size) == merkle.consistency_proof(
                        old, size, memory
                    )
        with db.session() as session:
            nodes = session.execute(select(AuditMerkleNode)).scalars().all()
            assert nodes, "computing trees above the cache level fills the cache"
            for node in nodes:
                lo, hi = node.idx << node.level, (node.idx + 1) << node.level
                assert node.level >= CACHE_LEVEL
                assert hi <= 1100
                assert bytes.fromhex(node.hash) == merkle.root_of(hashes[lo:hi])
        assert warm or len(nodes) >= 4


def test_cache_is_only_a_cache(db: Database) -> None:
    append_batch(db, 600)
    hashes = stored_leaves(db)
    with db.session() as session:
        TreeReader(session).root(600)
    with db.session() as session:
        session.execute(text("DELETE FROM audit_merkle_nodes"))
    with db.session() as session:
        assert TreeReader(session).root(600) == merkle.root_of(hashes)
        assert TreeReader(session).inclusion_proof(599, 600) == merkle.inclusion_proof(
            599, 600, merkle.list_range_hasher(hashes)
        )
