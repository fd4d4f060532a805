"""Comparing a transparency-log entry body with the bundle it is supposed to log.

sigstore-python compares certificate-signed dsse/hashedrekord 0.0.1 entries (and Rekor v2
entries) itself; these comparisons cover what it cannot: ``intoto`` 0.0.2 entries (cosign
attest, npm, sigstore-js <2) and every entry signed with a plain public key, whose bodies
record a key where the library expects a certificate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import rekor_types
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from pydantic import ValidationError
from sigstore._internal.key_details import _get_prehash
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle
from sigstore.verify import verifier as library_verifier
from sigstore_models.common.v1 import HashAlgorithm
from sigstore_models.rekor.v2.entry import Entry as EntryV2

from app.verification import errors as E
from app.verification.errors import VerificationError


@dataclass(frozen=True)
class SignerMaterial:
    """Who signed: a Fulcio leaf certificate, or a configured public key."""

    public_key: PublicKeyTypes
    certificate: x509.Certificate | None = None


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _mismatch(message: str) -> VerificationError:
    return VerificationError(E.TLOG_ENTRY_MISMATCH, f"transparency log entry {message}")


def _b64(value: str | bytes | None, what: str) -> bytes:
    if value is None:
        raise _mismatch(f"has no {what}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _mismatch(f"has a malformed {what}") from exc


def _check_verifier(pem: bytes, signer: SignerMaterial) -> None:
    """The log recorded the same certificate (keyless) or the same public key (key-signed)."""
    try:
        if signer.certificate is not None:
            recorded = x509.load_pem_x509_certificate(pem)
            same = recorded.public_bytes(serialization.Encoding.DER) == (
                signer.certificate.public_bytes(serialization.Encoding.DER)
            )
        else:
            same = _spki(serialization.load_pem_public_key(pem)) == _spki(signer.public_key)
    except ValueError as exc:
        raise _mismatch("records a verifier that is not the bundle's signer") from exc
    if not same:
        raise _mismatch("was signed by a different certificate or key than the bundle")


def _check_hash(algorithm: str, value: str, expected: bytes, what: str) -> None:
    if algorithm != "sha256" or value.lower() != expected.hex():
        raise _mismatch(f"{what} does not match the bundle")


def _check_intoto_v002(body: bytes, bundle: Bundle, signer: SignerMaterial) -> None:
    try:
        spec = rekor_types.Intoto.model_validate_json(body).spec.root
    except ValidationError as exc:
        raise _mismatch(f"is not a valid intoto entry: {exc.errors()[0]['msg']}") from exc
    envelope = bundle._inner.dsse_envelope
    if not isinstance(spec, rekor_types.intoto.IntotoV002Schema) or envelope is None:
        raise _mismatch("is not an intoto 0.0.2 entry for a DSSE envelope")
    recorded = spec.content.envelope
    if recorded.payload_type != envelope.payload_type:
        raise _mismatch("records a different payloadType")
    if len(recorded.signatures) != 1 or len(envelope.signatures) != 1:
        raise _mismatch("and envelope must both carry exactly one signature")
    # intoto 0.0.2 bodies hold the signature and the verifier PEM base64-encoded once more.
    signature = recorded.signatures[0]
    if _b64(_b64(signature.sig, "signature"), "signature") != envelope.signatures[0].sig:
        raise _mismatch("records a different signature")
    _check_verifier(_b64(signature.public_key, "verifier"), signer)
    if spec.content.payload_hash is None:
        raise _mismatch("has no payload hash")
    # spec.content.hash covers the envelope as serialized at upload (with the unauthenticated
    # keyid); the payload hash, payloadType and signature already pin this very envelope.
    _check_hash(
        spec.content.payload_hash.algorithm.value,
        spec.content.payload_hash.value,
        hashlib.sha256(envelope.payload).digest(),
        "payload hash",
    )


def _check_dsse_v001(body: bytes, bundle: Bundle, signer: SignerMaterial) -> None:
    try:
        spec = rekor_types.Dsse.model_validate_json(body).spec.root
    except ValidationError as exc:
        raise _mismatch(f"is not a valid dsse entry: {exc.errors()[0]['msg']}") from exc
    envelope = bundle._inner.dsse_envelope
    if envelope is None or spec.payload_hash is None or not spec.signatures:
        raise _mismatch("is not a dsse 0.0.1 entry for a DSSE envelope")
    _check_hash(
        spec.payload_hash.algorithm.value,
        spec.payload_hash.value,
        hashlib.sha256(envelope.payload).digest(),
        "payload hash",
    )
    recorded = sorted(_b64(s.signature, "signature") for s in spec.signatures)
    if recorded != sorted(s.sig for s in envelope.signatures):
        raise _mismatch("records different signatures")
    for sig in spec.signatures:
        _check_verifier(_b64(sig.verifier, "verifier"), signer)


def _check_hashedrekord_v001(
    body: bytes, bundle: Bundle, signer: SignerMaterial, hashed: Hashed | None
) -> None:
    try:
        spec = rekor_types.Hashedrekord.model_validate_json(body).spec.root
    except ValidationError as exc:
        raise _mismatch(f"is not a valid hashedrekord entry: {exc.errors()[0]['msg']}") from exc
    message = bundle._inner.message_signature
    if message is None or hashed is None or spec.data.hash is None:
        raise _mismatch("is not a hashedrekord 0.0.1 entry for a message signature")
    _check_hash(spec.data.hash.algorithm.value, spec.data.hash.value, hashed.digest, "digest")
    if _b64(spec.signature.content, "signature") != message.signature:
        raise _mismatch("records a different signature")
    key = spec.signature.public_key
    _check_verifier(_b64(key.content if key else None, "verifier"), signer)


def _check_hashedrekord_v002(
    body: bytes, bundle: Bundle, signer: SignerMaterial, hashed: Hashed | None
) -> None:
    try:
        spec = EntryV2.from_json(body).spec.hashed_rekord_v002
    except ValidationError as exc:
        raise _mismatch(
            f"is not a valid hashedrekord 0.0.2 entry: {exc.errors()[0]['msg']}"
        ) from exc
    if spec is None or spec.signature.verifier.public_key is None:
        raise _mismatch("is not a hashedrekord 0.0.2 entry for a public key")
    if spec.signature.verifier.public_key.raw_bytes != _spki(signer.public_key):
        raise _mismatch("was signed by a different key than the bundle")
    envelope = bundle._dsse_envelope
    if envelope is not None:
        # Rekor v2 logs a DSSE envelope as the prehash of its PAE (rekor-v2-spec 6.1.4).
        if len(envelope._inner.signatures) != 1:
            raise _mismatch("and envelope must both carry exactly one signature")
        try:
            algorithm, hash_func = _get_prehash(spec.signature.verifier.key_details)
        except ValueError as exc:
            raise _mismatch(str(exc)) from exc
        expected, signature = hash_func(envelope.pae()).digest(), envelope.signature
    else:
        message = bundle._inner.message_signature
        if message is None or hashed is None:
            raise _mismatch("has no message signature to match")
        algorithm, expected, signature = HashAlgorithm.SHA2_256, hashed.digest, message.signature
    if spec.data.algorithm != algorithm or spec.data.digest != expected:
        raise _mismatch("digest does not match the bundle")
    if spec.signature.content != signature:
        raise _mismatch("records a different signature")


def check_body_header(bundle: Bundle) -> None:
    """kindVersion is an unauthenticated label; the body is what the SET/checkpoint signed.

    sigstore-python picks its body model by the label and its models default ``kind`` and
    ``apiVersion``, so a body claiming another kind or version can pass there unnoticed.
    """
    inner = bundle.log_entry._inner
    kind_version = (inner.kind_version.kind, inner.kind_version.version)
    if _body_header(inner.canonicalized_body) != kind_version:
        raise _mismatch(f"body is not the {'/'.join(kind_version)} entry the bundle claims")


def _body_header(body: bytes) -> tuple[Any, Any]:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise _mismatch("body is not JSON") from exc
    if not isinstance(doc, dict):
        raise _mismatch("body is not a JSON object")
    return doc.get("kind"), doc.get("apiVersion")


# Which entry kinds can log which bundle content (Rekor v2 logs both as hashedrekord 0.0.2).
_DSSE_KINDS = frozenset({("intoto", "0.0.2"), ("dsse", "0.0.1"), ("hashedrekord", "0.0.2")})
_MESSAGE_KINDS = frozenset({("hashedrekord", "0.0.1"), ("hashedrekord", "0.0.2")})


def _check_with_library(check: Callable[[], None]) -> None:
    try:
        check()
    except (SigstoreError, ValidationError) as exc:
        raise _mismatch(str(exc)) from exc


def check_entry_body(bundle: Bundle, signer: SignerMaterial, hashed: Hashed | None) -> None:
    """The logged entry is this bundle's signature, by this signer, over this content.

    Certificates' dsse/hashedrekord 0.0.1 entries use sigstore-python's own comparisons;
    intoto 0.0.2 and every key-signed entry use ours.
    """
    inner = bundle.log_entry._inner
    kind_version = (inner.kind_version.kind, inner.kind_version.version)
    body = inner.canonicalized_body
    is_dsse = bundle._inner.dsse_envelope is not None
    if kind_version not in _DSSE_KINDS | _MESSAGE_KINDS:
        raise VerificationError(
            E.UNSUPPORTED_FORMAT, f"unsupported log entry kind {'/'.join(kind_version)}"
        )
    check_body_header(bundle)
    if kind_version not in (_DSSE_KINDS if is_dsse else _MESSAGE_KINDS):
        content = "a DSSE envelope" if is_dsse else "a message signature"
        raise _mismatch(f"is a {'/'.join(kind_version)} entry, which cannot log {content}")
    keyless = signer.certificate is not None
    if kind_version == ("intoto", "0.0.2"):
        _check_intoto_v002(body, bundle, signer)
    elif kind_version == ("dsse", "0.0.1") and keyless:
        _check_with_library(lambda: library_verifier._validate_dsse_v001_entry_body(bundle))
    elif kind_version == ("dsse", "0.0.1"):
        _check_dsse_v001(body, bundle, signer)
    elif kind_version == ("hashedrekord", "0.0.1") and keyless and hashed is not None:
        _check_with_library(
            lambda: library_verifier._validate_hashedrekord_v001_entry_body(bundle, hashed)
        )
    elif kind_version == ("hashedrekord", "0.0.1"):
        _check_hashedrekord_v001(body, bundle, signer, hashed)
    elif not keyless:
        _check_hashedrekord_v002(body, bundle, signer, hashed)
    else:
        # Keyless Rekor v2 entries always reach sigstore-python (they carry checkpoints).
        raise VerificationError(
            E.UNSUPPORTED_FORMAT, "keyless hashedrekord 0.0.2 outside the library"
        )
