"""Shared fixtures: every database-touching test runs on SQLite and on PostgreSQL.

PostgreSQL comes from 127.0.0.1:5432 (trust auth, database ``test``, user ``postgres``), or
``PROVENANT_TEST_PG_URL``. Each test session gets its own database, migrated once, emptied
between tests and dropped at the end. With ``CI=true`` PostgreSQL is required: an unreachable
server fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.db import Database
from app.migrate import upgrade
from app.models import Base
from tests.helpers import TokenFactory
from tests.sigstore_stack import SigstoreTestStack

PG_ADMIN_URL = os.environ.get(
    "PROVENANT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ["sqlite", "postgresql"]
# Real artifacts from other projects (../shared/testdata, see its README). Tests that read them
# skip where it is absent, except under CI=true, where it is required like PostgreSQL: a CI run
# that silently skipped the upstream suites would prove far less than it claims.
SHARED_TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and not SHARED_TESTDATA.is_dir():
        raise pytest.UsageError(
            f"shared test data not found at {SHARED_TESTDATA} (required because CI=true)"
        )
    # Apps built in tests must not create ./var/audit-key.pem in the checkout.
    os.environ.setdefault(
        "PROVENANT_AUDIT_KEY_FILE", str(Path(tempfile.mkdtemp()) / "audit-key.pem")
    )
    # Nor ./var/vsa-keys (made on the first VSA an app issues).
    os.environ.setdefault("PROVENANT_VSA_KEY_DIR", str(Path(tempfile.mkdtemp()) / "vsa-keys"))


def _pg_unavailable(reason: str) -> None:
    message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {reason}"
    if IN_CI:
        pytest.fail(message + " (required because CI=true)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session (one per xdist worker)."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"provenant_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        _pg_unavailable(f"{type(exc).__name__}: {exc}".splitlines()[0])
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test copies it instead of migrating again."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "provenant.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_server_url")
    _empty_tables(url)
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url, pool_size=2)
    yield database
    database.dispose()


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """An empty policy directory; tests that need trust roots or keys write them here."""
    path = tmp_path / "policies"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def stack() -> SigstoreTestStack:
    """The project's private Sigstore stack (test Fulcio, CT log, Rekor, TSA)."""
    return SigstoreTestStack.get()


@pytest.fixture
def tokens(db: Database) -> TokenFactory:
    return TokenFactory(db)


def make_app(
    db_url: str, policy_dir: Path, *, admission_recorder: str = "thread", ingest_workers: int = 0
):
    """An in-process app on the test database and policies. It records admissions and ingests
    uploads in threads by default: a child process per test app would cost a second each. The
    real server processes (tests/server.py) use the defaults (processes)."""
    from app.main import create_app
    from app.settings import Settings

    return create_app(
        Settings(
            database_url=db_url,
            policy_dir=policy_dir,
            audit_key_file=policy_dir.parent / "audit-key.pem",
            admission_recorder=admission_recorder,
            ingest_workers=ingest_workers,
        )
    )


@pytest.fixture
def app(db_url: str, policy_dir: Path):
    return make_app(db_url, policy_dir)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
