"""Audit fixtures: an app with the audit router and a private signing key per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.audit.router import router as audit_router
from app.audit.service import AuditLog, record_event
from app.db import Database
from app.settings import Settings

ORIGIN = "test.provenant/audit"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "audit-key.pem"


@pytest.fixture
def settings(db_url: str, policy_dir: Path, key_file: Path) -> Settings:
    return Settings(
        database_url=db_url,
        policy_dir=policy_dir,
        audit_key_file=key_file,
        audit_origin=ORIGIN,
        audit_checkpoint_interval=0,
        admission_recorder="thread",  # see tests/conftest.py
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The real app; the audit router is added here until app.main includes it."""
    from app.main import create_app

    application = create_app(settings)
    if not any(getattr(r, "path", "").startswith("/v1/audit") for r in application.routes):
        application.include_router(audit_router)
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def log(db: Database) -> AuditLog:
    """An AuditLog with a throwaway key, for tests that need no HTTP."""
    return AuditLog(db, Ed25519PrivateKey.generate(), ORIGIN)


def append(db: Database, count: int, type_: str = "test.event", **extra: Any) -> list[int]:
    """Record ``count`` events, one transaction each; returns their sequence numbers."""
    seqs = []
    for i in range(count):
        with db.session() as session:
            event = record_event(session, type_, "tester", {"i": i, **extra})
            session.flush()
            seqs.append(event.seq)
    return seqs


def append_batch(db: Database, count: int, type_: str = "test.event") -> None:
    """Many events in one transaction: fast setup for large trees."""
    with db.session() as session:
        for i in range(count):
            record_event(session, type_, "tester", {"i": i})
