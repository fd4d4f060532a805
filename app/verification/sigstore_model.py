"""Parsing Sigstore bundles into sigstore-python's model, including the ones it refuses to load.

sigstore-python's ``Bundle`` enforces client policy while loading: a checkpointed inclusion
proof in every entry and a certificate as the signer. Spec-valid bundles fail that (v0.1
bundles with only an inclusion promise, key-signed bundles), so for those we build the same
``Bundle`` object without the loader's checks, re-apply the structural checks that still
hold, and let the caller verify them itself. The library's helpers then work unchanged.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from pydantic import ValidationError
from sigstore._utils import cert_is_leaf
from sigstore.errors import Error as SigstoreError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, TransparencyLogEntry
from sigstore_models.bundle.v1 import Bundle as _InnerBundle
from sigstore_models.common.v1 import HashAlgorithm

from app.verification import errors as E
from app.verification import strict_json
from app.verification.errors import VerificationError
from app.verification.sigstore_errors import translate

V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
MEDIA_TYPES = frozenset(
    {
        V01,
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    }
)
# Only ever fed to model validation and immediately replaced by None, see _load_inner.
_PLACEHOLDER_PROOF = {"logIndex": "0", "rootHash": "", "treeSize": "1", "hashes": []}


@dataclass(frozen=True)
class ParsedBundle:
    doc: dict[str, Any]
    media_type: str
    key_signed: bool  # verificationMaterial.publicKey rather than a certificate
    kind: str  # of the (single) tlog entry
    kind_version: str
    checkpointed: bool  # the entry carries an inclusion proof with a checkpoint


def parse_document(bundle: dict[str, Any] | bytes | str) -> ParsedBundle:
    doc: Any = bundle
    if isinstance(bundle, bytes | str):
        doc = strict_json.loads(bundle, "the bundle")
    if not isinstance(doc, dict):
        raise VerificationError(E.MALFORMED, "bundle must be a JSON object")
    media_type = doc.get("mediaType")
    if not isinstance(media_type, str) or media_type not in MEDIA_TYPES:
        raise VerificationError(E.UNSUPPORTED_FORMAT, f"unsupported bundle format: {media_type!r}")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise VerificationError(E.MALFORMED, "bundle has no verificationMaterial")
    # "publicKey": {} is how proto3 JSON writes a key-signed bundle with an empty hint.
    signers = [
        k
        for k in ("publicKey", "x509CertificateChain", "certificate")
        if material.get(k) is not None
    ]
    if len(signers) != 1:
        raise VerificationError(
            E.MALFORMED, "verificationMaterial needs exactly one of publicKey or a certificate"
        )
    contents = [k for k in ("messageSignature", "dsseEnvelope") if isinstance(doc.get(k), dict)]
    if len(contents) != 1:
        raise VerificationError(
            E.MALFORMED, "bundle needs exactly one of messageSignature or dsseEnvelope"
        )
    entries = material.get("tlogEntries") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise VerificationError(E.MALFORMED, "verificationMaterial.tlogEntries must be a list")
    if not entries:
        # Sigstore instances without a public log (GitHub's own, for private repositories)
        # timestamp instead: there the missing piece is that instance's trust root.
        raise VerificationError(
            E.TLOG_PROOF_INVALID,
            "the bundle has no transparency log entry, so nothing proves its signature was "
            "logged. If it comes from a Sigstore instance without a public log (GitHub's own "
            "instance signs private repositories' attestations this way), this server lacks "
            "that instance's trust root: add its trusted_root.json under policies/trust/ "
            "(GitHub's: `gh attestation trusted-root`); see docs/ci.md",
        )
    if len(entries) != 1:
        # Bundles record the one entry their signature was logged as; without it nothing
        # proves the signature was ever public.
        raise VerificationError(
            E.TLOG_PROOF_INVALID,
            f"expected exactly one transparency log entry in bundle, found {len(entries)}",
        )
    envelope = doc.get("dsseEnvelope")
    if isinstance(envelope, dict):
        signatures = envelope.get("signatures")
        count = len(signatures) if isinstance(signatures, list) else 0
        if count != 1:
            # The bundle spec allows one; sigstore-go and sigstore-python reject the rest too.
            raise VerificationError(
                E.SIGNATURE_INVALID,
                f"a bundle's DSSE envelope must carry exactly one signature, found {count}",
            )
    kind_version = _object(entries[0].get("kindVersion"))
    checkpoint = _object(_object(entries[0].get("inclusionProof")).get("checkpoint"))
    return ParsedBundle(
        doc=doc,
        media_type=media_type,
        key_signed=material.get("publicKey") is not None,
        kind=str(kind_version.get("kind", "")),
        kind_version=str(kind_version.get("version", "")),
        checkpointed=bool(checkpoint.get("envelope")),
    )


def _object(value: Any) -> dict[str, Any]:
    # Shape checks come from the model later; here a wrong type just means "absent".
    return value if isinstance(value, dict) else {}


def load_library_bundle(parsed: ParsedBundle) -> Bundle:
    """sigstore-python's own loader, with all its checks."""
    try:
        return Bundle.from_json(json.dumps(parsed.doc))
    except (SigstoreError, ValueError) as exc:
        raise translate(exc) from exc


