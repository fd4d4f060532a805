"""Signed-note checkpoints and the signing key file."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sigstore._internal.rekor.checkpoint import SignedCheckpoint as SigstoreCheckpoint

from app.audit import keys
from app.audit.checkpoint import Checkpoint, CheckpointError, parse_note, verify_note

NAME = "example.com/log"
KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"checkpoint test").digest())
ROOT = hashlib.sha256(b"root").digest()


def signed(size: int = 42, root: bytes = ROOT, key: Ed25519PrivateKey = KEY) -> str:
    return Checkpoint(NAME, size, root).sign(NAME, key)


def test_note_layout_follows_the_checkpoint_format() -> None:
    note = signed()
    body, _, sig_block = note.partition("\n\n")
    assert body == f"{NAME}\n42\n{base64.b64encode(ROOT).decode()}"
    assert sig_block.startswith(f"\u2014 {NAME} ") and sig_block.endswith("\n")
    blob = base64.b64decode(sig_block.split(" ")[2])
    # Key hash per golang.org/x/mod/sumdb/note, computed here independently.
    raw = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert blob[:4] == hashlib.sha256(NAME.encode() + b"\n\x01" + raw).digest()[:4]
    KEY.public_key().verify(blob[4:], (body + "\n").encode())


def test_sigstore_parses_our_checkpoints() -> None:
    parsed = SigstoreCheckpoint.from_text(signed(size=7))
    assert parsed.checkpoint.origin == NAME
    assert parsed.checkpoint.log_size == 7
    assert parsed.checkpoint.log_hash == ROOT.hex()
    assert parsed.signed_note.signatures[0].name == NAME


def test_signatures_are_deterministic() -> None:
    # Several processes signing the same tree size must agree on one note.
    assert signed() == signed()


def test_verify_accepts_the_real_note() -> None:
    checkpoint = verify_note(signed(), KEY.public_key())
    assert (checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash) == (NAME, 42, ROOT)


def _forgeries() -> dict[str, str]:
    real = signed()
    other_key = Ed25519PrivateKey.generate()
    sig_line = real.split("\n\n")[1]
    blob = base64.b64decode(sig_line.split(" ")[2])
    flipped = base64.b64encode(blob[:4] + bytes([blob[4] ^ 1]) + blob[5:]).decode()
    return {
        "bigger size": real.replace("\n42\n", "\n43\n", 1),
        "other root": real.replace(
            base64.b64encode(ROOT).decode(), base64.b64encode(bytes(32)).decode()
        ),
        "other key": signed(key=other_key),
        "other key under our key hash": Checkpoint(NAME, 42, ROOT).body()
        + "\n"
        + sig_line.replace(
            sig_line.split(" ")[2],
            base64.b64encode(
                blob[:4] + other_key.sign(Checkpoint(NAME, 42, ROOT).body().encode())
            ).decode(),
        ),
        "flipped signature bit": real.replace(sig_line.split(" ")[2], flipped),
        "no signature": Checkpoint(NAME, 42, ROOT).body() + "\n",
        "other name": real.replace(f"\u2014 {NAME} ", "\u2014 someone.else ", 1),
        "extra line in body": real.replace("\n\n", "\nextra\n\n", 1),
        "truncated": real[:-2],
    }


@pytest.mark.parametrize("kind", list(_forgeries()))
def test_forged_checkpoints_fail(kind: str) -> None:
    with pytest.raises(CheckpointError):
        verify_note(_forgeries()[kind], KEY.public_key())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "origin\n1\n\n\u2014 origin AAAA\n",
        "origin\n01\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 n AAAAAAA=\n",
        "origin\n1\nnot base64!\n\n\u2014 n AAAAAAA=\n",
        "origin\n1\n" + base64.b64encode(b"short").decode() + "\n\n\u2014 n AAAAAAA=\n",
        "origin\n1\n" + base64.b64encode(ROOT).decode() + "\n\n- n AAAAAAA=\n",
    ],
)
def test_malformed_notes_are_rejected(text: str) -> None:
    with pytest.raises(CheckpointError):
        parse_note(text)


def test_verifier_key_string_round_trips() -> None:
    vkey = keys.verifier_key(NAME, KEY.public_key())
    name, public = keys.parse_verifier_key(vkey)
    assert name == NAME
    assert keys.load_public_key(vkey.encode()).public_bytes_raw() == public.public_bytes_raw()
    with pytest.raises(keys.AuditKeyError):
        keys.parse_verifier_key(vkey.replace(NAME, "other.name"))


def test_key_is_generated_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "audit-key.pem"
    first = keys.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = keys.load_or_create(path)
    assert first.public_key().public_bytes_raw() == second.public_key().public_bytes_raw()
    assert [p.name for p in path.parent.iterdir()] == ["audit-key.pem"]


def test_processes_starting_together_share_one_key(tmp_path: Path) -> None:
    path = tmp_path / "race" / "audit-key.pem"
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        results.append(keys.load_or_create(path).public_key().public_bytes_raw())

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1


def test_configured_non_ed25519_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(keys.AuditKeyError, match="Ed25519"):
        keys.load_or_create(path)
