"""`provenant audit verify`: exports and live servers, checked with only the public key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.audit import keys
from app.audit.checkpoint import Checkpoint
from app.audit.cli import audit_cli
from app.db import Database
from app.settings import get_settings
from tests.audit.conftest import ORIGIN, append
from tests.audit.test_tamper import set_payload
from tests.helpers import TokenFactory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def read(tokens: TokenFactory) -> dict[str, str]:
    return tokens("read")


@pytest.fixture
def pubkey(client: TestClient, read: dict[str, str], tmp_path: Path) -> Path:
    path = tmp_path / "audit.pub"
    response = client.get("/v1/audit/public-key", params={"format": "pem"}, headers=read)
    path.write_bytes(response.content)
    return path


def export(client: TestClient, headers: dict[str, str], path: Path) -> list[str]:
    response = client.get("/v1/audit/export", headers=headers)
    assert response.status_code == 200
    path.write_text(response.text, encoding="utf-8")
    return response.text.splitlines()


def cli(*args: str | Path) -> Any:
    return CliRunner().invoke(audit_cli, ["verify", *map(str, args)])


def test_export_round_trip(
    client: TestClient, db: Database, read: dict[str, str], pubkey: Path, tmp_path: Path
) -> None:
    append(db, 25)
    file = tmp_path / "audit.jsonl"
    lines = export(client, read, file)
    result = cli(file, "--public-key", pubkey)
    assert result.exit_code == 0, result.output
    assert f"OK: {len(lines) - 1} events" in result.output
    # The Go note verifier key works as well as the PEM.
    vkey = tmp_path / "audit.vkey"
    vkey.write_text(client.get("/v1/audit/public-key", headers=read).json()["verifier_key"])
    assert cli(file, "--public-key", vkey).exit_code == 0


def test_real_process_exit_codes(
    client: TestClient, db: Database, read: dict[str, str], pubkey: Path, tmp_path: Path
) -> None:
    append(db, 5)
    file = tmp_path / "audit.jsonl"
    lines = export(client, read, file)
    command = [
        sys.executable,
        "-m",
        "app.audit.cli",
        "verify",
        str(file),
        "--public-key",
        str(pubkey),
    ]
    ok = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    event = json.loads(lines[3])
    event["actor"] = "mallory"
    lines[3] = json.dumps(event)
    file.write_text("\n".join(lines) + "\n")
    bad = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert f"first bad seq {event['seq']}" in bad.stderr


def _edit(lines: list[str], index: int, **changes: Any) -> list[str]:
    event = json.loads(lines[index])
    event.update(changes)
    return [*lines[:index], json.dumps(event), *lines[index + 1 :]]


def _resign(lines: list[str], size: int) -> list[str]:
    other = Ed25519PrivateKey.generate()
    note = Checkpoint(ORIGIN, size, bytes(32)).sign(ORIGIN, other)
    return [*lines[:-1], json.dumps({"checkpoint": note, "tree_size": size})]


EXPORT_TAMPERING = {
    "payload": (lambda ls: _edit(ls, 4, payload={"i": "x"}), "first bad seq 4"),
    "leaf hash": (lambda ls: _edit(ls, 6, leaf_hash="00" * 32), "first bad seq 6"),
    "deleted line": (lambda ls: ls[:8] + ls[9:], "first bad seq 8"),
    "swapped lines": (lambda ls: [*ls[:2], ls[5], *ls[3:5], ls[2], *ls[6:]], "first bad seq 2"),
    "duplicated line": (lambda ls: [*ls[:3], ls[2], *ls[3:]], "first bad seq 3"),
    "cut short": (lambda ls: ls[:-1], "cut short"),
    "dropped tail": (lambda ls: [*ls[:-3], ls[-1]], "missing"),
    "forged checkpoint": (lambda ls: _resign(ls, len(ls) - 1), "checkpoint"),
    "not json": (lambda ls: [*ls[:1], "{nope", *ls[2:]], "not JSON"),
    "missing field": (lambda ls: [*ls[:1], json.dumps({"seq": 1}), *ls[2:]], "first bad seq 1"),
}


@pytest.mark.parametrize("name", list(EXPORT_TAMPERING))
def test_tampered_exports_fail_naming_the_first_bad_seq(
    client: TestClient, db: Database, read: dict[str, str], pubkey: Path, tmp_path: Path, name: str
) -> None:
    append(db, 15)
    file = tmp_path / "audit.jsonl"
    lines = export(client, read, file)
    change, message = EXPORT_TAMPERING[name]
    file.write_text("\n".join(change(lines)) + "\n")
    result = cli(file, "--public-key", pubkey)
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and message in result.output, result.output


def test_binary_garbage_is_not_an_export(pubkey: Path, tmp_path: Path) -> None:
    file = tmp_path / "garbage.jsonl"
    file.write_bytes(b"\xff\xfe\x00garbage")
    result = cli(file, "--public-key", pubkey)
    assert result.exit_code == 1
    assert "not UTF-8" in result.output


def test_wrong_public_key_fails(
    client: TestClient, db: Database, read: dict[str, str], tmp_path: Path
) -> None:
    append(db, 3)
    file = tmp_path / "audit.jsonl"
    export(client, read, file)
    other = tmp_path / "other.pub"
    other.write_text(keys.public_pem(Ed25519PrivateKey.generate().public_key()))
    result = cli(file, "--public-key", other)
    assert result.exit_code == 1
    assert "no signature" in result.output


def test_earlier_checkpoint_must_be_extended(
    client: TestClient, db: Database, read: dict[str, str], pubkey: Path, tmp_path: Path
) -> None:
    append(db, 10)
    saved = tmp_path / "checkpoint.txt"
    first = tmp_path / "first.jsonl"
    export(client, read, first)
    assert cli(first, "--public-key", pubkey, "--save-checkpoint", saved).exit_code == 0
    append(db, 7)
    later = tmp_path / "later.jsonl"
    export(client, read, later)
    result = cli(later, "--public-key", pubkey, "--checkpoint", saved)
    assert result.exit_code == 0, result.output
    assert "extends the earlier checkpoint" in result.output
    # A checkpoint saved as GET /v1/audit/checkpoint's JSON works too.
    as_json = tmp_path / "checkpoint.json"
    as_json.write_text(client.get("/v1/audit/checkpoint", headers=read).text)
    assert cli(later, "--public-key", pubkey, "--checkpoint", as_json).exit_code == 0

    # History rewritten with every hash recomputed, then re-signed by the (compromised?) server:
    # the new export is self-consistent, but no longer extends what we saw before.
    with db.engine.begin() as conn:
        from tests.audit.test_tamper import rehash_row

        set_payload(conn, 4, {"i": "rewritten"}, rehash=False)
        rehash_row(conn, 4)
    rewritten = tmp_path / "rewritten.jsonl"
    export(client, read, rewritten)  # same size: the server serves what it signed before
    assert "first bad seq" in cli(rewritten, "--public-key", pubkey).output
    append(db, 1)  # a new size: the server signs the rewritten tree
    export(client, read, rewritten)
    assert cli(rewritten, "--public-key", pubkey).exit_code == 0
    result = cli(rewritten, "--public-key", pubkey, "--checkpoint", saved)
    assert result.exit_code == 1
    assert "first bad seq 0" in result.output and "signed checkpoint" in result.output


def test_usage_errors_exit_2(pubkey: Path, tmp_path: Path) -> None:
    file = tmp_path / "x.jsonl"
    file.write_text("")
    assert cli("--public-key", pubkey).exit_code == 2
    assert cli(file).exit_code == 2
    assert cli(file, "--server", "http://x", "--public-key", pubkey).exit_code == 2
    assert cli(file, "--public-key", file).exit_code == 2  # not a key


@pytest.fixture
def live(app: FastAPI, monkeypatch: pytest.MonkeyPatch, tokens: TokenFactory) -> None:
    """`--server` reaches the in-process app; PROVENANT_TOKEN is a read token."""
    token = tokens("read")["Authorization"].split(" ", 1)[1]
    monkeypatch.setenv("PROVENANT_TOKEN", token)
    get_settings.cache_clear()

    def client_for(**kwargs: Any) -> TestClient:
        return TestClient(app, base_url=kwargs["base_url"], headers=kwargs.get("headers"))

    monkeypatch.setattr(httpx, "Client", client_for)
    yield
    get_settings.cache_clear()


def test_live_server(
    client: TestClient,
    db: Database,
    read: dict[str, str],
    pubkey: Path,
    tmp_path: Path,
    live: None,
) -> None:
    append(db, 30)
    saved = tmp_path / "checkpoint.txt"
    saved.write_text(
        client.get("/v1/audit/checkpoint", params={"format": "note"}, headers=read).text
    )
    append(db, 12)
    result = cli(
        "--server",
        "http://provenant.test",
        "--public-key",
        pubkey,
        "--checkpoint",
        saved,
        "--proofs",
        "-1",
    )
    assert result.exit_code == 0, result.output
    assert "inclusion proofs checked" in result.output
    assert "consistency proof" in result.output

    with db.engine.begin() as conn:
        set_payload(conn, 9, {"i": "changed"}, rehash=False)
    result = cli("--server", "http://provenant.test", "--public-key", pubkey)
    assert result.exit_code == 1
    assert "first bad seq 9" in result.output


def test_live_server_needs_a_token(pubkey: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVENANT_TOKEN", raising=False)
    get_settings.cache_clear()
    try:
        result = cli("--server", "http://127.0.0.1:9", "--public-key", pubkey)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "PROVENANT_TOKEN" in result.output


def test_unreachable_server_exits_2(pubkey: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANT_TOKEN", "x")
    get_settings.cache_clear()
    try:
        result = cli("--server", "http://127.0.0.1:9", "--public-key", pubkey)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert os.environ.get("PROVENANT_TOKEN") == "x"
