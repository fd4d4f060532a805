"""Plain public keys trusted for key-signed bundles, DSSE envelopes and in-toto links."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


@dataclass(frozen=True)
class TrustedKey:
    key_id: str  # canonical id: sha256 hex of the DER SubjectPublicKeyInfo
    algorithm: str  # "ecdsa-p256" | "ecdsa-p384" | "ed25519" | "rsa-pss" | "rsa-pkcs1v15" | "rsa" (either padding)
    public_key: PublicKeyTypes
    public_key_pem: str
    source: str  # where it was configured, e.g. "policies/keys/release.pub"

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is a valid signature over ``data`` by this key."""
        key = self.public_key
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, data)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                digest = hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()
                key.verify(signature, data, ec.ECDSA(digest))
            elif isinstance(key, rsa.RSAPublicKey):
                return _verify_rsa(key, signature, data, self.algorithm)
            else:
                return False
        except InvalidSignature:
            return False
        return True


def _verify_rsa(key: rsa.RSAPublicKey, signature: bytes, data: bytes, algorithm: str) -> bool:
    paddings: list[padding.AsymmetricPadding] = []
    if algorithm in ("rsa-pss", "rsa"):
        paddings += [
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
        ]
    if algorithm in ("rsa-pkcs1v15", "rsa"):
        paddings.append(padding.PKCS1v15())
    for pad in paddings:
        try:
            key.verify(signature, data, pad, hashes.SHA256())
            return True
        except InvalidSignature:
            continue
    return False


def spki_key_id(public_key: PublicKeyTypes) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def load_keys(policy_dir: Path) -> dict[str, TrustedKey]:
    """Every trusted key under ``policy_dir``, indexed by each id a signer may use for it."""
    raise NotImplementedError  # filled in by the keyring work
