"""cosign's signature and attestation tags, turned into the Sigstore bundles they amount to.

cosign (before its bundle format) stores, for image digest ``sha256:<hex>``, a manifest at tag
``sha256-<hex>.sig`` whose layers are simple-signing payloads, and one at ``sha256-<hex>.att``
whose layers are DSSE envelopes. The signature material sits in layer annotations (cosign's
``specs/SIGNATURE_SPEC.md`` and ``specs/ATTESTATION_SPEC.md``):

* ``dev.cosignproject.cosign/signature``: base64 signature over the layer's bytes (.sig only;
  an .att layer carries its signatures inside the envelope);
* ``dev.sigstore.cosign/certificate`` and ``.../chain``: the Fulcio leaf and its chain (PEM);
* ``dev.sigstore.cosign/bundle``: the Rekor entry and its signed entry timestamp (SET),
  ``{"SignedEntryTimestamp", "Payload": {"body", "integratedTime", "logIndex", "logID"}}``;
* ``dev.sigstore.cosign/rfc3161timestamp``: ``{"SignedRFC3161Timestamp"}``.

That is exactly a v0.1 Sigstore bundle (certificate, tlog entry with an inclusion promise,
optional RFC 3161 timestamp, and a message signature or a DSSE envelope), so it is written as
one and verified by the same code as an uploaded bundle: there is no second verifier. The
bundle is built deterministically, so a second pull finds the stored record by its hash.

A simple-signing signature signs the payload, and the payload names the image: the signature
only speaks for image X if ``critical.image.docker-manifest-digest`` is X. That binding is
checked here, with its own code.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.registry import errors as E
from app.registry.errors import RegistryError

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"
SIMPLE_SIGNING_TYPE = "cosign container image signature"
V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"


@dataclass(frozen=True)
class CosignDocument:
    """A bundle (or bare DSSE envelope) to ingest, and for .sig what its signature covers."""

    document: bytes
    signed_digest: tuple[str, str] | None  # (algorithm, hex) of the simple-signing payload


def sig_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def att_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".att"


def check_simple_signing(payload: bytes, image_digest: str) -> None:
    """The payload must name ``image_digest``; raise IMAGE_DIGEST_MISMATCH otherwise."""
    try:
        document = json.loads(payload)
        critical = document["critical"]
        named = critical["image"]["docker-manifest-digest"]
        kind = critical.get("type")
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(
            E.MALFORMED, "simple-signing payload without critical.image.docker-manifest-digest"
        ) from exc
    if kind != SIMPLE_SIGNING_TYPE:
        raise RegistryError(E.MALFORMED, f"simple-signing payload of type {kind!r}")
    if not isinstance(named, str) or named.lower() != image_digest:
        raise RegistryError(
            E.IMAGE_DIGEST_MISMATCH,
            f"the signature is for image {named}, not {image_digest}: a signature copied from "
            "another image",
        )


def signature_document(layer: dict[str, Any], payload: bytes) -> CosignDocument:
    """A .sig layer (simple signing) as a v0.1 message-signature bundle over ``payload``."""
    annotations = _annotations(layer)
    signature = annotations.get(SIGNATURE_ANNOTATION)
    if not signature:
        raise RegistryError(E.MALFORMED, f"layer has no {SIGNATURE_ANNOTATION} annotation")
    digest = hashlib.sha256(payload).digest()
    bundle = _bundle(
        annotations,
        {
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                "signature": signature,
            }
        },
    )
    return CosignDocument(bundle, ("sha256", digest.hex()))


def attestation_document(layer: dict[str, Any], envelope: bytes) -> CosignDocument:
    """An .att layer: with a certificate, a v0.1 DSSE bundle; without one (``cosign attest
    --key``), the bare DSSE envelope, verified with the policy directory's keys."""
    annotations = _annotations(layer)
    if not annotations.get(CERTIFICATE_ANNOTATION):
        return CosignDocument(envelope, None)
    try:
        parsed = json.loads(envelope)
    except ValueError as exc:
        raise RegistryError(E.MALFORMED, "an .att layer is not a DSSE envelope (JSON)") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("signatures"), list):
        raise RegistryError(E.MALFORMED, "an .att layer is not a DSSE envelope")
    return CosignDocument(_bundle(annotations, {"dsseEnvelope": parsed}), None)


def _bundle(annotations: dict[str, str], content: dict[str, Any]) -> bytes:
    material: dict[str, Any] = {}
    certificate = annotations.get(CERTIFICATE_ANNOTATION)
    if certificate:
        material["x509CertificateChain"] = {"certificates": [{"rawBytes": _der(certificate)}]}
    else:
        # ``cosign sign --key``: the key is the policy directory's to name, not the layer's.
        material["publicKey"] = {"hint": ""}
    rekor = annotations.get(BUNDLE_ANNOTATION)
    material["tlogEntries"] = [_tlog_entry(rekor)] if rekor else []
    stamp = annotations.get(TIMESTAMP_ANNOTATION)
    if stamp:
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": _timestamp(stamp)}]
        }
    bundle = {"mediaType": V01, "verificationMaterial": material, **content}
    return json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()


def _tlog_entry(annotation: str) -> dict[str, Any]:
    """cosign's Rekor bundle annotation as a bundle tlog entry carrying the same SET."""
    try:
        rekor = json.loads(annotation)
        payload = rekor["Payload"]
        body_b64 = payload["body"]
        body = json.loads(base64.b64decode(body_b64))
        entry = {
            "logIndex": str(int(payload["logIndex"])),
            "logId": {"keyId": _b64(bytes.fromhex(payload["logID"]))},
            "kindVersion": {"kind": body["kind"], "version": body["apiVersion"]},
            "integratedTime": str(int(payload["integratedTime"])),
            "inclusionPromise": {"signedEntryTimestamp": rekor["SignedEntryTimestamp"]},
            "canonicalizedBody": body_b64,
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(E.MALFORMED, f"unreadable {BUNDLE_ANNOTATION} annotation") from exc
    return entry


def _timestamp(annotation: str) -> str:
    try:
        value = json.loads(annotation)["SignedRFC3161Timestamp"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(E.MALFORMED, f"unreadable {TIMESTAMP_ANNOTATION} annotation") from exc
    if not isinstance(value, str):
        raise RegistryError(E.MALFORMED, f"unreadable {TIMESTAMP_ANNOTATION} annotation")
    return value


def _der(pem: str) -> str:
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise RegistryError(
            E.MALFORMED, f"{CERTIFICATE_ANNOTATION} is not a PEM certificate"
        ) from exc
    return _b64(certificate.public_bytes(serialization.Encoding.DER))


def _annotations(layer: dict[str, Any]) -> dict[str, str]:
    annotations = layer.get("annotations")
    if not isinstance(annotations, dict):
        return {}
    return {k: v for k, v in annotations.items() if isinstance(k, str) and isinstance(v, str)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
