"""Revision 0003 turns an existing event table into a verifiable log, on both databases."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rfc8785
from alembic import command
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from app.audit.service import AuditLog
from app.db import Database, normalize_url
from app.migrate import alembic_config, upgrade
from tests.audit.conftest import ORIGIN, append
from tests.conftest import PG_ADMIN_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    request.getfixturevalue("pg_server_url")  # skips (or fails under CI) without PostgreSQL
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"provenant_mig_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_existing_events_are_renumbered_hashed_and_verify(empty_url: str) -> None:
    upgrade(empty_url, "0002")
    engine = create_engine(normalize_url(empty_url))
    with engine.begin() as conn:
        cast = "CAST(:p AS JSONB)" if conn.dialect.name == "postgresql" else ":p"
        # Old rows: 1-based, with the gaps a PostgreSQL sequence leaves after rollbacks.
        for n, seq in enumerate([1, 2, 5, 9, 10]):
            payload = {"n": n, "name": "ci-\u00e9"}
            conn.execute(
                text(
                    "INSERT INTO audit_events (seq, created_at, type, actor, payload, "
                    f"payload_hash) VALUES (:s, :t, 'token.created', 'cli', {cast}, :h)"
                ),
                {
                    "s": seq,
                    "t": datetime(2026, 1, 1, 12, 0, n, 1234, tzinfo=UTC),
                    "p": json.dumps(payload),
                    "h": hashlib.sha256(rfc8785.dumps(payload)).hexdigest(),
                },
            )
    engine.dispose()
    upgrade(empty_url)
    db = Database(empty_url)
    try:
        log = AuditLog(db, Ed25519PrivateKey.generate(), ORIGIN)
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT seq, payload FROM audit_events ORDER BY seq")).all()
        payloads = [r[1] if isinstance(r[1], dict) else json.loads(r[1]) for r in rows]
        assert [r[0] for r in rows] == [0, 1, 2, 3, 4]
        assert [p["n"] for p in payloads] == [0, 1, 2, 3, 4]  # old order kept
        assert log.verify().ok
        assert append(db, 2) == [5, 6]  # appends continue after the migrated events
        assert log.verify().ok
    finally:
        db.dispose()
    command.downgrade(alembic_config(empty_url), "0002")
    upgrade(empty_url)
