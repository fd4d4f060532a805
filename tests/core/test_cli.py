"""The CLI as an operator runs it: a real subprocess against a real database."""

from __future__ import annotations

import os
import subprocess
import sys

from app.auth.service import authenticate
from app.db import Database


def run_cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROVENANT_DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
        timeout=60,
    )


def test_token_lifecycle(db_url: str, db: Database) -> None:
    created = run_cli(db_url, "token", "create", "--name", "ci", "--scope", "upload",
                      "--scope", "read")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n"  # the token, alone, on stdout
    with db.session() as s:
        principal = authenticate(s, token)
    assert principal is not None and principal.scopes == {"upload", "read"}

    listed = run_cli(db_url, "token", "list")
    assert listed.returncode == 0
    assert "ci\tread,upload" in listed.stdout
    assert token not in listed.stdout

    revoked = run_cli(db_url, "token", "revoke", "ci")
    assert revoked.returncode == 0
    with db.session() as s:
        assert authenticate(s, token) is None


def test_token_errors_exit_non_zero(db_url: str) -> None:
    bad = run_cli(db_url, "token", "create", "--name", "x", "--scope", "root")
    assert bad.returncode == 2
    assert "unknown scope" in bad.stderr
    assert bad.stdout == ""
    missing = run_cli(db_url, "token", "revoke", "nobody")
    assert missing.returncode == 2
    assert "no token" in missing.stderr


def test_migrate_on_fresh_sqlite(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/sub/dir/fresh.db"
    result = run_cli(url, "migrate")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sub/dir/fresh.db").exists()
