"""The checkpoint signing key: an Ed25519 key kept in a file, never in the database.

Keeping it out of the database is the point: whoever can rewrite the tables still cannot sign a
checkpoint over the rewritten history. The first server to start generates the key; every other
process (or worker) sharing the path loads that same key.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger("provenant.audit")

# Go's golang.org/x/mod/sumdb/note signature algorithm identifier for Ed25519.
ALG_ED25519 = 1


class AuditKeyError(Exception):
    """The key file cannot be read, written or is not an Ed25519 key."""


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """Load the PEM (PKCS#8) key at ``path``, generating it (mode 0600) when it does not exist."""
    path = Path(path)
    if not path.exists():
        _create(path)
    return load_private_key(path)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("audit key %s is readable by others (mode %o); use 0600", path, mode)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise AuditKeyError(f"cannot load the audit signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"audit signing key {path} must be an Ed25519 key")
    return key


def _create(path: Path) -> None:
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Written to a private temporary file and hard-linked into place: several processes starting
    # together must end up sharing one key, and a reader must never see half a file.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
            log.warning("generated a new audit signing key at %s", path)
        except FileExistsError:
            pass  # another process won the race; its key is the key
    finally:
        tmp.unlink(missing_ok=True)


def public_raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """A PEM public key, or a Go note verifier key ``name+hash+base64``."""
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise AuditKeyError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise AuditKeyError("the audit public key must be an Ed25519 key")
        return key
    return parse_verifier_key(text)[1]


def key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte key hash of the Go note spec: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    return hashlib.sha256(
        name.encode() + b"\n" + bytes([ALG_ED25519]) + public_raw(public_key)
    ).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The Go note verifier key string, usable with golang.org/x/mod/sumdb/note.NewVerifier."""
    encoded = base64.b64encode(bytes([ALG_ED25519]) + public_raw(public_key)).decode()
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, Ed25519PublicKey]:
    try:
        name, hash_hex, encoded = text.split("+", 2)  # base64 may contain "+" too
        raw = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise AuditKeyError("not a PEM public key nor a note verifier key name+hash+key") from exc
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise AuditKeyError("note verifier key is not an Ed25519 key")
    key = Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_hash(name, key).hex() != hash_hex.lower():
        raise AuditKeyError("note verifier key hash does not match its name and key")
    return name, key
