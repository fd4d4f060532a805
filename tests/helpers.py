"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from app.auth.service import create_token
from app.db import Database
from tests.sigstore_stack import SigstoreTestStack

# A fixed Ed25519 release key: key-signed bundles and bare DSSE envelopes in tests use it.
RELEASE_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"release").digest())


def write_trust(path: Path, stack: SigstoreTestStack) -> Path:
    """A policy directory trusting the private Sigstore stack and the release key."""
    (path / "trust").mkdir(parents=True, exist_ok=True)
    (path / "keys").mkdir(exist_ok=True)
    stack.write_trusted_root(path / "trust" / "test-stack.json")
    (path / "keys" / "release.pub").write_bytes(
        RELEASE_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


_counter = itertools.count()


class TokenFactory:
    """Creates real tokens in the test database: ``tokens("upload")`` -> bearer headers."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, *scopes: str, name: str | None = None) -> dict[str, str]:
        with self.db.session() as session:
            token = create_token(session, name or f"test-{next(_counter)}", list(scopes))
        return {"Authorization": f"Bearer {token}"}
