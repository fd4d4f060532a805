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
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_token_lifecycle(db_url: str, db: Database) -> None:
    created = run_cli(
        db_url, "token", "create", "--name", "ci", "--scope", "upload", "--scope", "read"
    )
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


# The first hour: any directory, --version, help, output -----------------------------------------


def run_in(cwd, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANT_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_server_commands_elsewhere_say_what_to_do_and_create_nothing(tmp_path) -> None:
    for args in (
        ["token", "list"],
        ["token", "create", "--name", "x", "--scope", "read"],
        ["token", "revoke", "x"],
    ):
        result = run_in(tmp_path, *args)
        assert result.returncode == 2, result.stderr
        assert "run `provenant migrate` or set PROVENANT_DATABASE_URL" in result.stderr
        assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no ./var/provenant.db left behind


def test_an_empty_database_is_named_not_traced(tmp_path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    result = run_in(tmp_path, "token", "list", env={"PROVENANT_DATABASE_URL": "sqlite:///empty.db"})
    assert result.returncode == 2
    assert "has no Provenant schema: run `provenant migrate`" in result.stderr


def test_version(tmp_path) -> None:
    from app import __version__

    result = run_in(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout == f"provenant {__version__}\n"


def _commands(group=None, prefix=()):
    import typer.main

    from app.cli import cli

    command = group or typer.main.get_command(cli)
    for name, sub in getattr(command, "commands", {}).items():
        if getattr(sub, "hidden", False):
            continue
        yield (*prefix, name)
        yield from _commands(sub, (*prefix, name))


def test_help_shows_no_python_types() -> None:
    from typer.testing import CliRunner

    from app.cli import cli

    runner = CliRunner()
    commands = list(_commands())
    assert ("upload",) in commands and ("token", "list") in commands
    for command in [(), *commands]:
        result = runner.invoke(cli, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (command, result.output)
        for python_type in ("<list", "<str>", "<int", "<path>", "<bool>", "<datetime>", "{"):
            assert python_type not in result.output, (command, result.output)


def test_token_list_has_a_header_and_json(db_url: str) -> None:
    assert run_cli(db_url, "token", "create", "--name", "ci", "--scope", "read").returncode == 0
    plain = run_cli(db_url, "token", "list")
    assert plain.stdout.splitlines()[0] == "name\tscopes\tcreated\tstate"
    as_json = run_cli(db_url, "token", "list", "--output", "json")
    import json

    [row] = json.loads(as_json.stdout)
    assert row["name"] == "ci" and row["scopes"] == ["read"] and row["state"] == "active"
