"""The VSA signing key: separate from the audit key, kept in files, rotatable.

``<dir>/active.pem`` is the private key that signs new VSAs (ECDSA P-256 by default, the one
every VSA verifier supports; Ed25519 allowed). Rotation moves the old key's *public* half to
``<dir>/retired/<key id>.pub`` and discards its private half: VSAs signed before stay verifiable,
because every public key, retired or not, stays published at ``GET /v1/vsa/public-key``, and no
process can sign with a retired key any more. A key id is the sha256 of the key's DER
SubjectPublicKeyInfo, the id the rest of Provenant computes for a key (``spki_key_id``).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from app.verification.keyring import spki_key_id

log = logging.getLogger("provenant.vsa")

ALGORITHMS = ("ecdsa-p256", "ed25519")
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class VsaKeyError(Exception):
    """The key directory cannot be read or written, or holds an unusable key."""


@dataclass(frozen=True)
class PublishedKey:
    key_id: str
    algorithm: str
    public_key_pem: str
    active: bool


@dataclass(frozen=True)
class VsaSigner:
    key: PrivateKey
    key_id: str
    algorithm: str

    def sign(self, data: bytes) -> bytes:
        """ECDSA signatures are DER (what DSSE verifiers and cosign expect)."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.key.sign(data)

    @property
    def public_key_pem(self) -> str:
        return public_pem(self.key)


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def algorithm_of(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name == "secp256r1":
            return "ecdsa-p256"
    elif isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    raise VsaKeyError("a VSA signing key must be ECDSA P-256 or Ed25519")


def generate(algorithm: str) -> PrivateKey:
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise VsaKeyError(f"unknown VSA key algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")


class VsaKeyring:
    """The active signer, reloaded when ``active.pem`` changes (a rotation by another process),
    and every published public key."""

    def __init__(self, directory: Path, algorithm: str = "ecdsa-p256") -> None:
        self.directory = Path(directory)
        self.algorithm = algorithm
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int], VsaSigner] | None = None

    @property
    def active_path(self) -> Path:
        return self.directory / "active.pem"

    @property
    def retired_dir(self) -> Path:
        return self.directory / "retired"

    def signer(self) -> VsaSigner:
        """The active key, generated (mode 0600) on first use."""
        with self._lock:
            path = self.active_path
            if not path.exists():
                self._write_new(path, generate(self.algorithm), replace=False)
            try:
                stat = path.stat()
            except OSError as exc:
                raise VsaKeyError(f"cannot read the VSA signing key {path}: {exc}") from exc
            stamp = (stat.st_mtime_ns, stat.st_size)
            if self._cached is None or self._cached[0] != stamp:
                self._cached = (stamp, self._load(path))
            return self._cached[1]

    def published(self) -> list[PublishedKey]:
        """Every public key a VSA of this service may have been signed with, active first."""
        active = self.signer()
        keys = [PublishedKey(active.key_id, active.algorithm, active.public_key_pem, True)]
        if self.retired_dir.is_dir():
            for path in sorted(self.retired_dir.glob("*.pub")):
                try:
                    public = serialization.load_pem_public_key(path.read_bytes())
                    algorithm = algorithm_of(public)
                except (OSError, ValueError, VsaKeyError) as exc:
                    log.warning("skipping unusable retired VSA key %s: %s", path, exc)
                    continue
                pem = public.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ).decode()
                key_id = spki_key_id(public)
                if key_id != active.key_id:
                    keys.append(PublishedKey(key_id, algorithm, pem, False))
        return keys

    def rotate(self, algorithm: str | None = None) -> tuple[str, str]:
        """Retire the active key (its public half stays published) and make a new one active.
        Returns (old key id, new key id)."""
        old = self.signer()
        with self._lock:
            self.retired_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Published before the switch: a VSA signed by the old key is never unverifiable.
            retired = self.retired_dir / f"{old.key_id}.pub"
            _atomic_write(retired, old.public_key_pem.encode(), 0o644)
            new = generate(algorithm or self.algorithm)
            self._write_new(self.active_path, new, replace=True)
            self._cached = None
        return old.key_id, spki_key_id(new.public_key())

    def _load(self, path: Path) -> VsaSigner:
        try:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                log.warning("VSA key %s is readable by others (mode %o); use 0600", path, mode)
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise VsaKeyError(f"cannot load the VSA signing key {path}: {exc}") from exc
        algorithm = algorithm_of(key)
        assert isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
        return VsaSigner(key, spki_key_id(key.public_key()), algorithm)

    def _write_new(self, path: Path, key: PrivateKey, *, replace: bool) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if replace:
                _atomic_write(path, pem, 0o600)
            else:
                _create_once(path, pem)
        except OSError as exc:
            raise VsaKeyError(f"cannot write the VSA signing key {path}: {exc}") from exc
        log.warning("VSA signing key %s: %s", path, spki_key_id(key.public_key()))


def _create_once(path: Path, data: bytes) -> None:
    # Several processes starting together must end up sharing one key: hard-link into place,
    # and the loser of the race uses the winner's key.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    _write_private(tmp, data, 0o600)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    _write_private(tmp, data, mode)
    os.replace(tmp, path)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
