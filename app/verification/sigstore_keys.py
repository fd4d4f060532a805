"""Bundles signed with a plain public key (verificationMaterial.publicKey), which
sigstore-python does not verify: the signature against our configured keys, the log entry
against the trust roots' Rekor keys, and the entry body against the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sigstore.hashes import Hashed
from sigstore.models import Bundle

from app.verification import errors as E
from app.verification.errors import VerificationError
from app.verification.keyring import TrustedKey
from app.verification.legacy_tlog import EntryVerdict, log_is_in_root, verify_log_entry
from app.verification.sigstore_errors import RootFailures
from app.verification.sigstore_times import require_enough_times, verified_tsa_times
from app.verification.tlog_bodies import SignerMaterial, check_entry_body
from app.verification.trust import TrustStore


@dataclass(frozen=True)
class KeyOutcome:
    key: TrustedKey
    root_name: str
    entry: EntryVerdict
    times: list[datetime]


def _checks_sha256_digests(key: TrustedKey) -> bool:
    """Whether the key's signatures can be checked knowing only the artifact's sha256.

    Ed25519 signs the message itself and P-384/P-521 prehash with SHA-384/512, so their
    message signatures need the artifact bytes, which ingest never has.
    """
    public = key.public_key
    if isinstance(public, ec.EllipticCurvePublicKey):
        return public.curve.key_size == 256
    return isinstance(public, rsa.RSAPublicKey)


def _verify_prehashed(key: TrustedKey, signature: bytes, digest: bytes) -> bool:
    """A message signature over an artifact we only know by its sha256 digest."""
    public = key.public_key
    prehashed = Prehashed(hashes.SHA256())
    if isinstance(public, ec.EllipticCurvePublicKey):
        try:
            public.verify(signature, digest, ec.ECDSA(prehashed))
            return True
        except InvalidSignature:
            return False
    if not isinstance(public, rsa.RSAPublicKey):
        return False
    paddings: list[padding.AsymmetricPadding] = []
    if key.algorithm in ("rsa-pkcs1v15", "rsa"):
        paddings.append(padding.PKCS1v15())
    if key.algorithm in ("rsa-pss", "rsa"):
        paddings.append(padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO))
    for pad in paddings:
        try:
            public.verify(signature, digest, pad, prehashed)
            return True
        except InvalidSignature:
            continue
    return False


def _distinct(keys: dict[str, TrustedKey]) -> list[TrustedKey]:
    seen: dict[str, TrustedKey] = {}
    for key in keys.values():
        seen.setdefault(key.key_id, key)
    return list(seen.values())


def find_signing_key(
    bundle: Bundle, keys: dict[str, TrustedKey], hashed: Hashed | None
) -> TrustedKey:
    """The trusted key whose signature this is.

    The hint is unauthenticated and signers spell key ids differently (npm's "SHA256:...",
    cosign's base64, hex), so a hinted key is tried first and then every trusted key: a
    signature that verifies under any configured key is that key's, and the facts record
    which. The hint only decides the error: a key we trust that fails is a bad signature,
    anything else is an untrusted key.
    """
    material = bundle._inner.verification_material.public_key
    hint = material.hint if material is not None else None
    hinted = keys.get(hint) if hint else None
    candidates = _distinct(keys)
    if hinted is not None:
        candidates = [hinted, *[k for k in candidates if k.key_id != hinted.key_id]]
    envelope = bundle._dsse_envelope
    message = bundle._inner.message_signature
    if envelope is None and (message is None or hashed is None):
        raise VerificationError(
            E.SUBJECT_MISSING, "message signature bundles need a subject digest"
        )
    if message is not None and hashed is not None and message.message_digest is not None:
        if message.message_digest.digest != hashed.digest:
            raise VerificationError(E.SUBJECT_MISMATCH, "bundle message digest mismatch")
    if envelope is None and hinted is not None and not _checks_sha256_digests(hinted):
        raise VerificationError(
            E.UNSUPPORTED_FORMAT,
            f"{hinted.algorithm} message signatures cannot be checked from a sha256 digest",
        )
    for key in candidates:
        if envelope is not None:
            valid = key.verify(envelope.signature, envelope.pae())
        else:
            assert message is not None and hashed is not None  # checked above
            valid = _verify_prehashed(key, message.signature, hashed.digest)
        if valid:
            return key
    if hinted is not None:
        raise VerificationError(
            E.SIGNATURE_INVALID, f"signature does not verify with trusted key {hinted.key_id}"
        )
    signed_by = f"signed by no trusted key (hint {hint!r})" if hint else "signed by no trusted key"
    raise VerificationError(
        E.UNTRUSTED_KEY,
        f"{signed_by}: if you trust the signer, add its public key (PEM) under policies/keys/ "
        "and reload the policies (for npm's publish attestations, the npm registry's "
        "signing key: see docs/ci.md)",
    )


def verify_key_bundle(bundle: Bundle, trust: TrustStore, hashed: Hashed | None) -> KeyOutcome:
    key = find_signing_key(bundle, trust.keys, hashed)
    signer = SignerMaterial(public_key=key.public_key)
    failures = RootFailures()
    for name, root in trust.roots.items():
        try:
            entry = verify_log_entry(bundle.log_entry, root)
            times = verified_tsa_times(bundle, root)
            if entry.integrated_time is not None:
                times.append(entry.integrated_time)
            require_enough_times(times)
            check_entry_body(bundle, signer, hashed)
            return KeyOutcome(key, name, entry, times)
        except VerificationError as exc:
            failures.add(name, exc, relevant=log_is_in_root(bundle.log_entry, root))
    raise failures.best()