def _load_inner(doc: dict[str, Any]) -> _InnerBundle:
    patched = copy.deepcopy(doc)
    public_key = patched["verificationMaterial"].get("publicKey")
    if isinstance(public_key, dict):
        # proto3 JSON omits an empty hint; sigstore_models requires the field.
        public_key.setdefault("hint", None)
    unproven: list[int] = []
    for index, entry in enumerate(patched["verificationMaterial"]["tlogEntries"]):
        if not entry.get("inclusionProof"):
            entry["inclusionProof"] = dict(_PLACEHOLDER_PROOF)
            unproven.append(index)
    try:
        inner = _InnerBundle.from_json(json.dumps(patched))
    except ValidationError as exc:
        detail = " ".join(str(exc).split("\n")[:3])
        raise VerificationError(E.MALFORMED, f"failed to load bundle: {detail}") from exc
    entries = inner.verification_material.tlog_entries
    for index in unproven:
        # model_copy(update=...) skips validation: the proof really is absent.
        entries[index] = entries[index].model_copy(update={"inclusion_proof": None})
    return inner


def _leaf_certificate(inner: _InnerBundle) -> x509.Certificate | None:
    material = inner.verification_material
    try:
        if material.certificate is not None:
            return x509.load_der_x509_certificate(material.certificate.raw_bytes)
        if material.x509_certificate_chain is not None:
            chain = material.x509_certificate_chain.certificates
            if not chain:
                raise VerificationError(
                    E.MALFORMED, "expected non-empty certificate chain in bundle"
                )
            leaf = x509.load_der_x509_certificate(chain[0].raw_bytes)
            if not cert_is_leaf(leaf):
                raise VerificationError(
                    E.MALFORMED, "bundle has a non-leaf certificate in the leaf position"
                )
            return leaf
    except (ValueError, SigstoreError) as exc:
        raise VerificationError(E.MALFORMED, f"bad certificate in bundle: {exc}") from exc
    return None


def load_unchecked_bundle(parsed: ParsedBundle) -> Bundle:
    """A ``Bundle`` built without sigstore-python's load-time client policy (see module doc).

    The caller MUST verify the log entry (proof, checkpoint, promise) itself: nothing here did.
    """
    inner = _load_inner(parsed.doc)
    entry_inner = inner.verification_material.tlog_entries[0]
    if entry_inner.kind_version.version not in ("0.0.1", "0.0.2"):
        raise VerificationError(
            E.UNSUPPORTED_FORMAT,
            f"unsupported log entry version {entry_inner.kind_version.version}",
        )
    entry = TransparencyLogEntry.__new__(TransparencyLogEntry)
    entry._inner = entry_inner
    bundle = Bundle.__new__(Bundle)
    bundle._inner = inner
    bundle._log_entry = entry
    leaf = _leaf_certificate(inner)
    if leaf is not None:
        bundle._signing_certificate = leaf
    elif not parsed.key_signed:
        raise VerificationError(E.MALFORMED, "bundle carries no signing certificate")
    return bundle


def sha256_hashed(message_digest: tuple[str, str]) -> Hashed:
    """The caller's artifact digest as sigstore-python's prehashed input."""
    algorithm, hex_digest = message_digest
    if algorithm.lower() != "sha256":
        raise VerificationError(
            E.UNSUPPORTED_FORMAT,
            f"message signatures are verified against sha256 digests, not {algorithm}",
        )
    try:
        digest = bytes.fromhex(hex_digest)
    except ValueError as exc:
        raise VerificationError(E.MALFORMED, "subject digest is not hex") from exc
    if len(digest) != 32:
        raise VerificationError(E.MALFORMED, "a sha256 digest is 32 bytes")
    return Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
